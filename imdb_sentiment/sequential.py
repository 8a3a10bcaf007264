"""Settling a comparison of two recipes by adding seeds: a group-sequential design over seeds,
whose error rates hold however often the comparison is looked at.

At look k, each recipe of a pair has trained ``k * seeds_per_look`` networks (the first of its
seeds, in params.yaml's order), up to ``max_seeds``. The pair's difference in expected test
accuracy gets a *repeated* confidence interval, as wide as a test at that look may be after the
looks before it (Jennison & Turnbull, 1989). The pair closes:

- **different**, when its interval excludes 0;
- **equivalent**, when its interval lies within ±margin;
- **open at the cap**, at ``max_seeds``, when neither.

The error is spent over the looks by Lan and DeMets' O'Brien-Fleming-type function of the
information fraction, ``2 - 2 Φ(z / √t)``: almost nothing at the first looks, most of it at the
last. The information fraction is the variance at the cap over the variance now, both with the
spread measured now; the shared test reviews add a floor to the variance that more seeds do not
shrink, so the fraction grows faster than the seed count. Each pair is tested at
``alpha / pairs`` (Bonferroni), so that the intervals of all pairs hold together. The
boundaries are computed on the normal scale (numerical integration over the looks, as
Armitage, McPherson and Rowe) and carried over to the t distribution of each look's degrees of
freedom at the same nominal level, since the seed variance is estimated (Jennison & Turnbull,
2000, ch. 11). ``tests/test_sequential.py`` checks the error rates by simulation.

Everything here works on batches (a leading axis of independent comparisons), so that the
simulations that check it run the same code as the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

# The points of the numerical integration over a continuation region, and Simpson's weights.
_GRID_POINTS = 81
_UNIT = np.linspace(-1.0, 1.0, _GRID_POINTS)
_SIMPSON = np.where(np.arange(_GRID_POINTS) % 2 == 1, 4.0, 2.0)
_SIMPSON[[0, -1]] = 1.0
_SIMPSON /= 3.0 * (_GRID_POINTS - 1) / 2.0
# Where no error is left to spend, no value crosses: an "infinite" boundary.
NO_CROSSING = np.inf

DIFFERENT = "different"
EQUIVALENT = "equivalent"
OPEN_AT_CAP = "open at the cap"
OPEN = "open"


def spent(fraction: np.ndarray, alpha: float) -> np.ndarray:
    """Lan-DeMets O'Brien-Fleming-type spending, each side at ``alpha / 2`` as for a symmetric
    two-sided test (gsDesign's and ldbounds' convention): the two-sided error spent by
    information fraction ``fraction`` (in (0, 1]); all of ``alpha`` at 1."""
    fraction = np.clip(np.asarray(fraction, dtype=float), 1e-12, 1.0)
    one_side = 2.0 - 2.0 * special.ndtr(stats.norm.isf(alpha / 4) / np.sqrt(fraction))
    return 2.0 * one_side


class Boundaries:
    """Two-sided, symmetric boundaries on the normal scale for a batch of independent sequential
    tests, one look at a time.

    The score B(t) = Z(t) √t of each test moves as a Brownian motion in the information
    fraction t. At each look, the density of B over the paths that crossed no boundary yet is
    kept on a grid; the boundary is the value whose two tails, from that density, hold the error
    spent since the look before."""

    def __init__(self, alpha: float, batch: int = 1):
        self.alpha = alpha
        self.fraction = np.zeros(batch)
        self.spent = np.zeros(batch)
        self.points: np.ndarray | None = None  # [batch, grid]: where the density is known
        self.density: np.ndarray | None = None  # [batch, grid]: the density there, with weights

    def next(self, fraction: np.ndarray) -> np.ndarray:
        """The boundaries on the z scale at the next look, at information ``fraction`` per test
        ([batch]); a fraction that did not grow spends nothing (an infinite boundary)."""
        fraction = np.maximum(np.asarray(fraction, dtype=float), self.fraction)
        step = fraction - self.fraction
        target = spent(fraction, self.alpha) - self.spent
        target = np.where(step > 1e-12, np.maximum(target, 0.0), 0.0)
        scale = np.sqrt(np.maximum(step, 1e-12))
        if self.density is None:
            # The first look: B ~ N(0, t).
            bound = np.sqrt(fraction) * stats.norm.isf(np.maximum(target, 1e-300) / 2)
            bound = np.where(target > 0, bound, NO_CROSSING)
            self._first_density(fraction, bound)
        else:
            bound = self._solve(target, scale)
            self._next_density(scale, bound, fraction)
        self.spent = self.spent + np.where(step > 1e-12, target, 0.0)
        self.fraction = fraction
        return np.where(np.isfinite(bound), bound / np.sqrt(fraction), NO_CROSSING)

    def _grid(self, bound: np.ndarray, fraction: np.ndarray) -> np.ndarray:
        # Past eight standard deviations the density is nothing: an infinite boundary's grid
        # stops there.
        reach = np.minimum(np.where(np.isfinite(bound), bound, np.inf), 8 * np.sqrt(fraction))
        return reach[:, None] * _UNIT[None, :]

    def _first_density(self, fraction: np.ndarray, bound: np.ndarray) -> None:
        points = self._grid(bound, fraction)
        spread = np.sqrt(fraction)[:, None]
        width = points[:, -1:] - points[:, :1]
        self.points = points
        self.density = stats.norm.pdf(points / spread) / spread * width * _SIMPSON[None, :] / 2

    def _crossing(self, bound: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """The probability, per test, that B is past ±bound at this look and was inside before."""
        assert self.points is not None and self.density is not None
        b = bound[:, None]
        s = scale[:, None]
        tails = special.ndtr((-b - self.points) / s) + special.ndtr((self.points - b) / s)
        return (self.density * tails).sum(axis=1)

    def _solve(self, target: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """The bound whose crossing probability is ``target``, by bisection, per test."""
        low, high = np.zeros_like(target), np.full_like(target, 60.0)
        for _ in range(45):
            middle = (low + high) / 2
            too_far = self._crossing(middle, scale) < target
            high = np.where(too_far, middle, high)
            low = np.where(too_far, low, middle)
        return np.where(target > 0, (low + high) / 2, NO_CROSSING)

    def _next_density(self, scale: np.ndarray, bound: np.ndarray, fraction: np.ndarray) -> None:
        assert self.points is not None and self.density is not None
        points = self._grid(bound, fraction)
        s = scale[:, None, None]
        moves = np.exp(-0.5 * ((points[:, :, None] - self.points[:, None, :]) / s) ** 2) / (
            s * np.sqrt(2 * np.pi)
        )
        width = points[:, -1:] - points[:, :1]
        self.density = (moves @ self.density[:, :, None])[:, :, 0] * width * _SIMPSON / 2
        self.points = points


def t_critical(z_boundary: np.ndarray, degrees_of_freedom: np.ndarray) -> np.ndarray:
    """The critical value of a t statistic with ``degrees_of_freedom`` at the two-sided level
    of the normal-scale boundary ``z_boundary``."""
    level = 2 * stats.norm.sf(z_boundary)
    return np.where(
        np.isfinite(z_boundary),
        stats.t.isf(np.maximum(level, 1e-300) / 2, degrees_of_freedom),
        NO_CROSSING,
    )


@dataclass(frozen=True)
class Design:
    """The settle's design: the familywise two-sided level, the number of pairs it is split
    over, the equivalence margin (a difference in accuracy, in [0, 1]), the seeds each look adds
    and the most a model gets."""

    alpha: float
    pairs: int
    margin: float
    seeds_per_look: int
    max_seeds: int

    @property
    def pair_alpha(self) -> float:
        return self.alpha / self.pairs

    def seeds_at(self, look: int) -> int:
        """Seeds per model at look ``look`` (1, 2, ...)."""
        return min(look * self.seeds_per_look, self.max_seeds)

    @property
    def looks(self) -> int:
        """The most looks: the last one at ``max_seeds``."""
        return -(-self.max_seeds // self.seeds_per_look)


@dataclass(frozen=True)
class Difference:
    """One look's difference in expected accuracy (a minus b), per test of a batch."""

    estimate: np.ndarray
    seed_variance_a: np.ndarray  # of one run's accuracy
    seed_variance_b: np.ndarray
    review_term: np.ndarray  # the variance the shared reviews add to the difference
    seeds_a: int
    seeds_b: int
    reviews: int

    @property
    def variance(self) -> np.ndarray:
        return (
            self.seed_variance_a / self.seeds_a
            + self.seed_variance_b / self.seeds_b
            + self.review_term
        )

    @property
    def degrees_of_freedom(self) -> np.ndarray:
        """Welch-Satterthwaite's, over the two seed terms and the review term."""
        terms = [
            (self.seed_variance_a / self.seeds_a, self.seeds_a - 1),
            (self.seed_variance_b / self.seeds_b, self.seeds_b - 1),
            (self.review_term, self.reviews - 1),
        ]
        spread = sum(term**2 / df for term, df in terms)
        return np.where(spread > 0, self.variance**2 / np.maximum(spread, 1e-300), np.inf)

    def fraction(self, max_seeds: int) -> np.ndarray:
        """The information fraction: the variance at ``max_seeds`` seeds each over the variance
        now, with the spreads measured now (1 at the cap)."""
        at_cap = (self.seed_variance_a + self.seed_variance_b) / max_seeds + self.review_term
        if min(self.seeds_a, self.seeds_b) >= max_seeds:
            return np.ones_like(self.estimate)
        return np.clip(at_cap / np.maximum(self.variance, 1e-300), 0.0, 1.0)


