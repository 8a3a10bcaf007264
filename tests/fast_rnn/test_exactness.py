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


def _run(kernels, cell, tensors):
    """Every output of one cell's ops, on inputs whose batch is axis 1 of sequences and axis 0
    of states."""
    inputs, h0, kernel, d_states, d_final, c0, bias = tensors
    if cell == "simple_rnn":
        states = kernels.fast_rnn_simple_rnn_sequence(inputs, h0, kernel)
        grads = kernels.fast_rnn_simple_rnn_sequence_grad(d_states, d_final, states, kernel)
        return [states, *grads]
    if cell == "lstm":
        states, carries, pre = kernels.fast_rnn_lstm_sequence(inputs, h0, c0, kernel)
        grads = kernels.fast_rnn_lstm_sequence_grad(
            d_states, d_final, d_final, carries, pre, c0, kernel
        )
        return [states, carries, pre, *grads]
    states, recurrent = kernels.fast_rnn_gru_sequence(inputs, h0, kernel, bias)
    grads = kernels.fast_rnn_gru_sequence_grad(
        d_states, d_final, inputs, states, recurrent, h0, kernel
    )
    return [states, recurrent, *grads]


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_a_rows_results_do_not_depend_on_the_rest_of_its_batch(cell):
    kernels = load_kernels()
    batch, units = 37, 32
    gates = fingerprint.GATES[cell] * units
    rng = np.random.default_rng(0)

    def values(*shape):
        return rng.normal(size=shape).astype("float32")

    tensors = [
        values(4, batch, gates),
        values(batch, units),
        values(units, gates) * 0.3,
        values(4, batch, units),
        values(batch, units),
        values(batch, units),
        values(gates),
    ]
    whole = [np.asarray(output) for output in _run(kernels, cell, tensors)]
    for rows in (slice(5, 6), slice(3, 20)):
        part_tensors = [
            t[:, rows] if i in (0, 3) else t[rows] if i in (1, 4, 5) else t
            for i, t in enumerate(tensors)
        ]
        part = _run(kernels, cell, part_tensors)
        for whole_output, part_output in zip(whole, part, strict=True):
            expected = whole_output[:, rows] if whole_output.ndim == 3 else whole_output[rows]
            np.testing.assert_array_equal(np.asarray(part_output), expected, strict=True)


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
