"""Stage 4: score one trained model on the test split, ``python -m stages.evaluate <name>``.

This is the only stage that reads the test split. Its metrics and plots go to DVC (metrics and
plots files) and into the MLflow run that trained the model.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from stages import paths, plots, tracking
from stages.cli import StageError, run_stage
from stages.files import read_json, write_json, write_text
from stages.params import load_params
from stages.prepare import load_split
from stages.review_classifier import LABELS, classify

logger = logging.getLogger(__name__)


def score(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict:
    """Test metrics of positive-class ``probabilities`` against 0/1 ``labels``.

    Returns:
        ``metrics`` (loss, accuracy, precision, recall, F1, ROC AUC), the ``confusion_matrix``
        (rows actual, columns predicted, negative first) and the ``roc`` curve as a table.
    """
    from sklearn import metrics

    predicted = (probabilities >= threshold).astype(int)
    fpr, tpr, thresholds = metrics.roc_curve(labels, probabilities)
    values = {
        "loss": metrics.log_loss(labels, probabilities, labels=[0, 1]),
        "accuracy": metrics.accuracy_score(labels, predicted),
        "precision": metrics.precision_score(labels, predicted, zero_division=0),
        "recall": metrics.recall_score(labels, predicted, zero_division=0),
        "f1": metrics.f1_score(labels, predicted, zero_division=0),
        "roc_auc": metrics.roc_auc_score(labels, probabilities),
    }
    return {
        "metrics": {name: round(float(value), 5) for name, value in values.items()},
        "confusion_matrix": metrics.confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        # roc_curve's first threshold is +inf, which CSV and JSON readers handle badly.
        "roc": pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(thresholds, 1.0)}),
    }


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise StageError("usage: python -m stages.evaluate <model name from params.yaml's models>")
    name = argv[0]
    all_params = load_params(paths.PARAMS_FILE)
    all_params.model(name)  # A name that params.yaml does not list is an error.
    threshold = all_params.evaluate.threshold
    run_id = read_json(paths.run_id_file(name))["run_id"]
    with tracking.run(all_params.mlflow.experiment_name, run_id=run_id):
        import mlflow

        from stages.modeling import load_model

        test = load_split(paths.TEST_SPLIT)
        model = load_model(paths.model_file(name))
        probabilities = model.predict(test.reviews, batch_size=1024, verbose=0).ravel()
        result = score(test.labels, probabilities, threshold)
        logger.info("Test metrics of %s: %s", name, result["metrics"])

        write_json(paths.evaluation_metrics(name), result["metrics"])
        write_text(paths.roc_points(name), result["roc"].to_csv(index=False, float_format="%.5f"))
        predictions = pd.DataFrame(
            {
                "actual": LABELS[test.labels],
                "predicted": classify(probabilities, threshold)["label"],
            }
        )
        write_text(paths.evaluation_predictions(name), predictions.to_csv(index=False))

        mlflow.log_params({"evaluate_threshold": threshold})
        mlflow.log_metrics({f"test_{metric}": value for metric, value in result["metrics"].items()})
        mlflow.log_dict({"confusion_matrix": result["confusion_matrix"]}, "test_confusion.json")
        mlflow.log_figure(
            plots.confusion_matrix(result["confusion_matrix"], f"{name} on the test set"),
            "test_confusion_matrix.png",
        )
        mlflow.log_figure(
            plots.roc_curves({name: result["roc"]}, {name: result["metrics"]["roc_auc"]}),
            "test_roc.png",
        )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
