"""Comparing the models on the test set they share, as far as their seeds allow: per model
its scores over seeds with their intervals, per pair of models what the seeds can show (a
verdict about the recipes with three seeds or more), and the champion, chosen on validation
accuracy only."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from imdb_sentiment import significance, verdicts
from imdb_sentiment.params import ModelParams
from imdb_sentiment.paths import ProjectFiles


def read_test_probabilities(
    project: ProjectFiles, names: list[str], seeds: list[int]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The test labels (1 positive), and every model's probabilities ``[seeds, reviews]``."""
    probabilities = {}
    for name in names:
        tables = [pd.read_csv(project.evaluation_predictions(name, seed)) for seed in seeds]
        probabilities[name] = np.stack([table["probability"].to_numpy() for table in tables])
    # Every evaluation scored the same test split, in its order.
    return tables[0]["actual"].to_numpy(), probabilities


def correctness(
    labels: np.ndarray, probabilities: dict[str, np.ndarray], threshold: float
) -> dict[str, np.ndarray]:
    """Per model, ``[seeds, reviews]``: 1 where that seed's network labels the review right."""
    return {
        name: ((p >= threshold).astype(int) == labels).astype(np.int8)
        for name, p in probabilities.items()
    }


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


PAIR_COLUMNS = [
    "model_a",
    "model_b",
    "about",
    "accuracy_difference_points",
    "difference_low",
    "difference_high",
    "test",
    "p_value",
    "p_value_holm",
    "equivalence_p_value_holm",
    "probability_a_beats_b",
    "verdict",
    "sentence",
]


def pairs_table(correct: dict[str, np.ndarray], seeds: list[int], margin: float) -> pd.DataFrame:
    """One row per pair of models, about what the seeds can show: with three or more seeds, a
    freshly trained run of each recipe (Welch's test, TOST, Holm); with two, the spread of the
    runs; with one, the two trained networks (McNemar's exact test, Holm)."""
    if len(seeds) >= significance.MIN_SEEDS_FOR_VERDICT:
        rows = [_recipe_row(pair, len(correct) * (len(correct) - 1) // 2)
                for pair in significance.compare_recipes(correct, margin)]  # fmt: skip
    elif len(seeds) == 2:
        rows = [_spread_row(a, b, correct) for a, b in combinations(correct, 2)]
    else:
        first_network = {name: c[0] for name, c in correct.items()}
        compared = significance.compare_classifiers(first_network)
        rows = [
            _network_row(pair, verdicts.network_sentence(pair, seeds[0], len(compared)))
            for pair in compared
        ]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def _recipe_row(pair: significance.RecipeComparison, pairs: int) -> dict:
    interval = pair.difference.interval()
    if pair.different:
        verdict = "different, within the margin" if pair.equivalent else "different"
    else:
        verdict = "equivalent" if pair.equivalent else "not established"
    return {
        "model_a": pair.model_a,
        "model_b": pair.model_b,
        "about": "recipes",
        "accuracy_difference_points": 100 * interval.estimate,
        "difference_low": 100 * interval.low,
        "difference_high": 100 * interval.high,
        "test": "welch",
        "p_value": pair.p_value,
        "p_value_holm": pair.adjusted_p_value,
        "equivalence_p_value_holm": pair.adjusted_equivalence_p_value,
        "probability_a_beats_b": pair.probability_a_beats_b,
        "verdict": verdict,
        "sentence": verdicts.recipe_sentence(pair, pairs),
    }


def _spread_row(a: str, b: str, correct: dict[str, np.ndarray]) -> dict:
    runs_a, runs_b = correct[a].mean(axis=1), correct[b].mean(axis=1)
    return {
        "model_a": a,
        "model_b": b,
        "about": "spread",
        "accuracy_difference_points": 100 * (runs_a.mean() - runs_b.mean()),
        "verdict": "none",
        "sentence": verdicts.spread_sentence(a, b, runs_a, runs_b),
    }


def _network_row(pair: significance.ClassifierComparison, sentence: str) -> dict:
    return {
        "model_a": pair.model_a,
        "model_b": pair.model_b,
        "about": "networks",
        "accuracy_difference_points": 100 * pair.difference,
        "test": "mcnemar",
        "p_value": pair.p_value,
        "p_value_holm": pair.adjusted_p_value,
        "verdict": "different networks"
        if pair.adjusted_p_value < significance.ALPHA
        else "networks not told apart",
        "sentence": sentence,
    }


def ensemble_sentences(
    labels: np.ndarray, probabilities: dict[str, np.ndarray], threshold: float
) -> list[str]:
    """With several seeds: each pair of seed ensembles (a model's mean probability over its
    networks) by McNemar's test, about those ensembles alone. None with one seed."""
    seeds = min(len(p) for p in probabilities.values())
    if seeds < 2:
        return []
    right = {
        name: (p.mean(axis=0) >= threshold).astype(int) == labels
        for name, p in probabilities.items()
    }
    compared = significance.compare_classifiers(right)
    return [verdicts.ensemble_sentence(pair, seeds, len(compared)) for pair in compared]


def seeds_needed_sentence(correct: dict[str, np.ndarray], planning_seed_sd: float) -> str:
    """How many seeds a verdict would take: from the runs' spread and the shared test reviews
    with enough seeds for a verdict, from ``planning_seed_sd`` alone with fewer (with two,
    beside the spread they show)."""
    seeds = min(len(c) for c in correct.values())
    measured_sd = (
        float(np.sqrt(np.mean([c.mean(axis=1).var(ddof=1) for c in correct.values()])))
        if seeds > 1
        else float("nan")
    )
    review_variances = [
        (correct[a].mean(axis=0) - correct[b].mean(axis=0)).var(ddof=1) / correct[a].shape[1]
        for a, b in combinations(correct, 2)
    ]
    review_variance = float(np.mean(review_variances)) if review_variances else 0.0
    return verdicts.seeds_needed_sentence(seeds, measured_sd, planning_seed_sd, review_variance)


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.4f}" if np.isnan(sd) else f"{mean:.4f} ± {sd:.4f}"


