"""Scoring a model's test-set probabilities: metrics, the ROC curve, the confusion matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd


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


def predictions_table(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float
) -> pd.DataFrame:
    """Per test review, in the test split's order: its actual and predicted class, 1 positive
    and 0 negative (DVC's confusion-matrix plot; the report reads them as they are), and the
    predicted probability that it is positive."""
    return pd.DataFrame(
        {
            "actual": labels.astype(int),
            "predicted": (probabilities >= threshold).astype(int),
            "probability": probabilities,
        }
    )


def validation_table(labels: np.ndarray, probabilities: np.ndarray) -> str:
    """Every validation review's class and the model's probability, as CSV (%.9g keeps every
    digit of a float32)."""
    table = pd.DataFrame({"actual": labels.astype(int), "probability": probabilities})
    return table.to_csv(index=False, float_format="%.9g")
