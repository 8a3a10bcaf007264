"""Stage 5: compare every model of params.yaml in reports/, and record the comparison in MLflow.

    python -m stages.report

Writes a Markdown and a CSV table, and PNG plots of the learning curves, the ROC curves and the
accuracies. The comparison is an MLflow run of its own, tagged with the runs it compares, and
the model with the best validation accuracy becomes the registry's champion if it beats it.
"""

from __future__ import annotations

import logging

import pandas as pd

from imdb_sentiment import paths, plots, tracking
from imdb_sentiment.cli import run_stage
from imdb_sentiment.comparison import (
    as_markdown,
    best_by_validation,
    comparison_table,
    read_model_outputs,
    version_tags,
)
from imdb_sentiment.files import write_text
from imdb_sentiment.params import load_params

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    all_params = load_params(paths.PARAMS_FILE)
    models = [all_params.model(name) for name in all_params.models]
    names = [model.name for model in models]
    training, testing, runs = read_model_outputs(names)
    table = comparison_table(
        models, training, testing, {name: run["run_id"] for name, run in runs.items()}
    )
    tags = {"pipeline_stage": "report", "compared_runs": ",".join(table["mlflow_run_id"])}
    with tracking.run(all_params.mlflow.experiment_name, run_name="comparison", tags=tags):
        indexed = table.set_index("model")
        figures = {
            paths.LEARNING_CURVES_PLOT: plots.learning_curves(
                {name: pd.read_csv(paths.training_history(name)) for name in names}
            ),
            paths.ROC_CURVES_PLOT: plots.roc_curves(
                {name: pd.read_csv(paths.roc_points(name)) for name in names},
                indexed["test_roc_auc"].to_dict(),
            ),
            paths.TEST_ACCURACY_PLOT: plots.accuracy_bars(
                indexed["test_accuracy"], indexed["val_accuracy"]
            ),
        }
        for path, figure in figures.items():
            plots.save_figure(figure, path)
        write_text(paths.COMPARISON_TABLE, as_markdown(table))
        write_text(paths.COMPARISON_CSV, table.to_csv(index=False))
        logger.info("Comparison:\n%s", table.drop(columns="mlflow_run_id").to_string(index=False))
        tracking.log_comparison(table, [paths.COMPARISON_TABLE, paths.COMPARISON_CSV, *figures])

        best = best_by_validation(table)
        registered_name = all_params.report.registered_model_name
        version, changed = tracking.promote_if_better(
            registered_name,
            runs[best["model"]]["model_uri"],
            float(best["val_accuracy"]),
            version_tags(best, all_params.model(best["model"])),
        )
        tracking.log_champion(best["model"], version, changed)
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
