"""Stage 5: compare every model of params.yaml, over every seed, in reports/ and in MLflow.

    python -m stages.report

Writes the comparison (per model and per pair of models, with intervals and paired tests) as
Markdown and CSV, each model's mean accuracies as DVC metrics, and PNG plots of the learning
and ROC curves (each model's first seed) and of the accuracies with their intervals. The
comparison is an MLflow run of its own, and the best model by validation accuracy becomes the
registry's champion if it beats it.
"""

from __future__ import annotations

import logging

import pandas as pd

from imdb_sentiment import comparison, paths, plots, significance, tracking
from imdb_sentiment.cli import run_stage
from imdb_sentiment.files import write_json, write_text
from imdb_sentiment.params import load_params

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    all_params = load_params(paths.PARAMS_FILE)
    models = [all_params.model(name) for name in all_params.models]
    names, seeds = [model.name for model in models], all_params.train.seeds
    threshold = all_params.evaluate.threshold
    runs = comparison.read_runs(names, seeds)
    labels, probabilities = comparison.read_test_probabilities(names, seeds)
    table = comparison.comparison_table(models, runs, labels, probabilities, threshold)
    pair_results = significance.compare_pairs(
        labels, probabilities, threshold, comparison.BOOTSTRAP_SEED
    )
    pairs = comparison.pairs_table(pair_results, len(labels))
    tags = {"pipeline_stage": "report", "compared_runs": ",".join(runs["mlflow_run_id"])}
    with tracking.run(all_params.mlflow.experiment_name, run_name="comparison", tags=tags):
        first = seeds[0]
        figures = {
            paths.LEARNING_CURVES_PLOT: plots.learning_curves(
                {name: pd.read_csv(paths.training_history(name, first)) for name in names}
            ),
            paths.ROC_CURVES_PLOT: plots.roc_curves(
                {name: pd.read_csv(paths.roc_points(name, first)) for name in names},
                dict(zip(names, table["test_roc_auc"], strict=True)),
            ),
            paths.TEST_ACCURACY_PLOT: plots.accuracy_intervals(table, runs),
        }
        for path, figure in figures.items():
            plots.save_figure(figure, path)
        write_text(paths.COMPARISON_TABLE, comparison.as_markdown(table, pairs, seeds, len(labels)))
        write_text(paths.COMPARISON_CSV, table.to_csv(index=False))
        write_text(paths.PAIRS_CSV, pairs.to_csv(index=False))
        write_json(paths.SUMMARY_METRICS, comparison.summary_metrics(table))
        logger.info("Comparison:\n%s", paths.COMPARISON_TABLE.read_text())
        tracking.log_comparison(
            table,
            [paths.COMPARISON_TABLE, paths.COMPARISON_CSV, paths.PAIRS_CSV, *figures],
        )

        best = comparison.best_by_validation(table, runs)
        registered_name = all_params.report.registered_model_name
        version, changed = tracking.promote_if_better(
            registered_name,
            best["model_uri"],
            float(best["val_accuracy"]),
            comparison.version_tags(best, all_params.model(best["model"], int(best["seed"]))),
        )
        tracking.log_champion(best["model"], version, changed)
        logger.info(
            "Best by validation accuracy: %s with seed %d (%.4f). %s@%s is %s",
            best["model"],
            best["seed"],
            best["val_accuracy"],
            registered_name,
            tracking.CHAMPION_ALIAS,
            f"now version {version}" if changed else f"still version {version}: not beaten",
        )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
