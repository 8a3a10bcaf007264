import numpy as np
import pytest

from imdb_sentiment.evaluation import predictions_table, score


def test_score_computes_threshold_metrics_auc_and_the_confusion_matrix():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probabilities = np.array([0.1, 0.4, 0.6, 0.55, 0.8, 0.3])
    result = score(labels, probabilities, threshold=0.5)
    metrics = result["metrics"]
    # Predicted: 0 0 1 1 1 0, so TN 2, FP 1, FN 1, TP 2.
    assert result["confusion_matrix"] == [[2, 1], [1, 2]]
    assert metrics["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert (
        metrics["precision"] == metrics["recall"] == metrics["f1"] == pytest.approx(2 / 3, abs=1e-4)
    )
    assert metrics["roc_auc"] == pytest.approx(6 / 9, abs=1e-4)
    assert 0 < metrics["loss"] < 1
    roc = result["roc"]
    assert list(roc.columns) == ["fpr", "tpr", "threshold"]
    assert roc["threshold"].max() <= 1.0


def test_a_perfect_model_scores_one():
    labels = np.array([0, 1, 0, 1])
    metrics = score(labels, np.array([0.01, 0.99, 0.2, 0.7]), threshold=0.5)["metrics"]
    assert metrics["accuracy"] == metrics["f1"] == metrics["roc_auc"] == 1.0


def test_the_predictions_table_keeps_classes_as_0_and_1_at_the_threshold():
    labels = np.array([1, 0, 1, 0])
    probabilities = np.array([0.7, 0.55, 0.5, 0.1], dtype=np.float32)
    table = predictions_table(labels, probabilities, threshold=0.55)
    assert table["actual"].tolist() == [1, 0, 1, 0]
    # At or above the threshold is positive: 0.55 is, 0.5 is not.
    assert table["predicted"].tolist() == [1, 1, 0, 0]
    assert table["probability"].tolist() == probabilities.tolist()


def test_a_probability_at_the_threshold_is_positive():
    labels = np.array([1, 0])
    result = score(labels, np.array([0.5, 0.2]), threshold=0.5)
    assert result["confusion_matrix"] == [[1, 0], [0, 1]]
    assert result["metrics"]["accuracy"] == 1.0


def test_metrics_are_rounded_to_five_digits():
    labels = np.array([0, 1, 1])
    metrics = score(labels, np.array([0.3, 0.6, 0.4]), threshold=0.5)["metrics"]
    assert metrics["accuracy"] == 0.66667  # 2/3
    assert metrics["loss"] == round(metrics["loss"], 5) and metrics["loss"] != round(
        metrics["loss"], 3
    )


def test_a_model_that_predicts_no_positive_scores_zero_precision_without_a_warning():
    import warnings

    labels = np.array([0, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = score(labels, np.array([0.1, 0.2, 0.3]), threshold=0.5)
    assert result["confusion_matrix"] == [[1, 0], [2, 0]]
    metrics = result["metrics"]
    # Nothing predicted positive: precision and F1 are 0, not undefined (nor 1).
    assert metrics["precision"] == metrics["recall"] == metrics["f1"] == 0.0


def test_the_predictions_table_writes_classes_as_whole_numbers():
    table = predictions_table(np.array([1, 0]), np.array([0.9, 0.1]), 0.5)
    assert table.to_csv(index=False).splitlines() == [
        "actual,predicted,probability",
        "1,1,0.9",
        "0,0,0.1",
    ]
