"""The settle's group-sequential design: its boundaries against the published ones, its looks
replayed on the networks' results, and its error rates by simulation (2,000 settles each, on
synthetic reviews of every difficulty, with per-network, per-review noise and a seed effect):
false "different" and false "equivalent" at or below the nominal level, repeated intervals
covering the true difference at every look at least 95% of the time. The fixed-sample boundary
at every look fails the first of these."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from imdb_sentiment import sequential
from tests import simulation
from tests.simulation import Settles

SIMULATIONS = 2_000
DESIGN = sequential.Design(alpha=0.05, pairs=1, margin=0.005, seeds_per_look=5, max_seeds=40)


def test_the_boundaries_are_lan_demets_obrien_fleming_type():
    # gsDesign's sfLDOF, two-sided symmetric, 5%, five equally spaced looks.
    boundaries = sequential.Boundaries(0.05)
    found = [boundaries.next(np.array([look / 5]))[0] for look in range(1, 6)]
    assert found == pytest.approx([4.8769, 3.3570, 2.6803, 2.2898, 2.0310], abs=2e-3)


def test_a_look_whose_information_did_not_grow_spends_nothing():
    boundaries = sequential.Boundaries(0.05, batch=2)
    boundaries.next(np.array([0.5, 0.5]))
    again = boundaries.next(np.array([0.4, 1.0]))
    assert again[0] == np.inf and np.isfinite(again[1])


def simulate(difference: float, rng: np.random.Generator) -> Settles:
    return simulation.simulate(difference, rng, DESIGN, SIMULATIONS)


def _rate_at_most(count: int, nominal: float) -> bool:
    """Whether ``count`` of ``SIMULATIONS`` is not above ``nominal`` beyond chance: the
    one-sided 99% lower bound of the rate is at most ``nominal``."""
    return stats.binomtest(count, SIMULATIONS, nominal, alternative="greater").pvalue > 0.01


def test_equal_recipes_are_called_different_at_most_at_the_nominal_rate():
    settles = simulate(0.0, np.random.default_rng(11))
    different = int(np.sum(settles.outcome == sequential.DIFFERENT))
    assert _rate_at_most(different, DESIGN.alpha), f"{different / SIMULATIONS:.1%} different"
    assert settles.covered.mean() >= 0.95


def test_recipes_a_margin_apart_are_called_equivalent_at_most_at_the_nominal_rate():
    settles = simulate(DESIGN.margin, np.random.default_rng(12))
    equivalent = int(np.sum(settles.outcome == sequential.EQUIVALENT))
    assert _rate_at_most(equivalent, DESIGN.alpha), f"{equivalent / SIMULATIONS:.1%} equivalent"
    assert settles.covered.mean() >= 0.95


def test_the_repeated_intervals_cover_a_true_difference_at_every_look():
    settles = simulate(0.01, np.random.default_rng(13))
    assert settles.covered.mean() >= 0.95, f"{settles.covered.mean():.1%} covered"
    # A one-point difference is found different most of the time, well before the cap.
    assert np.mean(settles.outcome == sequential.DIFFERENT) > 0.8
    assert np.median(settles.seeds[settles.outcome == sequential.DIFFERENT]) < DESIGN.max_seeds


def test_the_fixed_sample_boundary_at_every_look_calls_equal_recipes_different_too_often(
    monkeypatch,
):
    # What a user who reran the fixed design after every few seeds would be doing.
    fixed = stats.norm.isf(DESIGN.alpha / 2)
    monkeypatch.setattr(
        sequential.Boundaries, "next", lambda self, fraction: np.full(len(fraction), fixed)
    )
    settles = simulate(0.0, np.random.default_rng(11))
    different = int(np.sum(settles.outcome == sequential.DIFFERENT))
    assert not _rate_at_most(different, DESIGN.alpha), f"{different / SIMULATIONS:.1%}"


def correct_of(accuracies: list[float], reviews: int = 400) -> np.ndarray:
    """``[seeds, reviews]`` correctness with these accuracies (each a prefix of right ones)."""
    return np.array([np.arange(reviews) < round(a * reviews) for a in accuracies], np.int8)


def test_a_pair_is_replayed_look_by_look_on_its_seeds_in_order():
    design = sequential.Design(alpha=0.05, pairs=3, margin=0.005, seeds_per_look=3, max_seeds=9)
    clearly_better = correct_of([0.90, 0.91, 0.89, 0.90, 0.9])
    worse = correct_of([0.80, 0.81, 0.79, 0.80, 0.8])
    state = sequential.settle_pair("lstm", "simplernn", clearly_better, worse, design)
    assert state.outcome == sequential.DIFFERENT
    assert [look.seeds for look in state.looks] == [3]
    assert state.looks[0].low > 0
    # Two seeds: no look yet, and the first look's seeds are wanted.
    early = sequential.settle_pair("lstm", "gru", clearly_better[:2], worse[:2], design)
    assert early.outcome == sequential.OPEN and not early.looks
    assert sequential.seeds_wanted([early], design) == {"lstm": 3, "gru": 3}


def test_only_the_models_of_open_pairs_get_more_seeds():
    design = sequential.Design(alpha=0.05, pairs=3, margin=0.005, seeds_per_look=3, max_seeds=9)
    rng = np.random.default_rng(5)
    close = {name: (rng.random((3, 400)) < 0.86).astype(np.int8) for name in ("lstm", "gru")}
    states = sequential.settle({"simplernn": correct_of([0.7, 0.71, 0.69]), **close}, design)
    assert [state.outcome for state in states][:2] == [sequential.DIFFERENT] * 2
    assert states[2].outcome == sequential.OPEN
    assert sequential.seeds_wanted(states, design) == {"lstm": 6, "gru": 6}
