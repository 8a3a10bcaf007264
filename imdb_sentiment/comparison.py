"""Comparing the models on the test set they share, as far as their seeds allow: per model
its scores over seeds with their intervals; the report's text (the pairs are pairs.py's, the
champion champion.py's)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from imdb_sentiment import significance, verdicts
from imdb_sentiment.params import ModelParams
from imdb_sentiment.paths import ProjectFiles


def read_probabilities(
    project: ProjectFiles, seeds: dict[str, list[int]], split: str = "test"
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The labels (1 positive) of the ``split`` ("test" or "validation"), and every model's
    probabilities ``[seeds, reviews]``, its seeds in ``seeds[model]``'s order."""
    path = project.evaluation_predictions if split == "test" else project.validation_predictions
    probabilities = {}
    for name, of_model in seeds.items():
        tables = [pd.read_csv(path(name, seed)) for seed in of_model]
        probabilities[name] = np.stack([table["probability"].to_numpy() for table in tables])
    # Every evaluation scored the same split, in its order.
    return tables[0]["actual"].to_numpy(), probabilities


def correctness(
    labels: np.ndarray, probabilities: dict[str, np.ndarray], threshold: float
) -> dict[str, np.ndarray]:
    """Per model, ``[seeds, reviews]``: 1 where that seed's network labels the review right."""
    return {
        name: ((p >= threshold).astype(int) == labels).astype(np.int8)
        for name, p in probabilities.items()
    }


def validation_correctness(
    project: ProjectFiles, seeds: dict[str, list[int]], threshold: float
) -> tuple[np.ndarray, str]:
    """Every network's correctness on every validation review (``[networks, reviews]``, models
    then seeds in ``seeds``' order), and the md5 of the validation split that names it."""
    labels, probabilities = read_probabilities(project, seeds, "validation")
    correct = correctness(labels, probabilities, threshold)
    split = hashlib.md5(project.validation_split.read_bytes()).hexdigest()
    return np.concatenate(list(correct.values())), split


# What a model's interval is about, by its number of seeds.
INTERVAL_OF_A_RECIPE = "a freshly trained run (seeds and reviews)"
INTERVAL_OF_A_NETWORK = "this trained network (reviews only)"
NO_INTERVAL = "none: two seeds show the spread only"


def interval_about(seeds: int) -> str:
    if seeds >= significance.MIN_SEEDS_FOR_VERDICT:
        return INTERVAL_OF_A_RECIPE
    return INTERVAL_OF_A_NETWORK if seeds == 1 else NO_INTERVAL


def comparison_table(
    models: list[ModelParams],
    runs: pd.DataFrame,
    labels: np.ndarray,
    probabilities: dict[str, np.ndarray],
    threshold: float,
) -> pd.DataFrame:
    """One row per model: its size, how training went, and its validation and test scores as
    means over seeds, with standard deviations over seeds and 95% intervals: of the expected
    score of a freshly trained run with three or more seeds, of the one network with one seed,
    none with two (``interval_about`` says which)."""
    correct = correctness(labels, probabilities, threshold)
    rows = []
    for model in models:
        of_model = runs[runs["model"] == model.name]
        seeds = len(of_model)
        accuracy = significance.accuracy(correct[model.name]).interval()
        auc = significance.roc_auc(labels, probabilities[model.name]).interval()
        shown = seeds != 2
        rows.append(
            {
                "model": model.name,
                "cell": model.cell,
                "units": model.units,
                "trainable_params": int(of_model["trainable_params"].iloc[0]),
                "seeds": seeds,
                "epochs_run": of_model["epochs_run"].mean(),
                "val_accuracy": of_model["val_accuracy"].mean(),
                "val_accuracy_sd": of_model["val_accuracy"].std(),
                "test_accuracy": accuracy.estimate,
                "test_accuracy_sd": of_model["test_accuracy"].std(),
                "test_accuracy_low": accuracy.low if shown else np.nan,
                "test_accuracy_high": accuracy.high if shown else np.nan,
                "test_roc_auc": auc.estimate,
                "test_roc_auc_low": auc.low if shown else np.nan,
                "test_roc_auc_high": auc.high if shown else np.nan,
                "interval_about": interval_about(seeds),
                "test_f1": of_model["test_f1"].mean(),
                "test_loss": of_model["test_loss"].mean(),
                "training_seconds": of_model["training_seconds"].mean(),
                "samples_per_second": of_model["samples_per_second"].mean(),
                "mlflow_run_ids": ",".join(of_model["mlflow_run_id"]),
            }
        )
    return pd.DataFrame(rows)


def ensemble_sentences(
    labels: np.ndarray,
    probabilities: dict[str, np.ndarray],
    threshold: float,
    sequential_design: bool = False,
) -> list[str]:
    """With several seeds: each pair of seed ensembles (a model's mean probability over its
    networks) by McNemar's test, about those ensembles alone. None with one seed. Under a
    sequential design, the counts alone: its seeds were added look by look, on the evidence of
    these same test reviews, which a fixed-sample p-value does not allow for."""
    seeds = {name: len(p) for name, p in probabilities.items()}
    if min(seeds.values()) < 2:
        return []
    right = {
        name: (p.mean(axis=0) >= threshold).astype(int) == labels
        for name, p in probabilities.items()
    }
    compared = significance.compare_classifiers(right)
    return [
        verdicts.ensemble_sentence(pair, seeds, len(compared), with_p_value=not sequential_design)
        for pair in compared
    ]


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.4f}" if np.isnan(sd) else f"{mean:.4f} ± {sd:.4f}"


