"""The table of training runs, one row per model and seed: the run's hyperparameters, its
metrics and its MLflow ids. The report builds it from the pipeline's files (and writes it as
reports/runs.csv); the sweep builds it from what MLflow recorded of earlier experiments; both
then read the same columns.
"""

from __future__ import annotations

import pandas as pd

from imdb_sentiment.errors import StageError
from imdb_sentiment.files import read_json
from imdb_sentiment.params import Hyperparameters, ModelParams
from imdb_sentiment.paths import ProjectFiles

# A run's metrics, by the name the pipeline's files and MLflow give them: the table's column.
METRICS = {
    "best_epoch": "best_epoch",
    "epochs_run": "epochs_run",
    "best_val_loss": "val_loss",
    "best_val_accuracy": "val_accuracy",
    "trainable_params": "trainable_params",
    "training_seconds": "training_seconds",
    "samples_per_second": "samples_per_second",
    "seconds_to_first_step": "seconds_to_first_step",
    **{
        f"test_{name}": f"test_{name}"
        for name in ("loss", "accuracy", "precision", "recall", "f1", "roc_auc")
    },
}
HYPERPARAMETERS = list(Hyperparameters.model_fields)
COLUMNS = [
    "model",
    "seed",
    "cell",
    *HYPERPARAMETERS,
    *METRICS.values(),
    "mlflow_run_id",
    "model_uri",
]


def from_files(project: ProjectFiles, networks: list[ModelParams]) -> pd.DataFrame:
    """The runs of ``networks`` (each a model's params with its seed), from the files their
    training and evaluation wrote under ``project``.

    Raises:
        StageError: A run's file is missing (naming it, and ``dvc repro``).
    """
    rows = []
    try:
        for network in networks:
            name, seed = network.name, network.seed
            test = read_json(project.evaluation_metrics(name, seed))
            recorded = {
                **read_json(project.training_summary(name, seed)),
                **read_json(project.training_time(name, seed)),
                **{f"test_{metric}": value for metric, value in test.items()},
            }
            mlflow_run = read_json(project.run_id_file(name, seed))
            rows.append(
                {
                    **network.model_dump(include={"cell", *HYPERPARAMETERS}),
                    "model": name,
                    "seed": seed,
                    **{column: recorded.get(key) for key, column in METRICS.items()},
                    "mlflow_run_id": mlflow_run["run_id"],
                    "model_uri": mlflow_run["model_uri"],
                }
            )
    except FileNotFoundError as error:
        raise StageError(
            f"{error.filename} is missing: run `dvc repro` to train and evaluate every model"
        ) from None
    return pd.DataFrame(rows, columns=COLUMNS)


def from_mlflow(mlflow_runs: pd.DataFrame) -> pd.DataFrame:
    """The same table from MLflow's ``search_runs`` frame of training runs (tags ``model_name``
    and ``seed``, params as strings, metrics by the names in :data:`METRICS`). The logged
    model's URI is not in that frame: its column is empty."""
    table = pd.DataFrame(
        {
            "model": mlflow_runs["tags.model_name"],
            "seed": mlflow_runs["tags.seed"].astype(int),
            "cell": mlflow_runs.get("params.cell"),
            **{key: mlflow_runs.get(f"params.{key}") for key in HYPERPARAMETERS},
            **{
                column: mlflow_runs.get(f"metrics.{key}", float("nan"))
                for key, column in METRICS.items()
            },
            "mlflow_run_id": mlflow_runs["run_id"],
            "model_uri": None,
        },
        columns=COLUMNS,
    )
    return table.reset_index(drop=True)
