"""The report's sentences: each says what it is about (a freshly trained recipe, one trained
network, or a fixed seed ensemble) and claims no more than its runs can show.

One seed per recipe compares networks, never recipes; two show the spread; three or more give
verdicts about recipes, with an equivalence margin so that "not established" and "equivalent"
are not confused (docs/statistics.md).
"""

from __future__ import annotations

import numpy as np

from imdb_sentiment import sequential, significance
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
        f"A run of {a} beat a run of {b} in {pair.beats.estimate:.0%} of the "
        f"{pair.seeds_a * pair.seeds_b} pairs of these runs (95% interval {pair.beats.low:.0%} to "
        f"{pair.beats.high:.0%})."
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
        beats=significance.Interval(
            1 - pair.beats.estimate, 1 - pair.beats.high, 1 - pair.beats.low
        ),
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


def network_sentence(pair: ClassifierComparison, pairs: int, seeds: dict[str, int]) -> str:
    """One seed: McNemar's test of the two trained networks (``seeds``: each model's), said to
    be about them alone."""
    a, b = display_name(pair.model_a), display_name(pair.model_b)
    seed_a, seed_b = seeds.get(pair.model_a, "?"), seeds.get(pair.model_b, "?")
    if pair.only_a_right < pair.only_b_right:
        a, b, seed_a, seed_b = b, a, seed_b, seed_a
    more = abs(pair.only_a_right - pair.only_b_right)
    evidence = (
        f"{100 * abs(pair.difference):.2f} points, McNemar {_p(pair.adjusted_p_value)} "
        f"(Holm over {pairs} pair{'s' * (pairs > 1)})"
    )
    if pair.adjusted_p_value < significance.ALPHA:
        claim = (
            f"The trained {a} network (seed {seed_a}) is right on {more:,} more of these "
            f"{pair.reviews:,} test reviews than the trained {b} network (seed {seed_b}): "
            f"{evidence}."
        )
    else:
        claim = (
            f"The trained {a} (seed {seed_a}) and {b} (seed {seed_b}) networks are not told "
            f"apart on these {pair.reviews:,} test reviews: {evidence}."
        )
    return f"{claim} This is about these two networks; another training of either may differ."


def ensemble_sentence(
    pair: ClassifierComparison, seeds: dict[str, int], pairs: int, with_p_value: bool = True
) -> str:
    """Several seeds: McNemar's test of the two seed ensembles (``seeds``: networks per model),
    said to be about them alone; the counts alone without ``with_p_value``."""
    a, b = pair.model_a, pair.model_b
    if pair.only_a_right < pair.only_b_right:
        a, b = b, a
    more = abs(pair.only_a_right - pair.only_b_right)
    sentence = (
        f"The ensemble of the {seeds[a]} {display_name(a)} networks is right on {more:,} more "
        f"of these {pair.reviews:,} test reviews than that of the {seeds[b]} {display_name(b)} "
        f"networks: {100 * abs(pair.difference):.2f} points"
    )
    if not with_p_value:
        return (
            f"{sentence} (no p-value: these seeds were added look by look, on the evidence of "
            "these same reviews)."
        )
    return (
        f"{sentence}, McNemar {_p(pair.adjusted_p_value)} (Holm over {pairs} "
        f"pair{'s' * (pairs > 1)})."
    )


# The differences in expected accuracy the "how many seeds" line plans for.
PLANNED_DIFFERENCES = (0.02, 0.01, 0.005)


def seeds_needed_sentence(
    model_a: str,
    model_b: str,
    seeds: int,
    measured_sd: float,
    planning_sd: float,
    review_variance: float,
    alpha: float,
    pairs: int,
) -> str:
    """How many seeds per model a fixed design's verdict about a pair would take.

    Args:
        model_a, model_b: The pair.
        seeds: The fewer seeds of the two, behind ``measured_sd`` and ``review_variance``.
        measured_sd: The pair's sd of test accuracy over seeds, pooled over its two models.
        planning_sd: ``report.planning_seed_sd``, used with fewer seeds than a verdict needs.
        review_variance: The variance that the shared test reviews add to the difference.
        alpha: The two-sided level of each pair's test (Holm's first step over ``pairs``).
    """
    a, b = display_name(model_a), display_name(model_b)
    if seeds >= significance.MIN_SEEDS_FOR_VERDICT:
        seed_sd, where = measured_sd, "this pair's runs"
    else:
        # Two runs per model give an sd of two degrees of freedom for a pair, too wide to plan
        # with; and the review term measured on one or two networks per model is far larger
        # than with more (each review's score is averaged over more networks), so it is left
        # out, as the measured spread is.
        seed_sd, review_variance = planning_sd, 0.0
        where = (
            f"assumed: report.planning_seed_sd; {seeds} seeds measured {100 * measured_sd:.2f}"
            if seeds > 1
            else "assumed: report.planning_seed_sd"
        )
    counts = []
    for difference in PLANNED_DIFFERENCES:
        needed = significance.seeds_needed(difference, seed_sd, review_variance, alpha=alpha)
        count = f"{needed}" if needed is not None else "more than 1,000"
        counts.append(f"{count} for {100 * difference:g} point{'s' * (difference != 0.01)}")
    return (
        f"{a} vs {b}: with runs that spread by {100 * seed_sd:.2f} points (sd over seeds, "
        f"{where}), a two-sided test at {100 * alpha:.2g}% (5% over {pairs} "
        f"pair{'s' * (pairs > 1)}) finds a true difference in expected accuracy "
        f"{significance.POWER:.0%} of the time with about this many seeds per model: "
        f"{'; '.join(counts)}."
    )


