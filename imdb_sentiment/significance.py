"""How sure a comparison of recipes is, when the unit is the training run.

Two sources of chance move a test score: the seed a network is trained with (initialization,
dropout, shuffling) and the test reviews it is scored on. A claim about a recipe ("a freshly
trained LSTM is more accurate than a freshly trained GRU") must hold over both, so every
interval and test of a recipe here adds two terms:

- the seed term: the variance of the per-run scores over seeds, over the number of seeds;
- the review term: the variance over test reviews of the per-review score (averaged over a
  recipe's seeds), over the number of reviews. Every run is scored on the same reviews, so a
  difference between recipes is paired on them.

Their sum has Welch-Satterthwaite degrees of freedom, so that three to ten seeds give a
t-interval as wide as their spread warrants (docs/statistics.md: why, and the simulation that
checks the level). A verdict about recipes needs at least three seeds each; McNemar's exact
test compares two fixed classifiers (one trained network each, or one seed ensemble each) and
says nothing about another training run.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
# Two seeds give a seed term with one degree of freedom: a t-interval twelve times its standard
# error. Three is the least that supports a verdict at all.
MIN_SEEDS_FOR_VERDICT = 3
# The power the "how many seeds" line plans for.
POWER = 0.8


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Estimate:
    """A mean score with its standard error and Welch-Satterthwaite degrees of freedom."""

    value: float
    standard_error: float
    degrees_of_freedom: float

    def interval(self, confidence: float = CONFIDENCE) -> Interval:
        half = stats.t.ppf(0.5 + confidence / 2, self.degrees_of_freedom) * self.standard_error
        return Interval(self.value, self.value - half, self.value + half)

    def p_above(self, null: float) -> float:
        """One-sided p-value of "the true value is at most ``null``"."""
        if self.standard_error == 0:
            return float(self.value <= null)
        t = (self.value - null) / self.standard_error
        return float(stats.t.sf(t, self.degrees_of_freedom))


# A variance term of an estimate: (variance of the mean, its degrees of freedom).
_Term = tuple[float, float]


def _combine(value: float, terms: list[_Term]) -> Estimate:
    variance = sum(v for v, _ in terms)
    # Welch-Satterthwaite: the sum of scaled chi-squares as one with these degrees of freedom.
    spread = sum(v * v / df for v, df in terms if v > 0)
    df = variance * variance / spread if spread > 0 else np.inf
    return Estimate(float(value), float(np.sqrt(variance)), float(df))


def _mean_term(values: np.ndarray) -> _Term:
    """The variance of the mean of ``values`` (one per independent draw), and its df."""
    return float(values.var(ddof=1) / len(values)), float(len(values) - 1)


def _terms(per_run: np.ndarray, review_terms: list[_Term]) -> list[_Term]:
    # One run has no seed term: what it estimates is that network's score, not its recipe's.
    return review_terms + ([_mean_term(per_run)] if len(per_run) > 1 else [])


def _of_one_recipe(estimate: Estimate, seeds: int) -> Estimate:
    """One recipe's estimate with the seed term's degrees of freedom, n - 1, not
    Welch-Satterthwaite's: those come from the estimated variances themselves, and at three
    seeds the interval covered 92.0-93.8% instead of 95% (tests/test_significance.py). The seed
    term dominates, so n - 1 is what the interval can claim."""
    if seeds < 2:
        return estimate
    return Estimate(estimate.value, estimate.standard_error, float(seeds - 1))


def accuracy(correct: np.ndarray) -> Estimate:
    """The expected test accuracy of a run of one recipe, from ``correct`` (``[seeds, reviews]``,
    1 where that seed's network is right): the mean over seeds, its uncertainty over seeds and
    reviews. With one seed: that network's accuracy, uncertain over reviews only."""
    per_run = correct.mean(axis=1)
    combined = _combine(per_run.mean(), _terms(per_run, [_mean_term(correct.mean(axis=0))]))
    return _of_one_recipe(combined, len(per_run))


def roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> Estimate:
    """The expected test ROC AUC of a run of one recipe, from ``probabilities``
    (``[seeds, reviews]``) against 0/1 ``labels``, as :func:`accuracy` does. The review term is
    DeLong's: each positive review's share of negatives ranked below it, each negative's share of
    positives ranked above it (averaged over seeds), a variance for each (ties count a half)."""
    positives, negatives = probabilities[:, labels == 1], probabilities[:, labels == 0]
    n_positive, n_negative = positives.shape[1], negatives.shape[1]
    ranks = stats.rankdata(np.concatenate([positives, negatives], axis=1), axis=1)
    positive_placements = (ranks[:, :n_positive] - stats.rankdata(positives, axis=1)) / n_negative
    negative_placements = 1 - (ranks[:, n_positive:] - stats.rankdata(negatives, axis=1)) / (
        n_positive
    )
    per_run = positive_placements.mean(axis=1)
    review_terms = [
        _mean_term(positive_placements.mean(axis=0)),
        _mean_term(negative_placements.mean(axis=0)),
    ]
    return _of_one_recipe(_combine(per_run.mean(), _terms(per_run, review_terms)), len(per_run))


def accuracy_difference(correct_a: np.ndarray, correct_b: np.ndarray) -> Estimate:
    """Expected accuracy of a run of recipe a minus that of a run of recipe b (each
    ``[seeds, reviews]``): the seeds of a and of b are independent, the reviews shared."""
    per_run_a, per_run_b = correct_a.mean(axis=1), correct_b.mean(axis=1)
    per_review = correct_a.mean(axis=0) - correct_b.mean(axis=0)
    terms = [_mean_term(per_review)] + [
        _mean_term(per_run) for per_run in (per_run_a, per_run_b) if len(per_run) > 1
    ]
    return _combine(per_run_a.mean() - per_run_b.mean(), terms)


def probability_of_beating(scores_a: np.ndarray, scores_b: np.ndarray) -> float:
    """The share of (run of a, run of b) pairs in which a's score is higher, ties counting a
    half: how often a freshly trained a beats a freshly trained b (Bouthillier et al., 2021)."""
    difference = scores_a[:, None] - scores_b[None, :]
    return float(np.mean(difference > 0) + 0.5 * np.mean(difference == 0))


def probability_of_beating_interval(scores_a: np.ndarray, scores_b: np.ndarray) -> Interval:
    """:func:`probability_of_beating` with a 95% interval: it is a Mann-Whitney area under the
    curve, of ``len(scores_a) * len(scores_b)`` pairs of runs, with Hanley and McNeil's (1982)
    variance, clipped to [0, 1]. With three seeds each it rests on nine pairs: wide."""
    share = probability_of_beating(scores_a, scores_b)
    n_a, n_b = len(scores_a), len(scores_b)
    q1, q2 = share / (2 - share), 2 * share**2 / (1 + share)
    variance = (share * (1 - share) + (n_a - 1) * (q1 - share**2) + (n_b - 1) * (q2 - share**2)) / (
        n_a * n_b
    )
    # At 0 or 1 the formula's variance vanishes: one pair's worth keeps the interval honest.
    half = stats.norm.isf(ALPHA / 2) * np.sqrt(max(variance, 1 / (4 * n_a * n_b)))
    return Interval(share, max(0.0, share - half), min(1.0, share + half))


def _two_sided_p(estimate: Estimate) -> float:
    above = estimate.p_above(0.0)
    return float(min(1.0, 2 * min(above, 1 - above)))


def _equivalence_p(estimate: Estimate, margin: float) -> float:
    # TOST: both "difference <= -margin" and "difference >= +margin" must be rejected.
    return float(max(estimate.p_above(-margin), 1 - estimate.p_above(margin)))


@dataclass(frozen=True)
class RecipeComparison:
    """A run of recipe a against a run of recipe b, from their seeds and the shared reviews."""

    model_a: str
    model_b: str
    seeds_a: int
    seeds_b: int
    difference: Estimate  # expected accuracy of a minus b, in [0, 1]
    p_value: float  # two-sided t test of "no difference", Welch's degrees of freedom
    adjusted_p_value: float  # Holm's correction over every pair of the report
    equivalence_margin: float
    equivalence_p_value: float  # TOST against +-margin
    adjusted_equivalence_p_value: float  # Holm's correction over every pair of the report
    probability_a_beats_b: float
    beats: Interval  # probability_a_beats_b with its 95% interval

    @property
    def different(self) -> bool:
        return self.adjusted_p_value < ALPHA

    @property
    def equivalent(self) -> bool:
        return self.adjusted_equivalence_p_value < ALPHA

    @property
    def largest_hidden_difference(self) -> float:
        """The largest difference, either way, that the 95% interval leaves possible."""
        interval = self.difference.interval()
        return max(abs(interval.low), abs(interval.high))


def compare_recipes(
    correct: dict[str, np.ndarray],
    margin: float,
    pairs: list[tuple[str, str]] | None = None,
) -> list[RecipeComparison]:
    """Every pair of recipes, in the order given (or ``pairs`` of them), Holm's correction over
    those pairs. ``correct`` is ``[seeds, reviews]`` per recipe, with at least
    :data:`MIN_SEEDS_FOR_VERDICT` seeds each in a pair; ``margin`` the difference in accuracy
    (in [0, 1]) below which two recipes count as equivalent."""
    pairs = list(combinations(correct, 2)) if pairs is None else pairs
    few = sorted({name for pair in pairs for name in pair
                  if len(correct[name]) < MIN_SEEDS_FOR_VERDICT})  # fmt: skip
    if few:
        raise ValueError(
            f"{', '.join(few)}: fewer than {MIN_SEEDS_FOR_VERDICT} seeds cannot compare recipes"
        )
    differences = [accuracy_difference(correct[a], correct[b]) for a, b in pairs]
    p_values = [_two_sided_p(d) for d in differences]
    equivalence = [_equivalence_p(d, margin) for d in differences]
    adjusted, adjusted_equivalence = holm(p_values), holm(equivalence)
    return [
        RecipeComparison(
            model_a=a,
            model_b=b,
            seeds_a=len(correct[a]),
            seeds_b=len(correct[b]),
            difference=difference,
            p_value=p_values[index],
            adjusted_p_value=adjusted[index],
            equivalence_margin=margin,
            equivalence_p_value=equivalence[index],
            adjusted_equivalence_p_value=adjusted_equivalence[index],
            probability_a_beats_b=probability_of_beating(
                correct[a].mean(axis=1), correct[b].mean(axis=1)
            ),
            beats=probability_of_beating_interval(correct[a].mean(axis=1), correct[b].mean(axis=1)),
        )
        for index, ((a, b), difference) in enumerate(zip(pairs, differences, strict=True))
    ]


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down correction, as statsmodels' ``multipletests(method="holm")`` gives it
    (a test checks), without the full garbage collection that it runs on every call: 0.1 s
    each, which the simulation tests would pay thousands of times."""
    order = np.argsort(p_values)
    scaled = np.asarray(p_values)[order] * (len(p_values) - np.arange(len(p_values)))
    adjusted = np.empty(len(p_values))
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return [float(p) for p in adjusted]


def mcnemar_p_value(right_a: np.ndarray, right_b: np.ndarray) -> float:
    """McNemar's exact test of two fixed classifiers' 0/1 correctness on the same reviews:
    whether the reviews only a gets right and those only b gets right are equally likely."""
    right_a, right_b = right_a.astype(bool), right_b.astype(bool)
    table = [
        [np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
        [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)],
    ]
    return float(mcnemar(table, exact=True).pvalue)


@dataclass(frozen=True)
class ClassifierComparison:
    """Two fixed classifiers on the same reviews: nothing here is about another training."""

    model_a: str
    model_b: str
    only_a_right: int
    only_b_right: int
    reviews: int
    p_value: float  # McNemar's exact test
    adjusted_p_value: float  # Holm's correction over every pair of the report

    @property
    def difference(self) -> float:
        """Accuracy of a minus accuracy of b, in [0, 1]."""
        return (self.only_a_right - self.only_b_right) / self.reviews


def compare_classifiers(
    right: dict[str, np.ndarray], pairs: list[tuple[str, str]] | None = None
) -> list[ClassifierComparison]:
    """Every pair of fixed classifiers (or ``pairs`` of them), from their 0/1 correctness on
    the same reviews, Holm's correction over those pairs."""
    pairs = list(combinations(right, 2)) if pairs is None else pairs
    if not pairs:
        return []
    p_values = [mcnemar_p_value(right[a], right[b]) for a, b in pairs]
    adjusted = holm(p_values)
    comparisons = []
    for index, (a, b) in enumerate(pairs):
        right_a, right_b = right[a].astype(bool), right[b].astype(bool)
        comparisons.append(
            ClassifierComparison(
                a,
                b,
                int(np.sum(right_a & ~right_b)),
                int(np.sum(~right_a & right_b)),
                len(right_a),
                p_values[index],
                adjusted[index],
            )
        )
    return comparisons


def seeds_needed(
    difference: float,
    seed_sd: float,
    review_variance: float = 0.0,
    alpha: float = ALPHA,
    power: float = POWER,
    most: int = 1000,
) -> int | None:
    """Seeds per recipe for a two-sided Welch test at ``alpha`` to find a true ``difference`` in
    expected accuracy with probability ``power``, when each recipe's runs spread with sd
    ``seed_sd`` and the shared reviews add ``review_variance`` to the difference's variance.
    None when even ``most`` seeds would not do (the review term alone is too large)."""
    seeds = np.arange(2, most + 1)
    seed_variance = 2 * seed_sd**2 / seeds
    standard_error = np.sqrt(seed_variance + review_variance)
    df = (seed_variance + review_variance) ** 2 / (2 * (seed_variance / 2) ** 2 / (seeds - 1))
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = difference / standard_error
    reached = stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift) >= power
    return int(seeds[np.argmax(reached)]) if reached.any() else None


