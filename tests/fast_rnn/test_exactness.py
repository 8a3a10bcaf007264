"""The kernels' results depend on their inputs only: not on the CPU's vector width (the level
they were built for), not on TensorFlow's threads, not on the other rows of a batch. Their
digest is pinned, so that a change of their arithmetic is a decision, taken with the committed
results rerun, and not an accident."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from fast_rnn import build, fingerprint  # noqa: E402
from fast_rnn.ops import load_kernels  # noqa: E402

PROJECT = Path(__file__).resolve().parents[2]
# fast_rnn.fingerprint's digest of the kernels' outputs. The kernels compute, with the pipeline's
# sizes, what Eigen's AVX-512 code computed before them (dvc.lock's outputs are unchanged).
PINNED = "401d7907cce5f519"


def test_the_kernels_compute_the_pinned_results():
    assert fingerprint.fingerprint(load_kernels()) == PINNED


# The inputs whose axis 1 is the batch (sequences); the kernel and bias have none, the states'
# is axis 0.
SEQUENCES = {"inputs", "d_states"}
UNBATCHED = {"kernel", "bias"}


def _rows(tensors, rows):
    return {
        name: value if name in UNBATCHED else value[:, rows] if name in SEQUENCES else value[rows]
        for name, value in tensors.items()
    }


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_a_rows_results_do_not_depend_on_the_rest_of_its_batch(cell):
    kernels = load_kernels()
    tensors = fingerprint.fixed_inputs(cell, batch=37, units=32)
    whole = fingerprint.outputs_of(kernels, cell, tensors)
    for rows in (slice(5, 6), slice(3, 20)):
        part = fingerprint.outputs_of(kernels, cell, _rows(tensors, rows))
        for whole_output, part_output in zip(whole, part, strict=True):
            expected = whole_output[:, rows] if whole_output.ndim == 3 else whole_output[rows]
            np.testing.assert_array_equal(part_output, expected, strict=True)


def _fingerprint_under(level: str, threads: int) -> str:
    environment = {
        **os.environ,
        build.MARCH_VARIABLE: level,
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    result = subprocess.run(
        [sys.executable, "-m", "fast_rnn.fingerprint"],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()[-1]


@pytest.mark.e2e
def test_every_level_this_cpu_can_emulate_and_every_thread_count_give_the_same_bits():
    newest = build.target_architecture(build._cpu_flags())
    if not newest.startswith("x86-64"):
        pytest.skip(f"not an x86-64 CPU ({newest})")
    levels = ["x86-64-v4", "x86-64-v3", "x86-64-v2", "x86-64"]
    levels = levels[levels.index(newest) if newest in levels else 0 :]
    found = {(level, 2): _fingerprint_under(level, 2) for level in levels}
    found |= {(newest, threads): _fingerprint_under(newest, threads) for threads in (1, 4)}
    assert set(found.values()) == {PINNED}, found