def _away(value: float) -> str:
    return f"{100 * value:.2f} points"


def sequential_sentence(state: sequential.PairState, design: sequential.Design) -> str:
    """A pair of a group-sequential design: how it closed, at which look, or how far its
    repeated interval is from either boundary. No fixed-sample p-value: the state was reached
    by looking again."""
    a, b = display_name(state.model_a), display_name(state.model_b)
    last = state.last
    if last is None:
        return (
            f"{a} vs {b}: not looked at yet: the first look needs {design.seeds_at(1)} seeds of "
            "each (`make settle` adds them)."
        )
    if last.estimate < 0:
        a, b = b, a
        estimate, low, high = -last.estimate, -last.high, -last.low
    else:
        estimate, low, high = last.estimate, last.low, last.high
    where = (
        f"look {last.look} of at most {design.looks}, {last.seeds} seeds each; a group-sequential "
        f"design, {100 * design.alpha:g}% over {design.pairs} pair{'s' * (design.pairs > 1)}"
    )
    evidence = (
        f"{_points(estimate)} in expected test accuracy (repeated 95% interval "
        f"{100 * low:+.2f} to {100 * high:+.2f}; {where})"
    )
    margin = f"±{100 * design.margin:.2f} points"
    if state.outcome == sequential.DIFFERENT:
        return f"A freshly trained {a} is more accurate than a freshly trained {b}: {evidence}."
    if state.outcome == sequential.EQUIVALENT:
        return (
            f"A freshly trained {a} and a freshly trained {b} are equivalent within {margin}: "
            f"{evidence}."
        )
    hidden = max(abs(low), abs(high))
    if state.outcome == sequential.OPEN_AT_CAP:
        return (
            f"Not settled at the cap of {design.max_seeds} seeds each, whether a freshly trained "
            f"{a} or {b} is more accurate: {evidence}; the seeds cannot rule out a difference "
            f"of up to {_away(hidden)} either way, nor show one."
        )
    to_different = low if low < 0 else 0.0
    to_equivalent = max(high - design.margin, -design.margin - low, 0.0)
    return (
        f"Open, whether a freshly trained {a} or {b} is more accurate: {evidence}. It closes as "
        f"different once its interval's lower end rises above 0 (now {_away(-to_different)} "
        f"below it), or as equivalent once the interval narrows to within {margin} (now "
        f"{_away(to_equivalent)} too wide); `make settle` adds the seeds."
    )


def first_champion_sentence(candidate: str) -> str:
    """Why the champion alias points at the candidate when there was no champion."""
    return f"{candidate} becomes the champion: there was none."


def same_champion_sentence(incumbent: str) -> str:
    """Why the champion alias stays when this report's candidate is the champion's own run."""
    return (
        f"The champion stays {incumbent}: it is this report's best network on the validation "
        "reviews that choose, the same training run."
    )


def promotion_sentence(
    candidate: str, promotion: Promotion, validation_reviews: int, incumbent: str
) -> str:
    """Why the champion alias moved to the candidate or stayed where it was, when the
    champion's own validation predictions are not at hand: the candidate's accuracy on the
    half of the validation reviews it was not chosen on, against the champion's recorded one."""
    gap = (
        f"accuracy on the {validation_reviews:,} validation reviews it was not chosen on is "
        f"{_points(promotion.difference)} against the champion's ({incumbent}) recorded "
        "validation accuracy"
    )
    needed = (
        f"{_points(promotion.needed)} that an unpaired test needs to tell a better model from "
        f"chance (one-sided p = {promotion.p_value:.2g}; the champion's own predictions are not "
        "kept, or are of another validation split)"
    )
    if promotion.promote:
        return f"{candidate} becomes the champion: its {gap}, more than the {needed}."
    return f"The champion stays {incumbent}: {candidate}'s {gap}, not more than the {needed}."


def paired_promotion_sentence(
    candidate: str, promotion: Promotion, networks: int, reviews: int, incumbent: str
) -> str:
    """Why the champion alias moved or stayed: the candidate (the best of ``networks`` on one
    half of the validation reviews) against the champion on the other half (``reviews``),
    review by review."""
    chosen = (
        f"chosen as the best of {networks} network{'s' * (networks > 1)} on one half of the "
        f"validation reviews, on the other {reviews:,} it scores {_points(promotion.difference)} "
        f"against the champion ({incumbent}), review by review (McNemar's exact one-sided "
        f"p = {promotion.p_value:.2g}"
    )
    if promotion.promote:
        return f"{candidate} becomes the champion: {chosen}, below 0.05)."
    needed = f"; it would take {_points(promotion.needed)}" if np.isfinite(promotion.needed) else ""
    return f"The champion stays {incumbent}: {candidate}, {chosen}{needed})."
