import pandas as pd
import pytest

from imdb_sentiment.comparison import as_markdown, best_by_validation, comparison_table
from imdb_sentiment.params import parse_params
from tests.conftest import tiny_params


@pytest.fixture
def table() -> pd.DataFrame:
    raw = tiny_params()
    raw["models"]["lstm"]["units"] = 32
    raw["models"]["gru"]["units"] = 64
    params = parse_params(raw)
    models = [params.model(name) for name in ("lstm", "gru")]
    training = {
        name: {
            "trainable_params": 1000 + i,
            "epochs_run": 5,
            "best_epoch": 2,
            "best_val_accuracy": 0.85 + i / 100,
            "training_seconds": 40.0,
            "samples_per_second": 2800.0,
        }
        for i, name in enumerate(("lstm", "gru"))
    }
    testing = {
        "lstm": {"accuracy": 0.84, "loss": 0.36, "f1": 0.83, "roc_auc": 0.92},
        "gru": {"accuracy": 0.83, "loss": 0.33, "f1": 0.86, "roc_auc": 0.93},
    }
    return comparison_table(models, training, testing, {"lstm": "run-a", "gru": "run-b"})


def test_comparison_has_one_row_per_model_with_validation_and_test_scores(table):
    assert list(table["model"]) == ["lstm", "gru"]
    assert list(table["units"]) == [32, 64]
    assert list(table["test_accuracy"]) == [0.84, 0.83]
    assert list(table["mlflow_run_id"]) == ["run-a", "run-b"]
    for column in (
        "trainable_params",
        "epochs_run",
        "best_epoch",
        "val_accuracy",
        "test_loss",
        "test_f1",
        "test_roc_auc",
        "training_seconds",
        "samples_per_second",
    ):
        assert column in table.columns
    markdown = as_markdown(table)
    assert "| lstm " in markdown and "0.8600" in markdown


def test_the_best_model_is_chosen_on_validation_never_on_test(table):
    # lstm has the better test accuracy, gru the better validation accuracy.
    assert best_by_validation(table)["model"] == "gru"
