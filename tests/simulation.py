"""Simulated settles of two recipes (imdb_sentiment/sequential.py), for its calibration tests
(tests/test_sequential.py) and the expected seeds per model (bench/settle.py).

Reviews of every difficulty: review r's easiness is normal on the logit scale, and a network
is right on it with probability sigmoid(easiness + its seed's shift + its recipe's shift),
drawn for each network and review, so that two networks of one recipe disagree on some reviews
(about 10% with the default easiness) and a seed moves a network's accuracy as a whole."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imdb_sentiment import sequential


@dataclass(frozen=True)
class World:
    reviews: int = 2_500
    # 86% right; two networks of a recipe disagree on 10% of the reviews.
    easiness: tuple[float, float] = (4.75, 4.0)
    # A network's own shift, its seed's, on the logit scale (0.2: about 1 point of accuracy).
    seed_shift: float = 0.2

    def accuracy_of(self, shift: float) -> float:
        """The population's expected accuracy of a network of a recipe shifted by ``shift``."""
        z, weights = np.polynomial.hermite_e.hermegauss(80)
        seeds, seed_weights = np.polynomial.hermite_e.hermegauss(40)
        total = 0.0
        for seed_z, seed_weight in zip(seeds, seed_weights, strict=True):
            logit = self.easiness[0] + self.easiness[1] * z + self.seed_shift * seed_z + shift
            total += seed_weight * np.sum(weights / (1 + np.exp(-logit)))
        return total / (2 * np.pi)

    def shift_for(self, difference: float) -> float:
        """The shift of recipe b that makes a's expected accuracy minus b's ``difference``."""
        base = self.accuracy_of(0.0)
        low, high = -2.0, 2.0
        for _ in range(60):
            middle = (low + high) / 2
            too_close = base - self.accuracy_of(middle) > difference
            low, high = (middle, high) if too_close else (low, middle)
        return (low + high) / 2


@dataclass
class Settles:
    """Per simulated settle: its outcome, the seeds per model it took, and whether every
    repeated interval it gave covered the true difference."""

    outcome: np.ndarray
    seeds: np.ndarray
    covered: np.ndarray


def simulate(
    difference: float,
    rng: np.random.Generator,
    design: sequential.Design,
    simulations: int,
    world: World = World(),
    chunk: int = 2_000,
) -> Settles:
    """``simulations`` settles of recipe a against a recipe b truly ``difference`` worse, each
    on reviews of its own, ``chunk`` of them at a time (memory: chunk x reviews x seeds)."""
    shift_b = world.shift_for(difference)
    parts = [
        _simulate_chunk(difference, shift_b, rng, design, min(chunk, simulations - done), world)
        for done in range(0, simulations, chunk)
    ]
    return Settles(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("outcome", "seeds", "covered")))  # fmt: skip


def _simulate_chunk(difference, shift_b, rng, design, count, world) -> Settles:
    easiness = rng.normal(*world.easiness, (count, 1, world.reviews)).astype(np.float32)
    runs = {"a": np.empty((count, 0)), "b": np.empty((count, 0))}
    sums = {"a": np.zeros((count, world.reviews)), "b": np.zeros((count, world.reviews))}
    boundaries = sequential.Boundaries(design.pair_alpha, count)
    settles = Settles(
        np.full(count, sequential.OPEN, dtype=object), np.zeros(count, int), np.ones(count, bool)
    )
    for look in range(1, design.looks + 1):
        seeds = design.seeds_at(look)
        for recipe, shift in (("a", 0.0), ("b", shift_b)):
            added = seeds - runs[recipe].shape[1]
            seed_shift = rng.normal(0, world.seed_shift, (count, added, 1)).astype(np.float32)
            chance = 1 / (1 + np.exp(-(easiness + seed_shift + shift)))
            right = rng.random(chance.shape, dtype=np.float32) < chance
            runs[recipe] = np.concatenate([runs[recipe], right.mean(axis=2)], axis=1)
            sums[recipe] += right.sum(axis=1)
        found = sequential.difference(runs["a"], runs["b"], sums["a"] / seeds, sums["b"] / seeds)
        z = boundaries.next(found.fraction(design.max_seeds))
        half = sequential.t_critical(z, found.degrees_of_freedom) * np.sqrt(found.variance)
        low, high = found.estimate - half, found.estimate + half
        still_open = settles.outcome == sequential.OPEN
        settles.covered &= ~still_open | ((low <= difference) & (difference <= high))
        decided = sequential.decide(low, high, design.margin, seeds >= design.max_seeds)
        closing = still_open & (decided != sequential.OPEN)
        settles.outcome[closing] = decided[closing]
        settles.seeds[closing] = seeds
    return settles
