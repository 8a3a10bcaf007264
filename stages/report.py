"""Stage 5: compare every model of params.yaml in reports/, and record the comparison in MLflow.

Writes a Markdown and a CSV table, and PNG plots of the learning curves, the ROC curves and the
accuracies. The comparison is an MLflow run of its own, tagged with the runs it compares.
"""

from __future__ import annotations

import logging

import pandas as pd

from stages import paths, plots, tracking
from stages.cli import StageError, run_stage
from stages.files import read_json, write_text
from stages.params import ModelParams, load_params

logger = logging.getLogger(__name__)


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


def _read_outputs(names: list[str]) -> tuple[dict, dict, dict]:
    try:
        training = {name: read_json(paths.training_summary(name)) for name in names}
        testing = {name: read_json(paths.evaluation_metrics(name)) for name in names}
        runs = {name: read_json(paths.run_id_file(name)) for name in names}
    except FileNotFoundError as error:
        raise StageError(
            f"{error.filename} is missing: run `dvc repro` to train and evaluate every model"
        ) from None
    return training, testing, runs


def main(argv: list[str]) -> None:
    all_params = load_params(paths.PARAMS_FILE)
    models = [all_params.model(name) for name in all_params.models]
    names = [model.name for model in models]
    training, testing, runs = _read_outputs(names)
    run_ids = {name: run["run_id"] for name, run in runs.items()}
    table = comparison_table(models, training, testing, run_ids)

    tags = {"pipeline_stage": "report", "compared_runs": ",".join(run_ids.values())}
    with tracking.run(all_params.mlflow.experiment_name, run_name="comparison", tags=tags):
        import mlflow

        histories = {name: pd.read_csv(paths.training_history(name)) for name in names}
        roc = {name: pd.read_csv(paths.roc_points(name)) for name in names}
        indexed = table.set_index("model")
        figures = {
            paths.LEARNING_CURVES_PLOT: plots.learning_curves(histories),
            paths.ROC_CURVES_PLOT: plots.roc_curves(roc, indexed["test_roc_auc"].to_dict()),
            paths.TEST_ACCURACY_PLOT: plots.accuracy_bars(
                indexed["test_accuracy"], indexed["val_accuracy"]
            ),
        }
        for path, figure in figures.items():
            plots.save_figure(figure, path)
        write_text(paths.COMPARISON_TABLE, as_markdown(table))
        write_text(paths.COMPARISON_CSV, table.to_csv(index=False))
        logger.info("Comparison:\n%s", table.drop(columns="mlflow_run_id").to_string(index=False))

        mlflow.log_params({f"run_id_{name}": run_id for name, run_id in run_ids.items()})
        for path in (paths.COMPARISON_TABLE, paths.COMPARISON_CSV, *figures):
            mlflow.log_artifact(str(path))
        mlflow.log_metrics(
            {f"{row.model}_test_accuracy": row.test_accuracy for row in table.itertuples()}
        )
        _register_best(all_params.report.registered_model_name, table, runs, all_params)


def _register_best(registered_name: str, table: pd.DataFrame, runs: dict, all_params) -> None:
    import mlflow

    best = best_by_validation(table)
    version, changed = tracking.promote_if_better(
        registered_name,
        runs[best["model"]]["model_uri"],
        float(best["val_accuracy"]),
        version_tags(best, all_params.model(best["model"])),
    )
    mlflow.set_tags(
        {
            "best_model": best["model"],
            "champion_version": str(version),
            "champion_changed": str(changed).lower(),
        }
    )
    logger.info(
        "Best by validation accuracy: %s (%.4f). %s@%s is %s",
        best["model"],
        best["val_accuracy"],
        registered_name,
        tracking.CHAMPION_ALIAS,
        f"now version {version}" if changed else f"still version {version}: not beaten",
    )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
