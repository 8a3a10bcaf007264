"""A digest of what the kernels compute: every op, forward and backward, on fixed inputs.

    python -m fast_rnn.fingerprint

The kernels give the same bits on every x86-64 CPU, whatever the level they were built for
(``FAST_RNN_MARCH``) and whatever TensorFlow's threads, so the digest is the same everywhere:
two machines that print the same one compute the recurrent layers alike. It changes only when
the kernels' arithmetic does (tests/fast_rnn/test_exactness.py pins it).
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

# Batches that split into uneven blocks of rows, unit counts with and without a tail past the
# vector width, a few steps.
STEPS = 5
SIZES = ((37, 64), (19, 20))
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def fixed_values(shape: tuple[int, ...], salt: int, scale: float) -> np.ndarray:
    """Values in [-scale, scale) from integer arithmetic only: the same on every machine and
    numpy release (a random generator's stream is not promised to be)."""
    count = int(np.prod(shape))
    codes = (np.arange(count, dtype=np.int64) * 2_654_435_761 + salt * 40_503) % 65_536
    return ((codes.astype(np.float32) - 32_768.0) * np.float32(scale / 32_768.0)).reshape(shape)


def fixed_inputs(cell: str, batch: int, units: int) -> dict[str, np.ndarray]:
    """The inputs of one cell's forward op and its gradient op, by name, from ``fixed_values``."""
    gates = GATES[cell] * units
    salt = iter(range(1, 100))

    def values(*shape: int, scale: float = 1.0) -> np.ndarray:
        return fixed_values(shape, next(salt), scale)

    tensors = {
        "inputs": values(STEPS, batch, gates, scale=3.0),  # past the activations' clamps, too
        "initial_state": values(batch, units, scale=0.5),
        "kernel": values(units, gates, scale=0.3),
        "d_states": values(STEPS, batch, units),
        "d_final_state": values(batch, units),
    }
    if cell == "lstm":
        tensors["initial_carry"] = values(batch, units)
        tensors["d_final_carry"] = values(batch, units)
    elif cell == "gru":
        tensors["bias"] = values(gates)
    return tensors


def outputs_of(kernels, cell: str, tensors: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Every output of one cell's forward op and its gradient op, on ``tensors`` (named as
    ``fixed_inputs`` names them)."""
    inputs, h0, kernel = tensors["inputs"], tensors["initial_state"], tensors["kernel"]
    d_states, d_final = tensors["d_states"], tensors["d_final_state"]
    if cell == "simple_rnn":
        states = kernels.fast_rnn_simple_rnn_sequence(inputs, h0, kernel)
        gradients = kernels.fast_rnn_simple_rnn_sequence_grad(d_states, d_final, states, kernel)
        results = [states, *gradients]
    elif cell == "lstm":
        c0 = tensors["initial_carry"]
        states, carries, pre = kernels.fast_rnn_lstm_sequence(inputs, h0, c0, kernel)
        gradients = kernels.fast_rnn_lstm_sequence_grad(
            d_states, d_final, tensors["d_final_carry"], carries, pre, c0, kernel
        )
        results = [states, carries, pre, *gradients]
    else:
        states, recurrent = kernels.fast_rnn_gru_sequence(inputs, h0, kernel, tensors["bias"])
        gradients = kernels.fast_rnn_gru_sequence_grad(
            d_states, d_final, inputs, states, recurrent, h0, kernel
        )
        results = [states, recurrent, *gradients]
    return [np.asarray(result) for result in results]


def fingerprint(kernels) -> str:
    """The digest of every op's outputs at every size in ``SIZES``."""
    digest = hashlib.sha256()
    for cell in GATES:
        for batch, units in SIZES:
            for result in outputs_of(kernels, cell, fixed_inputs(cell, batch, units)):
                digest.update(np.ascontiguousarray(result, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def main() -> int:
    from fast_rnn.build import KernelBuildError, _import_tensorflow_without_its_banner
    from fast_rnn.ops import load_kernels

    _import_tensorflow_without_its_banner()
    try:
        kernels = load_kernels()
    except KernelBuildError as error:
        sys.stderr.write(f"fast_rnn: {error}\n")
        return 1
    sys.stdout.write(f"{fingerprint(kernels)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
