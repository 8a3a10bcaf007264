"""Stage 4: score one trained model on the test split, ``python -m stages.evaluate <name>``.

This is the only stage that reads the test split. Its metrics and plots go to DVC (metrics and
plots files) and into the MLflow run that trained the model.
"""

from __future__ import annotations

import logging

from imdb_sentiment import paths, tracking
from imdb_sentiment.cli import StageError, run_stage
from imdb_sentiment.dataset import load_split
from imdb_sentiment.evaluation import predictions_table, score
from imdb_sentiment.files import read_json, write_json, write_text
from imdb_sentiment.params import load_params

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise StageError("usage: python -m stages.evaluate <model name from params.yaml's models>")
    name = argv[0]
    all_params = load_params(paths.PARAMS_FILE)
    all_params.model(name)  # A name that params.yaml does not list is an error.
    threshold = all_params.evaluate.threshold
    run_id = read_json(paths.run_id_file(name))["run_id"]
    with tracking.run(all_params.mlflow.experiment_name, run_id=run_id):
        # Imported here, after run_stage has loaded TensorFlow quietly.
        from imdb_sentiment.modeling import load_model

        test = load_split(paths.TEST_SPLIT)
        model = load_model(paths.model_file(name))
        probabilities = model.predict(test.reviews, batch_size=1024, verbose=0).ravel()
        result = score(test.labels, probabilities, threshold)
        logger.info("Test metrics of %s: %s", name, result["metrics"])
        write_json(paths.evaluation_metrics(name), result["metrics"])
        write_text(paths.roc_points(name), result["roc"].to_csv(index=False, float_format="%.5f"))
        write_text(
            paths.evaluation_predictions(name),
            predictions_table(test.labels, probabilities, threshold).to_csv(index=False),
        )
        tracking.log_evaluation(name, threshold, result)


if __name__ == "__main__":
    raise SystemExit(run_stage(main, uses_tensorflow=True))
