"""Comparing the models: one table of their validation and test scores, and the best of them."""

from __future__ import annotations

import pandas as pd

from imdb_sentiment import paths
from imdb_sentiment.cli import StageError
from imdb_sentiment.files import read_json
from imdb_sentiment.params import ModelParams


def comparison_table(
    models: list[ModelParams],
    training: dict[str, dict],
    testing: dict[str, dict],
    run_ids: dict[str, str],
) -> pd.DataFrame:
    """One row per model: its size, how training went, and its validation and test scores."""
    rows = [
        {
            "model": model.name,
            "cell": model.cell,
            "units": model.units,
            "trainable_params": training[model.name]["trainable_params"],
            "epochs_run": training[model.name]["epochs_run"],
            "best_epoch": training[model.name]["best_epoch"],
            "val_accuracy": training[model.name]["best_val_accuracy"],
            "test_accuracy": testing[model.name]["accuracy"],
            "test_loss": testing[model.name]["loss"],
            "test_f1": testing[model.name]["f1"],
            "test_roc_auc": testing[model.name]["roc_auc"],
            "training_seconds": training[model.name]["training_seconds"],
            "samples_per_second": training[model.name]["samples_per_second"],
            "mlflow_run_id": run_ids[model.name],
        }
        for model in models
    ]
    return pd.DataFrame(rows)


# Scores to four places, seconds to one, throughput to whole reviews per second.
_COLUMN_FORMATS = {"training_seconds": ".1f", "samples_per_second": ".0f"}


def as_markdown(table: pd.DataFrame) -> str:
    formats = [_COLUMN_FORMATS.get(column, ".4f") for column in table.columns]
    return (
        "# Model comparison\n\n"
        "Best epoch chosen on the validation split; test metrics on the test split.\n\n"
        + table.to_markdown(index=False, floatfmt=formats)
        + "\n"
    )


def best_by_validation(table: pd.DataFrame) -> pd.Series:
    """The row of the model with the best validation accuracy: never chosen on the test set.
    Ties go to the model listed first in params.yaml."""
    return table.loc[table["val_accuracy"].idxmax()]


def version_tags(best: pd.Series, model: ModelParams) -> dict[str, str]:
    """Tags of a registered model version: the pipeline's model name, its run, its effective
    hyperparameters and its test metrics."""
    metrics = ("test_accuracy", "test_loss", "test_f1", "test_roc_auc")
    return {
        "pipeline_model": model.name,
        "source_run_id": best["mlflow_run_id"],
        **{f"param_{key}": str(value) for key, value in model.model_dump().items()},
        **{metric: str(best[metric]) for metric in metrics},
    }


def read_model_outputs(names: list[str]) -> tuple[dict, dict, dict]:
    """Every model's training summary, test metrics and MLflow run, by model name."""
    try:
        training = {name: read_json(paths.training_summary(name)) for name in names}
        testing = {name: read_json(paths.evaluation_metrics(name)) for name in names}
        runs = {name: read_json(paths.run_id_file(name)) for name in names}
    except FileNotFoundError as error:
        raise StageError(
            f"{error.filename} is missing: run `dvc repro` to train and evaluate every model"
        ) from None
    return training, testing, runs
