"""What each pair of models' runs can show, one row per pair, by its design and its seeds:

- a fixed design (``settle.design: fixed``), one look at the seeds there are: with three seeds
  or more of each, a freshly trained run of each recipe (Welch's test, TOST, Holm over the
  pairs so compared); with two, the spread of the runs; with one, the two trained networks
  (McNemar's exact test, Holm);
- a group-sequential design over seeds (``sequential``, `make settle`): each pair's looks
  replayed on the networks' results in params.yaml's order (imdb_sentiment/sequential.py),
  with its repeated interval and how it closed, or how far it is from closing.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from imdb_sentiment import sequential, significance, verdicts
from imdb_sentiment.params import Params

PAIR_COLUMNS = [
    "model_a",
    "model_b",
    "about",
    "design",
    "seeds_a",
    "seeds_b",
    "accuracy_difference_points",
    "difference_low",
    "difference_high",
    "test",
    "p_value",
    "p_value_holm",
    "equivalence_p_value_holm",
    "probability_a_beats_b",
    "beats_low",
    "beats_high",
    "look",
    "looks_at_most",
    "verdict",
    "sentence",
]


def design_of(params: Params) -> sequential.Design | None:
    """The settle's design when ``settle.design`` is sequential, else None (a fixed design)."""
    if params.settle.design != "sequential":
        return None
    models = len(params.models)
    return sequential.Design(
        alpha=significance.ALPHA,
        pairs=max(1, models * (models - 1) // 2),
        margin=params.report.equivalence_margin,
        seeds_per_look=params.settle.seeds_per_look,
        max_seeds=params.settle.max_seeds,
    )


def pairs_table(
    correct: dict[str, np.ndarray],
    margin: float,
    design: sequential.Design | None,
    first_seeds: dict[str, int],
) -> pd.DataFrame:
    """One row per pair of models (``correct``: ``[seeds, reviews]`` per model; ``first_seeds``:
    each model's first seed), as the module says."""
    if design is not None:
        rows = [_sequential_row(state, design) for state in sequential.settle(correct, design)]
        return pd.DataFrame(rows, columns=PAIR_COLUMNS)
    pairs = list(combinations(correct, 2))
    fewest = {pair: min(len(correct[pair[0]]), len(correct[pair[1]])) for pair in pairs}
    of_recipes = [p for p in pairs if fewest[p] >= significance.MIN_SEEDS_FOR_VERDICT]
    of_networks = [p for p in pairs if fewest[p] == 1]
    recipes = {
        (pair.model_a, pair.model_b): pair
        for pair in (
            significance.compare_recipes(correct, margin, of_recipes) if of_recipes else []
        )
    }
    first_networks = {name: c[0] for name, c in correct.items()}
    networks = {
        (pair.model_a, pair.model_b): pair
        for pair in significance.compare_classifiers(first_networks, of_networks)
    }
    rows = []
    for pair in pairs:
        if pair in recipes:
            rows.append(_recipe_row(recipes[pair], len(of_recipes)))
        elif pair in networks:
            rows.append(_network_row(networks[pair], len(of_networks), first_seeds))
        else:
            rows.append(_spread_row(*pair, correct))
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
        "design": "fixed",
        "seeds_a": pair.seeds_a,
        "seeds_b": pair.seeds_b,
        "accuracy_difference_points": 100 * interval.estimate,
        "difference_low": 100 * interval.low,
        "difference_high": 100 * interval.high,
        "test": "welch",
        "p_value": pair.p_value,
        "p_value_holm": pair.adjusted_p_value,
        "equivalence_p_value_holm": pair.adjusted_equivalence_p_value,
        "probability_a_beats_b": pair.beats.estimate,
        "beats_low": pair.beats.low,
        "beats_high": pair.beats.high,
        "verdict": verdict,
        "sentence": verdicts.recipe_sentence(pair, pairs),
    }


def _spread_row(a: str, b: str, correct: dict[str, np.ndarray]) -> dict:
    runs_a, runs_b = correct[a].mean(axis=1), correct[b].mean(axis=1)
    return {
        "model_a": a,
        "model_b": b,
        "about": "spread",
        "design": "fixed",
        "seeds_a": len(runs_a),
        "seeds_b": len(runs_b),
        "accuracy_difference_points": 100 * (runs_a.mean() - runs_b.mean()),
        "verdict": "none",
        "sentence": verdicts.spread_sentence(a, b, runs_a, runs_b),
    }


def _network_row(
    pair: significance.ClassifierComparison, pairs: int, first_seeds: dict[str, int]
) -> dict:
    return {
        "model_a": pair.model_a,
        "model_b": pair.model_b,
        "about": "networks",
        "design": "fixed",
        "seeds_a": 1,
        "seeds_b": 1,
        "accuracy_difference_points": 100 * pair.difference,
        "test": "mcnemar",
        "p_value": pair.p_value,
        "p_value_holm": pair.adjusted_p_value,
        "verdict": "different networks"
        if pair.adjusted_p_value < significance.ALPHA
        else "networks not told apart",
        "sentence": verdicts.network_sentence(pair, pairs, first_seeds),
    }


def _sequential_row(state: sequential.PairState, design: sequential.Design) -> dict:
    last = state.last
    row = {
        "model_a": state.model_a,
        "model_b": state.model_b,
        "about": "recipes",
        "design": "sequential",
        "test": "group-sequential (O'Brien-Fleming-type spending, Bonferroni over pairs)",
        "looks_at_most": design.looks,
        "verdict": state.outcome,
        "sentence": verdicts.sequential_sentence(state, design),
    }
    if last is not None:
        row.update(
            seeds_a=last.seeds,
            seeds_b=last.seeds,
            look=last.look,
            accuracy_difference_points=100 * last.estimate,
            difference_low=100 * last.low,
            difference_high=100 * last.high,
        )
    return row


def seeds_needed_sentences(correct: dict[str, np.ndarray], planning_seed_sd: float) -> list[str]:
    """How many seeds per model a verdict about each pair would take, at the level the fixed
    design's verdicts use (Holm's first step: 5% over the pairs): from the pair's own runs'
    spread and its review term with three seeds or more each, from ``planning_seed_sd`` with
    fewer."""
    pairs = list(combinations(correct, 2))
    alpha = significance.ALPHA / max(1, len(pairs))
    sentences = []
    for a, b in pairs:
        seeds = min(len(correct[a]), len(correct[b]))
        measured_sd = (
            float(np.sqrt((correct[a].mean(axis=1).var(ddof=1)
                           + correct[b].mean(axis=1).var(ddof=1)) / 2))
            if seeds > 1
            else float("nan")
        )  # fmt: skip
        review = (correct[a][:seeds].mean(axis=0) - correct[b][:seeds].mean(axis=0)).var(ddof=1)
        sentences.append(
            verdicts.seeds_needed_sentence(
                a, b, seeds, measured_sd, planning_seed_sd, float(review) / correct[a].shape[1],
                alpha, len(pairs),
            )
        )  # fmt: skip
    return sentences