def difference(
    runs_a: np.ndarray, runs_b: np.ndarray, review_means_a: np.ndarray, review_means_b: np.ndarray
) -> Difference:
    """The look's difference from each recipe's per-run accuracies (``[..., seeds]``) and
    per-review mean correctness over its runs (``[..., reviews]``)."""
    per_review = review_means_a - review_means_b
    reviews = per_review.shape[-1]
    return Difference(
        estimate=runs_a.mean(axis=-1) - runs_b.mean(axis=-1),
        seed_variance_a=runs_a.var(axis=-1, ddof=1),
        seed_variance_b=runs_b.var(axis=-1, ddof=1),
        review_term=per_review.var(axis=-1, ddof=1) / reviews,
        seeds_a=runs_a.shape[-1],
        seeds_b=runs_b.shape[-1],
        reviews=reviews,
    )


@dataclass(frozen=True)
class Look:
    """One look at one pair: its seeds, the difference (a minus b, in [0, 1]) with its repeated
    95%-familywise interval, and the boundary it was tested against."""

    look: int
    seeds: int
    estimate: float
    low: float
    high: float
    fraction: float
    z_boundary: float
    critical: float  # on the t scale of this look's degrees of freedom
    degrees_of_freedom: float


@dataclass
class PairState:
    """A pair's looks so far, and how it stands: different, equivalent, open at the cap, or
    open (more seeds wanted)."""

    model_a: str
    model_b: str
    looks: list[Look] = field(default_factory=list)
    outcome: str = OPEN

    @property
    def closed(self) -> bool:
        return self.outcome != OPEN

    @property
    def last(self) -> Look | None:
        return self.looks[-1] if self.looks else None


