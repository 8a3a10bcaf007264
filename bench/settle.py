"""How many seeds `make settle` takes: simulated settles of two recipes at true differences of
0, 0.25, 0.5 and 1.5 points of expected test accuracy, with the project's design (5% over three
pairs, settle.seeds_per_look and settle.max_seeds, the equivalence margin of params.yaml), on
25,000 simulated test reviews whose networks spread like this project's LSTM and GRU (sd 0.42
points over seeds, two networks disagreeing on about 10% of the reviews). Not a test: it prints
numbers (docs/statistics.md has them).

    python bench/settle.py [--simulations 500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from imdb_sentiment import pairs, paths, sequential  # noqa: E402
from imdb_sentiment.params import load_params  # noqa: E402
from tests.simulation import World, simulate  # noqa: E402

DIFFERENCES = (0.0, 0.0025, 0.005, 0.015)
# On the logit scale: with 25,000 reviews, runs whose accuracies spread by about 0.42 points.
SEED_SHIFT = 0.08


def spread_of_runs(world: World, rng: np.random.Generator, runs: int = 400) -> float:
    """The sd over seeds of one recipe's runs' accuracies, in points, as simulated."""
    easiness = rng.normal(*world.easiness, world.reviews)
    shifts = rng.normal(0, world.seed_shift, (runs, 1))
    right = rng.random((runs, world.reviews)) < 1 / (1 + np.exp(-(easiness + shifts)))
    return 100 * float(right.mean(axis=1).std(ddof=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulations", type=int, default=500, help="per difference")
    arguments = parser.parse_args()
    params = load_params(paths.this_project().params_file)
    design = pairs.design_of(params.model_copy(update={"settle": params.settle.model_copy(
        update={"design": "sequential"})}))  # fmt: skip
    assert design is not None
    world = World(reviews=25_000, seed_shift=SEED_SHIFT)
    rng = np.random.default_rng(2026)
    sys.stdout.write(
        f"{design.pairs} pairs at {100 * design.alpha:g}%, looks of {design.seeds_per_look} "
        f"seeds up to {design.max_seeds}, margin ±{100 * design.margin:g} points; runs spread "
        f"by {spread_of_runs(world, rng):.2f} points; {arguments.simulations} settles each\n"
    )
    sys.stdout.write(f"{'true difference':>16} {'mean seeds':>11} {'median':>7} "
                     f"{'different':>10} {'equivalent':>11} {'at the cap':>11}\n")  # fmt: skip
    for difference in DIFFERENCES:
        settles = simulate(difference, rng, design, arguments.simulations, world, chunk=100)
        shares = {
            outcome: np.mean(settles.outcome == outcome)
            for outcome in (sequential.DIFFERENT, sequential.EQUIVALENT, sequential.OPEN_AT_CAP)
        }
        sys.stdout.write(
            f"{100 * difference:13.2f} pt {settles.seeds.mean():11.1f} "
            f"{np.median(settles.seeds):7.0f} {shares[sequential.DIFFERENT]:10.1%} "
            f"{shares[sequential.EQUIVALENT]:11.1%} {shares[sequential.OPEN_AT_CAP]:11.1%}\n"
        )


if __name__ == "__main__":
    main()
