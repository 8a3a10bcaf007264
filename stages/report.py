"""Stage 5: compare every model of params.yaml, over its networks, in reports/ and in MLflow.

    python -m stages.report

Writes the comparison as Markdown and CSV (per model, and per pair of models what its seeds can
show under the design settle.design names, docs/statistics.md), each model's mean accuracies as
DVC metrics, PNG plots and the tables of dvc.yaml's overlaid plots. The comparison is an MLflow
run of its own; the best network on one half of the validation reviews becomes the registry's
champion if, on the other half, it beats the champion by more than chance (champion.py).
"""

from __future__ import annotations

import logging

import pandas as pd

from imdb_sentiment import champion, comparison, pairs, paths, plots, run_table
from imdb_sentiment.cli import run_stage
from imdb_sentiment.files import write_json, write_text
from imdb_sentiment.params import load_params
from imdb_sentiment.tracking import lifecycle, records, registry

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    project = paths.this_project()
    all_params = load_params(project.params_file)
    threshold, report = all_params.evaluate.threshold, all_params.report
    seeds = {name: all_params.seeds(name) for name in all_params.models}
    networks = [all_params.model(name, seed) for name, of in seeds.items() for seed in of]
    runs = run_table.from_files(project, networks)
    labels, probabilities = comparison.read_probabilities(project, seeds)
    correct = comparison.correctness(labels, probabilities, threshold)
    models = [all_params.model(name) for name in seeds]
    table = comparison.comparison_table(models, runs, labels, probabilities, threshold)
    design = pairs.design_of(all_params)
    first_seeds = {name: of[0] for name, of in seeds.items()}
    pair_rows = pairs.pairs_table(correct, report.equivalence_margin, design, first_seeds)
    validation_right, split = comparison.validation_correctness(project, seeds, threshold)
    tags = {"pipeline_stage": "report", "compared_runs": ",".join(runs["mlflow_run_id"])}
    with lifecycle.run(all_params.mlflow.experiment_name, run_name="comparison", tags=tags):
        candidate, position = champion.choose(runs, validation_right)
        incumbent = registry.champion_summary(report.registered_model_name)
        incumbent_right = registry.validation_correctness(incumbent, split, threshold)
        promote, why = champion.decide(
            candidate, validation_right[position], len(runs), incumbent, incumbent_right
        )
        sections = {
            "Seed ensembles": comparison.ensemble_sentences(
                labels, probabilities, threshold, sequential_design=design is not None
            ),
            # Under a settle, `make settle` says how many: it adds seeds until each pair closes.
            "How many seeds": pairs.seeds_needed_sentences(correct, report.planning_seed_sd)
            if design is None
            else [],
            "Champion": [why],
        }
        intro = comparison.what_the_seeds_show(
            seeds, len(labels), report.equivalence_margin, design is not None
        )
        markdown = comparison.as_markdown(table, pair_rows, intro, sections)
        figures = _plots(project, [(n.name, n.seed) for n in networks], first_seeds, table, runs)
        write_text(project.comparison_table, markdown)
        write_text(project.comparison_csv, table.to_csv(index=False))
        write_text(project.pairs_csv, pair_rows.to_csv(index=False))
        write_text(project.runs_csv, runs.to_csv(index=False))
        write_json(project.summary_metrics, comparison.summary_metrics(table))
        logger.info("Comparison:\n%s", markdown)
        files = [project.comparison_table, project.comparison_csv, project.pairs_csv]
        records.log_comparison(table, [*files, project.runs_csv, *figures])
        version = incumbent["version"] if incumbent else None
        if promote:
            model = all_params.model(candidate["model"], int(candidate["seed"]))
            version_tags = champion.version_tags(
                candidate, model, validation_right[position], split
            )
            version = registry.promote(
                report.registered_model_name, candidate["model_uri"], version_tags
            )
        registry.log_champion(candidate["model"], version, promote, why)
        logger.info("%s %s@%s is version %s.", why, report.registered_model_name,
                    registry.CHAMPION_ALIAS, version)  # fmt: skip


def _plots(project, networks, first_seeds, table, runs) -> list:
    """Writes the figures (each model's first network) and the overlaid plots' tables (every
    network); returns the figures' paths."""
    histories = {key: pd.read_csv(project.training_history(*key)) for key in networks}
    rocs = {key: pd.read_csv(project.roc_points(*key)) for key in networks}
    figures = {
        project.learning_curves_plot: plots.learning_curves(
            {name: histories[(name, seed)] for name, seed in first_seeds.items()}
        ),
        project.roc_curves_plot: plots.roc_curves(
            {name: rocs[(name, seed)] for name, seed in first_seeds.items()},
            dict(zip(first_seeds, table["test_roc_auc"], strict=True)),
        ),
        project.test_accuracy_plot: plots.accuracy_intervals(table, runs),
    }
    for path, figure in figures.items():
        plots.save_figure(figure, path)
    for name, data in plots.overlay_tables(histories, rocs, runs).items():
        write_text(project.overlay_plot_data(name), data.to_csv(index=False))
    return list(figures)


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
