"""The C++ kernels as TensorFlow ops: one recurrent layer's whole time loop, with its gradient.

``recurrent_sequence`` takes a layer's input part of every step (``inputs @ kernel + bias``,
computed beforehand as one large matmul), runs every step in one op, and has a gradient that
runs the backward loop in another op; the gradients of the recurrent kernel (and bias) come
from one large matmul each, after the loop.
"""

from __future__ import annotations

import functools
import logging

import tensorflow as tf

from fast_rnn.build import WITHOUT_KERNELS, KernelBuildError, library_path

logger = logging.getLogger(__name__)


@functools.cache
def load_kernels():
    """The loaded ops (``fast_rnn_{simple_rnn,lstm,gru}_sequence`` and their ``_grad``), built
    first if they are not built yet.

    Raises:
        KernelBuildError: They cannot be built or loaded; the message names the fix.
    """
    library = library_path()
    try:
        return tf.load_op_library(str(library))
    except (tf.errors.NotFoundError, OSError) as error:
        raise KernelBuildError(
            f"loading {library} failed ({error}); delete {library.parent} to rebuild it, "
            f"{WITHOUT_KERNELS}"
        ) from error


def kernels_or_none():
    """The loaded ops, or None where they cannot be built, with a warning once per process: a
    model trained with them still runs where there is no compiler, in Keras' own loop."""
    try:
        return load_kernels()
    except KernelBuildError as error:
        _warn_about_fallback(str(error))
        return None


@functools.cache
def _warn_about_fallback(reason: str) -> None:
    logger.warning(
        "the recurrent layers run Keras' own loop instead of the C++ kernels (the same "
        "function, slower): %s",
        reason,
    )


def _or_zeros(gradient, like):
    # Outputs the loss does not depend on (the sequence of a last-output-only layer) may get
    # no gradient at all.
    return tf.zeros_like(like) if gradient is None else gradient


def _previous(initial, sequence):
    """``[x_0 .. x_{T-1}]`` -> ``[initial, x_0 .. x_{T-2}]``: the state each step started from."""
    return tf.concat([initial[None], sequence[:-1]], axis=0)


def _recurrent_gradients(weights, initial_state, states, d_recurrent):
    """The gradients of a layer's recurrent kernel (and recurrent bias, where it has one) from
    its states and the gradient of its recurrent part ``h_{t-1} @ R (+ b_R)`` at every step:
    sums over time and batch, one matmul for all steps."""
    previous = _previous(initial_state, states)
    units, gates = tf.shape(previous)[-1], tf.shape(d_recurrent)[-1]
    gradients = {
        "recurrent_kernel": tf.matmul(
            tf.reshape(previous, [-1, units]),
            tf.reshape(d_recurrent, [-1, gates]),
            transpose_a=True,
        )
    }
    if "recurrent_bias" in weights:
        gradients["recurrent_bias"] = tf.reduce_sum(d_recurrent, axis=[0, 1])
    return gradients


class SimpleRNNCell:
    """``h = tanh(x + h @ R)``."""

    @staticmethod
    def forward(kernels, x, initial_states, weights):
        hs = kernels.fast_rnn_simple_rnn_sequence(x, initial_states[0], weights["recurrent_kernel"])
        return hs, (), (hs[-1],)

    @staticmethod
    def backward(kernels, d_outputs, d_final_states, x, hs, kept, initial_states, weights):
        d_z, d_h0 = kernels.fast_rnn_simple_rnn_sequence_grad(
            d_outputs, d_final_states[0], hs, weights["recurrent_kernel"]
        )
        return d_z, d_z, (d_h0,)


class LSTMCell:
    """Sigmoid gates and tanh, gates in Keras' order i, f, c, o. The forward op keeps the carries
    and pre-activations for the backward one."""

    @staticmethod
    def forward(kernels, x, initial_states, weights):
        hs, cs, zs = kernels.fast_rnn_lstm_sequence(x, *initial_states, weights["recurrent_kernel"])
        return hs, (cs, zs), (hs[-1], cs[-1])

    @staticmethod
    def backward(kernels, d_outputs, d_final_states, x, hs, kept, initial_states, weights):
        d_z, d_h0, d_c0 = kernels.fast_rnn_lstm_sequence_grad(
            d_outputs, *d_final_states, *kept, initial_states[1], weights["recurrent_kernel"]
        )
        return d_z, d_z, (d_h0, d_c0)


class GRUCell:
    """Keras' GRU with ``reset_after=True``: gates in Keras' order z, r, h. The recurrent part
    (``h @ R + recurrent bias``) enters the gates apart from the input part, because the reset
    gate scales only the former, so the two get different gradients."""

    @staticmethod
    def forward(kernels, x, initial_states, weights):
        hs, ms = kernels.fast_rnn_gru_sequence(
            x, initial_states[0], weights["recurrent_kernel"], weights["recurrent_bias"]
        )
        return hs, (ms,), (hs[-1],)

    @staticmethod
    def backward(kernels, d_outputs, d_final_states, x, hs, kept, initial_states, weights):
        (ms,) = kept
        d_x, d_m, d_h0 = kernels.fast_rnn_gru_sequence_grad(
            d_outputs, d_final_states[0], x, hs, ms, initial_states[0], weights["recurrent_kernel"]
        )
        return d_x, d_m, (d_h0,)


def recurrent_sequence(cell, kernels, inputs, weights, initial_states):
    """One recurrent layer over time-major sequences, every step in one C++ op and its gradient
    in another.

    Args:
        cell: ``SimpleRNNCell``, ``LSTMCell`` or ``GRUCell``.
        kernels: The loaded ops (``load_kernels()``).
        inputs: The input part of every step, ``[T, B, G]`` (``inputs @ kernel + bias``).
        weights: ``recurrent_kernel`` ``[U, G]`` and, for a GRU, ``recurrent_bias`` ``[G]``.
        initial_states: A tuple of states ``[B, U]``.

    Returns:
        The outputs ``[T, B, U]`` and the final states.
    """
    structure = (inputs, weights, initial_states)

    @tf.custom_gradient
    def sequence(*flat):
        inputs, weights, initial_states = tf.nest.pack_sequence_as(structure, flat)
        outputs, kept, final_states = cell.forward(kernels, inputs, initial_states, weights)

        def gradient(d_outputs, *d_final_states):
            d_inputs, d_recurrent, d_initial = cell.backward(
                kernels,
                _or_zeros(d_outputs, outputs),
                [_or_zeros(d, s) for d, s in zip(d_final_states, final_states, strict=True)],
                inputs,
                outputs,
                kept,
                initial_states,
                weights,
            )
            d_weights = _recurrent_gradients(weights, initial_states[0], outputs, d_recurrent)
            return tf.nest.flatten((d_inputs, d_weights, d_initial))

        return (outputs, *final_states), gradient

    return sequence(*tf.nest.flatten(structure))