def decide(low: np.ndarray, high: np.ndarray, margin: float, at_cap: bool) -> np.ndarray:
    """Each test's outcome from its repeated interval at a look."""
    outcome = np.full(low.shape, OPEN, dtype=object)
    outcome[at_cap] = OPEN_AT_CAP
    outcome[(low > -margin) & (high < margin)] = EQUIVALENT
    outcome[(low > 0) | (high < 0)] = DIFFERENT
    return outcome


def settle_pair(
    name_a: str, name_b: str, correct_a: np.ndarray, correct_b: np.ndarray, design: Design
) -> PairState:
    """Replays the looks of one pair on its networks' correctness (``[seeds, reviews]``, seeds
    in params.yaml's order: look k reads the first ``design.seeds_at(k)`` of each) as far as
    both recipes have seeds for, and stops at the look that closes it."""
    state = PairState(name_a, name_b)
    boundaries = Boundaries(design.pair_alpha)
    for look in range(1, design.looks + 1):
        seeds = design.seeds_at(look)
        if min(len(correct_a), len(correct_b)) < seeds:
            break
        a, b = correct_a[:seeds], correct_b[:seeds]
        found = difference(
            a.mean(axis=1)[None], b.mean(axis=1)[None], a.mean(axis=0)[None], b.mean(axis=0)[None]
        )
        fraction = found.fraction(design.max_seeds)
        z = boundaries.next(fraction)
        critical = t_critical(z, found.degrees_of_freedom)
        half = critical * np.sqrt(found.variance)
        low, high = found.estimate - half, found.estimate + half
        state.looks.append(
            Look(
                look=look,
                seeds=seeds,
                estimate=float(found.estimate[0]),
                low=float(low[0]),
                high=float(high[0]),
                fraction=float(fraction[0]),
                z_boundary=float(z[0]),
                critical=float(critical[0]),
                degrees_of_freedom=float(found.degrees_of_freedom[0]),
            )
        )
        state.outcome = decide(low, high, design.margin, seeds >= design.max_seeds)[0]
        if state.closed:
            break
    return state


def settle(correct: dict[str, np.ndarray], design: Design) -> list[PairState]:
    """Every pair of ``correct``'s recipes (in its order), each replayed (:func:`settle_pair`)."""
    names = list(correct)
    return [
        settle_pair(a, b, correct[a], correct[b], design)
        for index, a in enumerate(names)
        for b in names[index + 1 :]
    ]


def seeds_wanted(states: list[PairState], design: Design) -> dict[str, int]:
    """Per model in an open pair, the seeds its next look needs: the pair's next look's count
    (its first look's, if it has had none)."""
    wanted: dict[str, int] = {}
    for state in states:
        if state.closed:
            continue
        next_look = (state.last.look if state.last else 0) + 1
        seeds = design.seeds_at(next_look)
        for model in (state.model_a, state.model_b):
            wanted[model] = max(wanted.get(model, 0), seeds)
    return wanted
