"""How sure a comparison of models is, on the one test set they share.

- Per model: accuracy and ROC AUC with a 95% confidence interval, by bootstrap over test reviews
  (seeded, so the report is the same on every run). With several seeds, the estimate is the
  mean over seeds, and the reviews are resampled together for every seed.
- Per pair of models: the accuracy difference with its 95% interval by paired bootstrap (the
  same resampled reviews for both), and McNemar's exact test on the reviews where exactly one
  of the two is right, with Holm's correction for the number of pairs.

scipy does the bootstrap, statsmodels the test and the correction.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

CONFIDENCE = 0.95
RESAMPLES = 2000
# The ROC AUC ranks every resample (about 3 s per 1,000 on 25,000 reviews), accuracy only
# averages: fewer resamples for the AUC keep the report at seconds per model and seed.
AUC_RESAMPLES = 1000
# Resampled in batches, so that memory stays at a few hundred MB with 25,000 reviews.
_BATCH = 100


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


def _bootstrap(
    samples: tuple, statistic, seed: int, resamples: int = RESAMPLES
) -> tuple[float, float]:
    result = stats.bootstrap(
        samples,
        statistic,
        n_resamples=resamples,
        batch=_BATCH,
        vectorized=True,
        axis=-1,  # Resample reviews, the last axis; a sample's other axis is its seeds.
        confidence_level=CONFIDENCE,
        # Percentile: BCa's jackknife would recompute the statistic once per review.
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def accuracy_interval(correct: np.ndarray, seed: int) -> Interval:
    """Accuracy from ``correct``, ``[seeds, reviews]`` (1 where a seed's model is right), as the
    mean over seeds, with its confidence interval over resampled reviews."""
    per_review = correct.mean(axis=0)
    low, high = _bootstrap((per_review,), np.mean, seed)
    return Interval(float(per_review.mean()), low, high)


def _mean_auc(positives, negatives, axis=-1):
    # The Mann-Whitney U of positives against negatives, over their product, is the ROC AUC.
    # (No p-value is used: the asymptotic method is the quick one.)
    u = stats.mannwhitneyu(positives, negatives, axis=axis, method="asymptotic").statistic
    auc = u / (positives.shape[axis] * negatives.shape[axis])
    # Seeds are the first axis; a bootstrap batch adds its resamples after them.
    return auc.mean(axis=0)


def auc_interval(labels: np.ndarray, probabilities: np.ndarray, seed: int) -> Interval:
    """ROC AUC of ``probabilities``, ``[seeds, reviews]``, against 0/1 ``labels``, as the mean
    over seeds, with its confidence interval. Positive and negative reviews are resampled
    apart (the AUC compares one with the other), each with the same reviews for every seed."""
    positives, negatives = probabilities[:, labels == 1], probabilities[:, labels == 0]
    low, high = _bootstrap((positives, negatives), _mean_auc, seed, AUC_RESAMPLES)
    return Interval(float(_mean_auc(positives, negatives)), low, high)


def difference_interval(correct_a: np.ndarray, correct_b: np.ndarray, seed: int) -> Interval:
    """Accuracy of a minus accuracy of b (each ``[seeds, reviews]``, means over seeds), with its
    confidence interval by paired bootstrap over reviews."""
    difference = correct_a.mean(axis=0) - correct_b.mean(axis=0)
    low, high = _bootstrap((difference,), np.mean, seed)
    return Interval(float(difference.mean()), low, high)


def mcnemar_p_value(right_a: np.ndarray, right_b: np.ndarray) -> float:
    """McNemar's exact test of two classifiers' 0/1 correctness on the same reviews: whether
    the reviews only a gets right and those only b gets right are equally likely."""
    right_a, right_b = right_a.astype(bool), right_b.astype(bool)
    table = [
        [np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
        [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)],
    ]
    return float(mcnemar(table, exact=True).pvalue)


@dataclass(frozen=True)
class PairComparison:
    model_a: str
    model_b: str
    difference: Interval  # accuracy of a minus b, in [0, 1]
    p_value: float
    adjusted_p_value: float  # Holm's correction over every pair of the report


def compare_pairs(
    labels: np.ndarray, probabilities: dict[str, np.ndarray], threshold: float, seed: int
) -> list[PairComparison]:
    """Every pair of models, in the order given. ``probabilities`` are ``[seeds, reviews]`` per
    model; with several seeds, McNemar's test compares each model's mean probability over its
    seeds, thresholded: one prediction per model and review."""
    correct = {name: (p >= threshold).astype(int) == labels for name, p in probabilities.items()}
    pairs = list(combinations(probabilities, 2))
    differences, p_values = [], []
    for a, b in pairs:
        differences.append(difference_interval(correct[a], correct[b], seed))
        mean_right = [(probabilities[m].mean(axis=0) >= threshold) == labels for m in (a, b)]
        p_values.append(mcnemar_p_value(*mean_right))
    adjusted = multipletests(p_values, method="holm")[1] if pairs else []
    return [
        PairComparison(a, b, difference, p, float(adjusted_p))
        for (a, b), difference, p, adjusted_p in zip(
            pairs, differences, p_values, adjusted, strict=True
        )
    ]


def verdict(pair: PairComparison, reviews: int, alpha: float = 1 - CONFIDENCE) -> str:
    """One plain sentence, e.g. "lstm vs gru: +0.19 points (95% CI -0.35 to +0.72), p = 0.43:
    no evidence of a difference on 25,000 test reviews"."""
    d = pair.difference
    points = f"{100 * d.estimate:+.2f} points (95% CI {100 * d.low:+.2f} to {100 * d.high:+.2f})"
    p = _p(pair.adjusted_p_value)
    if pair.adjusted_p_value < alpha:
        better = pair.model_a if d.estimate > 0 else pair.model_b
        conclusion = f"{better} is more accurate on these {reviews:,} test reviews"
    else:
        conclusion = f"no evidence of a difference on {reviews:,} test reviews"
    return f"{pair.model_a} vs {pair.model_b}: {points}, {p}: {conclusion}"


def _p(value: float) -> str:
    return f"p = {value:.2g}" if value >= 0.001 else "p < 0.001"