def _range(low: float, high: float) -> str:
    return "" if np.isnan(low) else f"{low:.4f}-{high:.4f}"


def what_the_seeds_show(seeds: list[int], reviews: int, margin: float) -> str:
    """The paragraph under the report's title: what its numbers and sentences are about."""
    common = (
        f"Every model trained with {len(seeds)} seed{'s' * (len(seeds) > 1)} "
        f"({', '.join(map(str, seeds))}); the best epoch chosen on the validation split; the "
        f"test split ({reviews:,} reviews) scored once."
    )
    if len(seeds) >= significance.MIN_SEEDS_FOR_VERDICT:
        return (
            f"{common} Scores are means over seeds ± their standard deviation over seeds. A 95% "
            "interval is about a freshly trained run of the recipe: it adds the seed-to-seed "
            "variation to the sampling of test reviews (Welch-Satterthwaite degrees of freedom). "
            "Pairs are compared the same way, with Welch's test for a difference and TOST for "
            f"equivalence within ±{100 * margin:.2f} points (report.equivalence_margin), both "
            "corrected with Holm's method for the number of pairs (docs/statistics.md)."
        )
    if len(seeds) == 2:
        return (
            f"{common} Scores are means over the two seeds ± their standard deviation. Two "
            "seeds show how much runs spread, not whether the recipes differ: no interval or "
            "verdict about a recipe is given; three seeds or more give them."
        )
    return (
        f"{common} One network per model: every number is about that trained network on these "
        "reviews, with 95% intervals over test reviews only. One seed cannot compare the "
        "recipes (another training of the same recipe moves by about a point): the sentences "
        "below compare the trained networks, and the section on seeds says how many a "
        "verdict about recipes would take."
    )


def as_markdown(
    table: pd.DataFrame,
    pairs: pd.DataFrame,
    seeds: list[int],
    reviews: int,
    margin: float,
    extra: dict[str, list[str]],
) -> str:
    """The report a person reads: the models' table, a sentence per pair, and ``extra``
    sections (title to lines: the seed ensembles, how many seeds, the champion)."""
    shown = pd.DataFrame(
        {
            "model": table["model"],
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
    if len(seeds) == 2:
        shown = shown.drop(columns=["95% CI", "95% CI "])
    lines = [
        "# Model comparison",
        "",
        what_the_seeds_show(seeds, reviews, margin),
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


def best_by_validation(table: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """The champion candidate, chosen on validation accuracy only, never on the test set: the
    model with the best mean validation accuracy over its seeds, and of that model the run
    (seed) with the best validation accuracy. Ties go to the model, and the seed, listed first
    in params.yaml."""
    best_model = table.loc[table["val_accuracy"].idxmax(), "model"]
    of_model = runs[runs["model"] == best_model]
    return of_model.loc[of_model["val_accuracy"].idxmax()]


def version_tags(best: pd.Series, model: ModelParams) -> dict[str, str]:
    """Tags of a registered model version: the pipeline's model name and seed, its run, its
    effective hyperparameters and its test metrics."""
    metrics = ("test_accuracy", "test_loss", "test_f1", "test_roc_auc")
    return {
        "pipeline_model": model.name,
        "seed": str(model.seed),
        "source_run_id": best["mlflow_run_id"],
        **{f"param_{key}": str(value) for key, value in model.model_dump().items()},
        **{metric: str(best[metric]) for metric in metrics},
    }


def champion_decision(
    best: pd.Series, validation_reviews: int, incumbent: dict | None
) -> tuple[bool, str]:
    """Whether ``best`` (a row of the runs) replaces the registry's champion, and why, in one
    sentence. ``incumbent`` holds the champion's ``name`` (model, seed and version, as shown),
    ``val_accuracy``, ``val_reviews`` and ``source_run_id``, or is None when there is no
    champion yet."""
    candidate = f"{best['model']} (seed {best['seed']})"
    if incumbent is None:
        return True, verdicts.first_champion_sentence(candidate)
    run_id = best.get("mlflow_run_id")
    if run_id is not None and incumbent.get("source_run_id") == run_id:
        # A report rerun over the same runs: the champion is the candidate itself.
        return False, verdicts.same_champion_sentence(incumbent["name"])
    promotion = significance.promotion(
        float(best["val_accuracy"]),
        validation_reviews,
        incumbent["val_accuracy"],
        incumbent["val_reviews"],
    )
    sentence = verdicts.promotion_sentence(
        candidate, promotion, validation_reviews, incumbent["name"]
    )
    return promotion.promote, sentence
