"""A sweep's table takes, for each value and model, the newest finished run of exactly the
current recipe but for the swept key, averaged over the seeds; runs of any other recipe, and
runs whose evaluation did not finish, never mix in."""

import math

import pandas as pd
import pytest

from imdb_sentiment import sweep
from imdb_sentiment.errors import StageError
from imdb_sentiment.params import parse_params
from tests.conftest import networks, tiny_params


@pytest.fixture
def params():
    raw = tiny_params()
    raw["networks"] = networks(raw["models"], [1, 2])
    return parse_params(raw)


def run_row(params, model, seed, maxlen, test_accuracy, run_id, **param_changes):
    raw = params.model_dump()
    raw["data"]["maxlen"] = maxlen
    logged = sweep.expected_run_params(parse_params(raw), model, seed)
    logged.update({key: str(value) for key, value in param_changes.items()})
    return {
        "run_id": run_id,
        "tags.model_name": model,
        "tags.seed": str(seed),
        **{f"params.{key}": value for key, value in logged.items()},
        "metrics.best_val_accuracy": test_accuracy - 0.01,
        "metrics.test_accuracy": test_accuracy,
        "metrics.training_seconds": maxlen / 10,
        "metrics.epochs_run": 4.0,
    }


def test_the_newest_run_of_the_recipe_per_seed_averaged(params):
    runs = pd.DataFrame(
        [  # newest first, as MLflow returns them
            run_row(params, "lstm", 1, 160, 0.90, "newest"),
            run_row(params, "lstm", 1, 160, 0.70, "older"),
            run_row(params, "lstm", 2, 160, 0.86, "seed2"),
            run_row(params, "lstm", 1, 160, 0.99, "other-units", units=64),
            run_row(params, "lstm", 1, 80, 0.80, "short"),
            run_row(params, "gru", 1, 80, 0.81, "gru-short"),
        ]
    )
    table = sweep.sweep_table(runs, params, "data.maxlen", ["80", "160"]).set_index(
        ["data.maxlen", "model"]
    )
    lstm_160 = table.loc[(160, "lstm")]
    assert lstm_160["seeds"] == 2
    assert lstm_160["test_accuracy"] == pytest.approx(0.88)
    assert lstm_160["mlflow_run_ids"] == "newest seed2"
    assert lstm_160["seconds_per_epoch"] == pytest.approx(16 / 4)
    assert table.loc[(80, "lstm"), "seeds"] == 1
    assert table.loc[(80, "gru"), "test_accuracy"] == pytest.approx(0.81)
    assert table.loc[(160, "gru"), "seeds"] == 0
    assert math.isnan(table.loc[(160, "gru"), "test_accuracy"])
    assert table.loc[(160, "simplernn"), "seeds"] == 0


def test_a_run_whose_evaluation_did_not_finish_is_not_a_point(params):
    unevaluated = run_row(params, "gru", 1, 80, 0.85, "no-test")
    unevaluated["metrics.test_accuracy"] = float("nan")
    table = sweep.sweep_table(pd.DataFrame([unevaluated]), params, "data.maxlen", ["80"])
    assert (table["seeds"] == 0).all()


def test_no_runs_at_all_gives_empty_points(params):
    table = sweep.sweep_table(pd.DataFrame(), params, "train.units", ["8", "16"])
    assert list(table["train.units"]) == [8] * 3 + [16] * 3
    assert (table["seeds"] == 0).all()
    header = sweep.as_markdown(table).splitlines()[0].replace(" ", "")
    assert header.startswith("|train.units|model|seeds|val_accuracy|test_accuracy|")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("models.lstm.units", "8", "only a key of the data or train section"),
        ("train.seeds", "1", "only a key of the data or train section"),
        ("data.maxlen", "long", "data.maxlen: "),
    ],
)
def test_a_key_that_cannot_be_swept_is_named(params, key, value, message):
    with pytest.raises(StageError, match=message):
        sweep.sweep_table(pd.DataFrame(), params, key, [value])
