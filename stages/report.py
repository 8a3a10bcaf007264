"""Stage 5: compare every model of params.yaml, over every seed, in reports/ and in MLflow.

    python -m stages.report

Writes the comparison as Markdown and CSV (per model, and per pair of models what the seeds can
show: verdicts about the recipes with three seeds or more, docs/statistics.md), each model's
mean accuracies as DVC metrics, and PNG plots of the learning and ROC curves (each model's
first seed) and of the accuracies with their intervals. The comparison is an MLflow run of its
own, and the best model by validation accuracy becomes the registry's champion if it beats the
champion by more than the validation set's noise.
"""

from __future__ import annotations

import logging

import pandas as pd

from imdb_sentiment import comparison, paths, plots, run_table
from imdb_sentiment.cli import run_stage
from imdb_sentiment.files import read_json, write_json, write_text
from imdb_sentiment.params import load_params
from imdb_sentiment.tracking import lifecycle, records, registry

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    project = paths.this_project()
    all_params = load_params(project.params_file)
    models = [all_params.model(name) for name in all_params.models]
    names, seeds = [model.name for model in models], all_params.train.seeds
    threshold, report = all_params.evaluate.threshold, all_params.report
    runs = run_table.from_files(project, models, seeds)
    labels, probabilities = comparison.read_test_probabilities(project, names, seeds)
    correct = comparison.correctness(labels, probabilities, threshold)
    table = comparison.comparison_table(models, runs, labels, probabilities, threshold)
    pairs = comparison.pairs_table(correct, seeds, report.equivalence_margin)
    validation_reviews = int(read_json(project.data_stats)["val"]["reviews"])
    tags = {"pipeline_stage": "report", "compared_runs": ",".join(runs["mlflow_run_id"])}
    with lifecycle.run(all_params.mlflow.experiment_name, run_name="comparison", tags=tags):
        best = comparison.best_by_validation(table, runs)
        incumbent = registry.champion_summary(report.registered_model_name)
        if incumbent is not None and incumbent["val_reviews"] is None:
            incumbent["val_reviews"] = validation_reviews
        promote, why = comparison.champion_decision(best, validation_reviews, incumbent)
        sections = {
            "Seed ensembles": comparison.ensemble_sentences(labels, probabilities, threshold),
            "How many seeds": [comparison.seeds_needed_sentence(correct, report.planning_seed_sd)],
            "Champion": [why],
        }
        markdown = comparison.as_markdown(
            table, pairs, seeds, len(labels), report.equivalence_margin, sections
        )
        first = seeds[0]
        figures = {
            project.learning_curves_plot: plots.learning_curves(
                {name: pd.read_csv(project.training_history(name, first)) for name in names}
            ),
            project.roc_curves_plot: plots.roc_curves(
                {name: pd.read_csv(project.roc_points(name, first)) for name in names},
                dict(zip(names, table["test_roc_auc"], strict=True)),
            ),
            project.test_accuracy_plot: plots.accuracy_intervals(table, runs),
        }
        for path, figure in figures.items():
            plots.save_figure(figure, path)
        write_text(project.comparison_table, markdown)
        write_text(project.comparison_csv, table.to_csv(index=False))
        write_text(project.pairs_csv, pairs.to_csv(index=False))
        write_text(project.runs_csv, runs.to_csv(index=False))
        write_json(project.summary_metrics, comparison.summary_metrics(table))
        logger.info("Comparison:\n%s", markdown)
        records.log_comparison(
            table,
            [
                project.comparison_table,
                project.comparison_csv,
                project.pairs_csv,
                project.runs_csv,
                *figures,
            ],
        )
        version = incumbent["version"] if incumbent else None
        if promote:
            model = all_params.model(best["model"], int(best["seed"]))
            version_tags = {
                **comparison.version_tags(best, model),
                "val_accuracy": str(float(best["val_accuracy"])),
                "val_reviews": str(validation_reviews),
            }
            version = registry.promote(
                report.registered_model_name, best["model_uri"], version_tags
            )
        registry.log_champion(best["model"], version, promote, why)
        logger.info(
            "%s %s@%s is version %s.",
            why,
            report.registered_model_name,
            registry.CHAMPION_ALIAS,
            version,
        )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
