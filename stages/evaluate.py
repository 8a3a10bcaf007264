"""Stage 4: score one trained model on the test split,
``python -m stages.evaluate <name> <seed>``.

This is the only stage that reads the test split. Its metrics and plots go to DVC (metrics and
plots files) and into the MLflow run that trained the model. It also keeps the model's
probability of every validation review, which the report chooses and tests the champion on.
"""

from __future__ import annotations

import logging

from imdb_sentiment import paths
from imdb_sentiment.cli import run_stage
from imdb_sentiment.dataset import load_split
from imdb_sentiment.evaluation import predictions_table, score, validation_table
from imdb_sentiment.files import read_json, write_json, write_text
from imdb_sentiment.params import load_params, model_from_arguments
from imdb_sentiment.tracking import lifecycle, records

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    project = paths.this_project()
    all_params = load_params(project.params_file)
    params = model_from_arguments(all_params, argv, "python -m stages.evaluate")
    name, seed = params.name, params.seed
    threshold = all_params.evaluate.threshold
    trained = read_json(project.run_id_file(name, seed))
    with lifecycle.run(all_params.mlflow.experiment_name, run_id=trained["run_id"]):
        # Imported here, after run_stage has loaded TensorFlow quietly.
        from imdb_sentiment.modeling import load_model

        test = load_split(project.test_split)
        test_set = records.log_dataset(test, project.test_split, "test")
        model = load_model(project.model_file(name, seed))
        probabilities = model.predict(test.reviews, batch_size=1024, verbose=0).ravel()
        result = score(test.labels, probabilities, threshold)
        logger.info("Test metrics of %s with seed %d: %s", name, seed, result["metrics"])
        write_json(project.evaluation_metrics(name, seed), result["metrics"])
        write_text(
            project.roc_points(name, seed), result["roc"].to_csv(index=False, float_format="%.5f")
        )
        predictions = predictions_table(test.labels, probabilities, threshold)
        # %.9g keeps every digit of a float32 probability.
        write_text(
            project.evaluation_predictions(name, seed),
            predictions.to_csv(index=False, float_format="%.9g"),
        )
        records.log_evaluation(name, threshold, result, trained["model_uri"], test_set)
        validation = load_split(project.validation_split)
        validation_probabilities = model.predict(validation.reviews, batch_size=1024, verbose=0)
        write_text(
            project.validation_predictions(name, seed),
            validation_table(validation.labels, validation_probabilities.ravel()),
        )
        records.log_validation_predictions(project.validation_predictions(name, seed))


if __name__ == "__main__":
    raise SystemExit(run_stage(main, uses_tensorflow=True))
