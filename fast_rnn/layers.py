"""Keras' SimpleRNN, LSTM and GRU, each with its time loop in one C++ op, for the CPU.

Keras 3 has no fused recurrent kernel on the CPU (cuDNN is GPU-only): every time step
multiplies its inputs by the input kernel and the previous state by the recurrent kernel, two
small matmuls inside a ``while`` loop of about 20 TensorFlow ops, and autodiff adds more per
step on the way back; each op costs microseconds of dispatch whatever its size. These layers do
what cuDNN does on a GPU:

- the input projection of all time steps is one large matmul before the loop;
- the loop itself, forward and backward, is one C++ op per layer (``recurrent_sequences.cc``,
  built by ``build.py``): no op dispatch per step, and the batch split over the cores;
- the gradients of the kernels come from one large matmul each, after the backward loop.

Same weights, same config, same outputs and gradients as Keras' own layers
(``tests/fast_rnn/test_layers.py`` checks them against each other with the same weights): each
subclasses the Keras layer, keeps its cell and weights, and replaces only ``inner_loop``. Input
dropout in Keras' loop uses one mask per sequence for all time steps, so applying it before the
projection is the same computation. Keras' own loop runs instead where the kernels do not
apply (recurrent dropout, masking, ``unroll``, activations other than the
defaults, GRU with ``reset_after=False``, a dtype other than float32) or cannot be built (a
machine without a compiler, which gets one warning).

TensorFlow backend only.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops

from fast_rnn import ops as fused_ops


class _FusedLoop:
    """Mixin for a Keras RNN layer: ``inputs @ kernel (+ bias)`` before the loop, and the loop
    with its gradient in the C++ kernels."""

    _cell_ops: type  # fused_ops.SimpleRNNCell, LSTMCell or GRUCell
    # What the Keras RNN layer this is mixed into provides.
    cell: Any
    compute_dtype: str
    unroll: bool

    def _can_fuse(self, mask) -> bool:
        cell = self.cell
        return (
            mask is None
            and self.compute_dtype == "float32"
            and not cell.recurrent_dropout
            and not self.unroll
            and cell.activation is keras.activations.tanh
            and getattr(cell, "recurrent_activation", keras.activations.sigmoid)
            is keras.activations.sigmoid
        )

    def _input_bias(self):
        """The bias added to ``inputs @ kernel``, or None."""
        return tf.convert_to_tensor(self.cell.bias) if self.cell.use_bias else None

    def _loop_weights(self) -> dict:
        """What the loop takes of this layer besides its input part."""
        return {"recurrent_kernel": tf.convert_to_tensor(self.cell.recurrent_kernel)}

    def _time_major_projection(self, sequences, training):
        cell = self.cell
        if training and 0.0 < cell.dropout < 1.0:
            # Keras' own loop uses one mask per sequence for every time step (RNN.call prepares
            # it, cached on the cell until the call ends).
            sequences = sequences * ops.expand_dims(cell.get_dropout_mask(sequences[:, 0, :]), 1)
        time_major = tf.transpose(sequences, [1, 0, 2])
        if self.go_backwards:
            # Keras' loop reads the sequence from its end and returns the outputs in the order
            # it computed them (keras.layers.Bidirectional flips them back).
            time_major = tf.reverse(time_major, [0])
        projected = ops.matmul(time_major, cell.kernel)
        input_bias = self._input_bias()
        return projected if input_bias is None else projected + input_bias

    def inner_loop(self, sequences, initial_state, mask, training=False):
        kernels = fused_ops.kernels_or_none() if self._can_fuse(mask) else None
        if kernels is None:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        hs, *states = fused_ops.recurrent_sequence(
            self._cell_ops,
            kernels,
            self._time_major_projection(sequences, training),
            self._loop_weights(),
            tuple(initial_state),
        )
        # What Keras' inner_loop returns: last output, outputs, final states.
        outputs = tf.transpose(hs, [1, 0, 2]) if self.return_sequences else states[0]
        return states[0], outputs, states


@keras.saving.register_keras_serializable(package="fast_rnn")
class SimpleRNN(_FusedLoop, keras.layers.SimpleRNN):
    """``keras.layers.SimpleRNN``, its time loop in one C++ op."""

    _cell_ops = fused_ops.SimpleRNNCell


@keras.saving.register_keras_serializable(package="fast_rnn")
class LSTM(_FusedLoop, keras.layers.LSTM):
    """``keras.layers.LSTM``, its time loop in one C++ op."""

    _cell_ops = fused_ops.LSTMCell


@keras.saving.register_keras_serializable(package="fast_rnn")
class GRU(_FusedLoop, keras.layers.GRU):
    """``keras.layers.GRU``, its time loop in one C++ op."""

    _cell_ops = fused_ops.GRUCell

    def _can_fuse(self, mask) -> bool:
        # With reset_after=False the reset gate scales the state before its matmul: the op
        # computes the reset_after=True form only.
        return self.cell.reset_after and super()._can_fuse(mask)

    def _input_bias(self):
        return tf.convert_to_tensor(self.cell.bias)[0] if self.cell.use_bias else None

    def _loop_weights(self) -> dict:
        cell = self.cell
        recurrent_bias = (
            tf.convert_to_tensor(cell.bias)[1]
            if cell.use_bias
            else tf.zeros([3 * cell.units], self.compute_dtype)
        )
        return {**super()._loop_weights(), "recurrent_bias": recurrent_bias}


# The layer for each of Keras' cell names.
LAYERS = {"simplernn": SimpleRNN, "lstm": LSTM, "gru": GRU}
