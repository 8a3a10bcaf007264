"""The report's sentences: each says what it is about (a freshly trained recipe, one trained
network, or a fixed seed ensemble) and claims no more than its runs can show.

One seed per recipe compares networks, never recipes; two show the spread; three or more give
verdicts about recipes, with an equivalence margin so that "not established" and "equivalent"
are not confused (docs/statistics.md).
"""

from __future__ import annotations

import numpy as np

from imdb_sentiment import significance
from imdb_sentiment.significance import ClassifierComparison, Promotion, RecipeComparison

_CELL_NAMES = {"simplernn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def display_name(model: str) -> str:
    """The cell's own spelling for a model named after its cell; other names as they are."""
    return _CELL_NAMES.get(model, model)


def _points(difference: float) -> str:
    return f"{100 * difference:+.2f} points"


def _p(value: float) -> str:
    return f"p = {value:.2g}" if value >= 0.001 else "p < 0.001"


def _interval(estimate: significance.Estimate) -> str:
    interval = estimate.interval()
    return f"95% CI {100 * interval.low:+.2f} to {100 * interval.high:+.2f}"


def recipe_sentence(pair: RecipeComparison, pairs: int) -> str:
    """A verdict about a freshly trained run of each recipe, e.g. "A freshly trained GRU is more
    accurate than a freshly trained SimpleRNN: ..."."""
    if pair.difference.value < 0:  # Say it the way round that reads as "more accurate".
        pair = _swapped(pair)
    a, b = display_name(pair.model_a), display_name(pair.model_b)
    margin = f"±{100 * pair.equivalence_margin:.2f} points"
    evidence = (
        f"{_points(pair.difference.value)} in expected test accuracy "
        f"({_interval(pair.difference)}; {pair.seeds_a} and {pair.seeds_b} seeds, "
        f"Welch {_p(pair.adjusted_p_value)}, "
        f"TOST against {margin} {_p(pair.adjusted_equivalence_p_value)}, "
        f"Holm over {pairs} pair{'s' * (pairs > 1)})"
    )
    beats = (
        f"A run of {a} beat a run of {b} in {pair.probability_a_beats_b:.0%} of the pairs of runs."
    )
    if pair.different and pair.equivalent:
        claim = (
            f"A freshly trained {a} is more accurate than a freshly trained {b}, by less than "
            f"the equivalence margin of {margin}: {evidence}."
        )
    elif pair.different:
        claim = f"A freshly trained {a} is more accurate than a freshly trained {b}: {evidence}."
    elif pair.equivalent:
        claim = (
            f"A freshly trained {a} and a freshly trained {b} are equivalent within {margin}: "
            f"{evidence}."
        )
    else:
        claim = (
            f"Not established whether a freshly trained {a} or a freshly trained {b} is more "
            f"accurate: {evidence}; these seeds cannot rule out a difference of up to "
            f"{100 * pair.largest_hidden_difference:.2f} points either way."
        )
    return f"{claim} {beats}"


def _swapped(pair: RecipeComparison) -> RecipeComparison:
    d = pair.difference
    return RecipeComparison(
        model_a=pair.model_b,
        model_b=pair.model_a,
        seeds_a=pair.seeds_b,
        seeds_b=pair.seeds_a,
        difference=significance.Estimate(-d.value, d.standard_error, d.degrees_of_freedom),
        p_value=pair.p_value,
        adjusted_p_value=pair.adjusted_p_value,
        equivalence_margin=pair.equivalence_margin,
        equivalence_p_value=pair.equivalence_p_value,
        adjusted_equivalence_p_value=pair.adjusted_equivalence_p_value,
        probability_a_beats_b=1 - pair.probability_a_beats_b,
    )


def spread_sentence(model_a: str, model_b: str, runs_a: np.ndarray, runs_b: np.ndarray) -> str:
    """Two seeds: the runs' accuracies side by side, and no verdict."""
    a, b = display_name(model_a), display_name(model_b)

    def runs(scores: np.ndarray) -> str:
        return ", ".join(f"{score:.4f}" for score in scores)

    return (
        f"{a} vs {b}: {_points(runs_a.mean() - runs_b.mean())} between the means of "
        f"{len(runs_a)} and {len(runs_b)} runs ({a}: {runs(runs_a)}; {b}: {runs(runs_b)}). "
        f"{len(runs_a)} seeds show the spread of runs, not whether the recipes differ."
    )


def network_sentence(pair: ClassifierComparison, seed: int, pairs: int) -> str:
    """One seed: McNemar's test of the two trained networks, said to be about them alone."""
    a, b = display_name(pair.model_a), display_name(pair.model_b)
    if pair.only_a_right < pair.only_b_right:
        a, b = b, a
    more = abs(pair.only_a_right - pair.only_b_right)
    evidence = (
        f"{100 * abs(pair.difference):.2f} points, McNemar {_p(pair.adjusted_p_value)} "
        f"(Holm over {pairs} pair{'s' * (pairs > 1)})"
    )
    if pair.adjusted_p_value < significance.ALPHA:
        claim = (
            f"The trained {a} network (seed {seed}) is right on {more:,} more of these "
            f"{pair.reviews:,} test reviews than the trained {b} network (seed {seed}): {evidence}."
        )
    else:
        claim = (
            f"The trained {a} and {b} networks (seed {seed}) are not told apart on these "
            f"{pair.reviews:,} test reviews: {evidence}."
        )
    return f"{claim} This is about these two networks; another training of either may differ."


def ensemble_sentence(pair: ClassifierComparison, seeds: int, pairs: int) -> str:
    """Several seeds: McNemar's test of the two seed ensembles, said to be about them alone."""
    a, b = display_name(pair.model_a), display_name(pair.model_b)
    if pair.only_a_right < pair.only_b_right:
        a, b = b, a
    more = abs(pair.only_a_right - pair.only_b_right)
    return (
        f"The ensemble of the {seeds} {a} networks is right on {more:,} more of these "
        f"{pair.reviews:,} test reviews than that of the {seeds} {b} networks: "
        f"{100 * abs(pair.difference):.2f} points, McNemar {_p(pair.adjusted_p_value)} "
        f"(Holm over {pairs} pair{'s' * (pairs > 1)})."
    )


# The differences in expected accuracy the "how many seeds" line plans for.
PLANNED_DIFFERENCES = (0.02, 0.01, 0.005)


def seeds_needed_sentence(
    seeds: int, measured_sd: float, planning_sd: float, review_variance: float
) -> str:
    """How many seeds per recipe a verdict about a given difference would take.

    Args:
        seeds: Seeds per model behind ``measured_sd`` and ``review_variance``.
        measured_sd: The sd of test accuracy over seeds, pooled over the models (nan with one).
        planning_sd: ``report.planning_seed_sd``, used with fewer seeds than a verdict needs.
        review_variance: The variance that the shared test reviews add to a difference.
    """
    if seeds >= significance.MIN_SEEDS_FOR_VERDICT:
        seed_sd, where = measured_sd, "observed here, pooled over the models"
    else:
        # Two runs per model give a pooled sd of one degree of freedom per model: with three
        # models its 95% interval runs from about 0.6 to 3.7 times the estimate, too wide to
        # plan with. The review term of a difference shrinks as seeds are added (each review's
        # score is averaged over more networks): measured on the seeds of a verdict it is an
        # upper bound for more; measured on one or two networks per model it would bound
        # nothing useful (on the default two-seed run it turned 64 seeds for half a point into
        # 264), so it is left out, as the measured spread is.
        seed_sd, review_variance = planning_sd, 0.0
        where = (
            f"assumed: report.planning_seed_sd; {seeds} seeds per model measured "
            f"{100 * measured_sd:.2f}, too few to plan with"
            if seeds > 1
            else "assumed: report.planning_seed_sd, since one seed cannot measure it"
        )
    counts = []
    for difference in PLANNED_DIFFERENCES:
        needed = significance.seeds_needed(difference, seed_sd, review_variance)
        count = f"{needed}" if needed is not None else "more than 1,000"
        counts.append(f"{count} for {100 * difference:g} point{'s' * (difference != 0.01)}")
    return (
        f"With runs that spread by {100 * seed_sd:.2f} points (sd over seeds, {where}), a "
        f"two-sided test at 5% finds a true difference in expected accuracy between two recipes "
        f"{significance.POWER:.0%} of the time with about this many seeds per model: "
        f"{'; '.join(counts)}."
    )


def first_champion_sentence(candidate: str) -> str:
    """Why the champion alias points at the candidate when there was no champion."""
    return f"{candidate} becomes the champion: there was none."


def same_champion_sentence(incumbent: str) -> str:
    """Why the champion alias stays when this report's best run is the champion's own run."""
    return (
        f"The champion stays {incumbent}: it is this report's best model by validation "
        "accuracy, the same training run."
    )


def promotion_sentence(
    candidate: str, promotion: Promotion, validation_reviews: int, incumbent: str
) -> str:
    """Why the champion alias moved to the candidate or stayed where it was."""
    gap = (
        f"validation accuracy is {_points(promotion.difference)} against the champion's "
        f"({incumbent})"
    )
    needed = (
        f"{_points(promotion.needed)} that {validation_reviews:,} validation reviews need to "
        f"tell a better model from chance (one-sided p = {promotion.p_value:.2g})"
    )
    if promotion.promote:
        return f"{candidate} becomes the champion: its {gap}, more than the {needed}."
    return f"The champion stays {incumbent}: {candidate}'s {gap}, not more than the {needed}."
