"""The one table of runs: the report builds it from the pipeline's files, the sweep from
MLflow's records; the same run gives the same row either way."""

import math

import pandas as pd
import pytest

from imdb_sentiment import run_table
from imdb_sentiment.errors import StageError
from imdb_sentiment.files import write_json
from imdb_sentiment.params import parse_params
from imdb_sentiment.paths import ProjectFiles
from imdb_sentiment.tracking.records import training_run_params
from tests.conftest import tiny_params

SUMMARY = {"epochs_run": 5, "best_epoch": 3, "best_val_loss": 0.4, "best_val_accuracy": 0.81}
TIME = {"training_seconds": 12.5, "samples_per_second": 900.0, "seconds_to_first_step": 4.0}
TEST = {"loss": 0.42, "accuracy": 0.8, "precision": 0.79, "recall": 0.82, "f1": 0.8}


@pytest.fixture
def gru():
    return parse_params(tiny_params()).model("gru", 42)


def write_run(project: ProjectFiles, name: str, seed: int) -> None:
    write_json(project.training_summary(name, seed), {**SUMMARY, "trainable_params": 1234})
    write_json(project.training_time(name, seed), TIME)
    write_json(project.evaluation_metrics(name, seed), {**TEST, "roc_auc": 0.88})
    write_json(project.run_id_file(name, seed), {"run_id": "r1", "model_uri": "models:/m-1"})


def test_the_report_and_the_sweep_read_the_same_row_of_a_run(tmp_path, gru):
    project = ProjectFiles(tmp_path)
    write_run(project, "gru", 42)
    from_files = run_table.from_files(project, [gru])
    recorded = {**SUMMARY, **TIME, "trainable_params": 1234, "test_roc_auc": 0.88}
    recorded.update({f"test_{key}": value for key, value in TEST.items()})
    logged_params = training_run_params(gru.model_dump(), {})
    from_mlflow = run_table.from_mlflow(
        pd.DataFrame(
            [
                {
                    "run_id": "r1",
                    "tags.model_name": "gru",
                    "tags.seed": "42",
                    **{f"params.{key}": value for key, value in logged_params.items()},
                    **{f"metrics.{key}": value for key, value in recorded.items()},
                }
            ]
        )
    )
    assert list(from_files.columns) == list(from_mlflow.columns) == run_table.COLUMNS
    row = from_files.iloc[0]
    assert (row["model"], row["seed"], row["cell"], row["units"]) == ("gru", 42, "gru", 8)
    assert (row["val_accuracy"], row["test_accuracy"], row["test_roc_auc"]) == (0.81, 0.8, 0.88)
    assert (row["mlflow_run_id"], row["model_uri"]) == ("r1", "models:/m-1")
    metrics = list(run_table.METRICS.values())
    pd.testing.assert_series_equal(
        from_files.loc[0, metrics].astype(float), from_mlflow.loc[0, metrics].astype(float)
    )
    # MLflow keeps params as strings; the logged model's URI is not among its run's columns.
    assert from_mlflow.loc[0, "units"] == "8" and from_mlflow.loc[0, "model"] == "gru"
    assert from_mlflow.loc[0, "model_uri"] is None


def test_a_missing_file_names_itself_and_dvc_repro(tmp_path, gru):
    project = ProjectFiles(tmp_path)
    write_run(project, "gru", 42)
    project.training_time("gru", 42).unlink()
    with pytest.raises(StageError, match=r"training_time.json is missing: run `dvc repro`"):
        run_table.from_files(project, [gru])


def test_a_metric_mlflow_did_not_record_is_empty(gru):
    frame = pd.DataFrame([{"run_id": "r2", "tags.model_name": "gru", "tags.seed": "7"}])
    row = run_table.from_mlflow(frame).iloc[0]
    assert row["seed"] == 7 and math.isnan(row["test_accuracy"])