@dataclass(frozen=True)
class Promotion:
    """Whether a candidate's validation accuracy beats the incumbent's by more than chance."""

    promote: bool
    difference: float  # candidate minus incumbent, in [0, 1]
    needed: float  # the smallest difference that would have promoted it
    p_value: float  # one-sided


def paired_promotion(
    candidate_right: np.ndarray, incumbent_right: np.ndarray, alpha: float = ALPHA
) -> Promotion:
    """McNemar's exact one-sided test of a candidate against the incumbent on the same reviews
    (their 0/1 correctness): whether the reviews only the candidate gets right outnumber those
    only the incumbent gets right by more than chance. The reviews must not be those the
    candidate was chosen on (comparison.champion_decision)."""
    candidate_right, incumbent_right = candidate_right.astype(bool), incumbent_right.astype(bool)
    only_candidate = int(np.sum(candidate_right & ~incumbent_right))
    discordant = only_candidate + int(np.sum(~candidate_right & incumbent_right))
    reviews = len(candidate_right)
    p_value = float(stats.binom.sf(only_candidate - 1, discordant, 0.5)) if discordant else 1.0
    # The fewest reviews only the candidate gets right that would promote it, of these
    # discordant ones.
    counts = np.arange(discordant + 1)
    enough = counts[stats.binom.sf(counts - 1, discordant, 0.5) < alpha]
    needed = (2 * enough[0] - discordant) / reviews if len(enough) else np.inf
    difference = (2 * only_candidate - discordant) / reviews
    return Promotion(p_value < alpha, difference, float(needed), p_value)


def promotion(
    candidate_accuracy: float,
    candidate_reviews: int,
    incumbent_accuracy: float,
    incumbent_reviews: int,
    alpha: float = ALPHA,
) -> Promotion:
    """A one-sided two-proportion z-test of the candidate's validation accuracy against the
    incumbent's: for an incumbent whose validation predictions are not at hand (a version
    registered before they were kept, or on another validation split). On the same reviews
    the true standard error is smaller, so this errs on the side of keeping the incumbent."""
    variance = (
        candidate_accuracy * (1 - candidate_accuracy) / candidate_reviews
        + incumbent_accuracy * (1 - incumbent_accuracy) / incumbent_reviews
    )
    # At 0% or 100% the binomial variance vanishes: one review's worth keeps the test honest.
    standard_error = max(np.sqrt(variance), 1 / min(candidate_reviews, incumbent_reviews))
    difference = candidate_accuracy - incumbent_accuracy
    p_value = float(stats.norm.sf(difference / standard_error))
    needed = float(stats.norm.isf(alpha) * standard_error)
    return Promotion(p_value < alpha, difference, needed, p_value)