def _range(low: float, high: float) -> str:
    return "" if np.isnan(low) else f"{low:.4f}-{high:.4f}"


def _seed_counts(seeds: dict[str, list[int]]) -> str:
    counts = {len(of_model) for of_model in seeds.values()}
    if len(counts) == 1:
        count = counts.pop()
        return f"{count} seed{'s' * (count > 1)} each"
    return ", ".join(f"{name} {len(of_model)}" for name, of_model in seeds.items()) + " seeds"


def what_the_seeds_show(
    seeds: dict[str, list[int]], reviews: int, margin: float, sequential_design: bool
) -> str:
    """The paragraph under the report's title: what its numbers and sentences are about."""
    fewest = min(len(of_model) for of_model in seeds.values())
    common = (
        f"Every model trained with its seeds ({_seed_counts(seeds)}, params.yaml's networks); "
        f"the best epoch chosen on the validation split; the test split ({reviews:,} reviews) "
        "scored once."
    )
    if sequential_design:
        return (
            f"{common} Scores are means over seeds ± their standard deviation over seeds. The "
            "pairs are a group-sequential design over seeds (settle.design: sequential, "
            "`make settle`): each look adds seeds to the models of the pairs still open, and "
            "each pair's repeated 95% interval of the difference in expected test accuracy "
            "holds however often the report looks (error spent over the looks, Bonferroni over "
            f"the pairs); a pair closes as different, as equivalent within ±{100 * margin:.2f} "
            "points, or open at the cap (docs/statistics.md). The per-model 95% intervals of "
            "the table are each recipe's at these seeds, not adjusted for the looks."
        )
    if fewest >= significance.MIN_SEEDS_FOR_VERDICT:
        return (
            f"{common} Scores are means over seeds ± their standard deviation over seeds. A 95% "
            "interval is about a freshly trained run of the recipe: it adds the seed-to-seed "
            "variation to the sampling of test reviews. Pairs are compared once, on these "
            "seeds (a fixed design), with Welch's test for a difference and TOST for "
            f"equivalence within ±{100 * margin:.2f} points (report.equivalence_margin), both "
            "corrected with Holm's method for the number of pairs (docs/statistics.md). Seeds "
            "added after looking call for `make settle`, whose tests allow for the looks."
        )
    if fewest == 2:
        return (
            f"{common} Scores are means over the seeds ± their standard deviation. Two "
            "seeds show how much runs spread, not whether the recipes differ: no interval or "
            "verdict about a recipe is given with fewer than three; `make settle` adds seeds "
            "until each pair is decided."
        )
    return (
        f"{common} One network per model: every number is about that trained network on these "
        "reviews, with 95% intervals over test reviews only. One seed cannot compare the "
        "recipes (another training of the same recipe moves by about a point): the sentences "
        "below compare the trained networks, and the section on seeds says how many a "
        "verdict about recipes would take."
    )


def as_markdown(
    table: pd.DataFrame, pairs: pd.DataFrame, intro: str, extra: dict[str, list[str]]
) -> str:
    """The report a person reads: ``intro`` (what_the_seeds_show), the models' table, a
    sentence per pair, and ``extra`` sections (title to lines: the seed ensembles, how many
    seeds, the champion)."""
    shown = pd.DataFrame(
        {
            "model": table["model"],
            "seeds": table["seeds"].map("{:d}".format),
            "units": table["units"],
            "trainable params": table["trainable_params"].map("{:,}".format),
            "val accuracy": [
                _mean_sd(*v) for v in table[["val_accuracy", "val_accuracy_sd"]].values
            ],
            "test accuracy": [
                _mean_sd(*v) for v in table[["test_accuracy", "test_accuracy_sd"]].values
            ],
            "95% CI": [_range(*bounds) for bounds in _bounds(table, "test_accuracy")],
            "test ROC AUC": table["test_roc_auc"].map("{:.4f}".format),
            "95% CI ": [_range(*bounds) for bounds in _bounds(table, "test_roc_auc")],
            "test F1": table["test_f1"].map("{:.4f}".format),
            "epochs run": table["epochs_run"].map("{:g}".format),
            "training s": table["training_seconds"].map("{:.1f}".format),
            "samples/s": table["samples_per_second"].map("{:.0f}".format),
        }
    )
    if table["test_accuracy_low"].isna().all():
        shown = shown.drop(columns=["95% CI", "95% CI "])
    lines = [
        "# Model comparison",
        "",
        intro,
        "",
        shown.to_markdown(index=False, disable_numparse=True),
        "",
        "Training s and samples/s: each training's wall time on the machine that ran it, beside "
        "whatever else ran there (`make run` runs a stage per core at a time).",
        "",
        "## Pairs of models",
        "",
    ]
    lines += [f"- {sentence}" for sentence in pairs["sentence"]]
    for title, section in extra.items():
        if section:
            lines += ["", f"## {title}", ""] + [f"- {line}" for line in section]
    return "\n".join(lines) + "\n"


def _bounds(table: pd.DataFrame, column: str):
    return zip(table[f"{column}_low"], table[f"{column}_high"], strict=True)


def summary_metrics(table: pd.DataFrame) -> dict:
    """Each model's mean validation and test accuracy, as DVC metrics: `make exp-show` shows
    them as columns ``val.<model>`` and ``test.<model>``, short enough to fit a terminal."""
    return {
        split: {
            row.model: round(float(getattr(row, f"{split}_accuracy")), 5)
            for row in table.itertuples()
        }
        for split in ("val", "test")
    }
