"""Keras' SimpleRNN, LSTM and GRU with the input projection out of the time loop and a
hand-written backward pass, for the CPU.

Keras 3 has no fused recurrent kernel on CPU (cuDNN is GPU-only): every time step multiplies
its inputs by the input kernel and the previous state by the recurrent kernel, two small
matmuls inside a ``while`` loop, and autodiff adds four more per step on the way back. Small
matmuls run at a fraction of the rate of large ones here (about 50-120 against 270 GFLOP/s,
``bench/`` has the numbers). These layers do what cuDNN does:

- the input projection of all time steps is one large matmul before the loop;
- the loop keeps only the recurrent matmul and the gates;
- the backward loop (``tf.custom_gradient``) keeps one matmul per step, and the gradients of
  the kernels come from one large matmul each after it.

Same weights, same config, same outputs and gradients as Keras' own layers (``tests/
test_recurrent.py`` checks both against them with the same weights): each subclasses the
Keras layer, keeps its cell and weights, and only replaces ``inner_loop``. Input dropout in
Keras' loop uses one mask per sequence for all time steps, so applying it before the
projection is the same computation. Where the projection cannot be hoisted (recurrent
dropout, masking, ``go_backwards``, ``unroll``, non-default activations, GRU with
``reset_after=False``) Keras' own loop runs.

TensorFlow backend only, like the rest of this project.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def _forward_loop(body, steps, loop_vars):
    return tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), *loop_vars), maximum_iterations=steps
    )[1:]


def _backward_loop(body, steps, loop_vars):
    return tf.while_loop(
        lambda t, *_: t >= 0, body, (steps - 1, *loop_vars), maximum_iterations=steps
    )[1:]


def _sequence(steps, like):
    return tf.TensorArray(like.dtype, size=steps)


def _or_zeros(gradient, like):
    # Outputs the loss does not depend on (the sequence of a last-output-only layer) may get
    # no gradient at all.
    return tf.zeros_like(like) if gradient is None else gradient


def _kernel_gradient(h_previous, d_pre_activations):
    """sum over time and batch of ``h_{t-1}^T @ d_z_t``: one matmul for all steps."""
    units, gates = tf.shape(h_previous)[-1], tf.shape(d_pre_activations)[-1]
    return tf.matmul(
        tf.reshape(h_previous, [-1, units]),
        tf.reshape(d_pre_activations, [-1, gates]),
        transpose_a=True,
    )


def _previous(initial, sequence):
    """``[x_0 .. x_{T-1}]`` -> ``[initial, x_0 .. x_{T-2}]``: the state each step started from."""
    return tf.concat([initial[None], sequence[:-1]], axis=0)


@tf.custom_gradient
def simple_rnn_sequence(projected, recurrent_kernel, h0):
    """A tanh SimpleRNN over time-major ``projected`` ([T, B, U], input bias included).

    Returns:
        All states [T, B, U] and the last one [B, U].
    """
    steps = tf.shape(projected)[0]

    def step(t, h, hs):
        h = tf.tanh(projected[t] + tf.matmul(h, recurrent_kernel))
        return t + 1, h, hs.write(t, h)

    h, hs = _forward_loop(step, steps, (h0, _sequence(steps, h0)))
    hs = hs.stack()

    def gradient(d_hs, d_h):
        d_hs, d_h = _or_zeros(d_hs, hs), _or_zeros(d_h, h)
        tanh_derivative = 1.0 - hs * hs
        transposed_kernel = tf.transpose(recurrent_kernel)

        def back(t, d_h_next, d_as):
            d_a = (d_hs[t] + d_h_next) * tanh_derivative[t]
            return t - 1, tf.matmul(d_a, transposed_kernel), d_as.write(t, d_a)

        d_h0, d_as = _backward_loop(back, steps, (d_h, _sequence(steps, h0)))
        d_as = d_as.stack()
        return d_as, _kernel_gradient(_previous(h0, hs), d_as), d_h0

    return (hs, h), gradient


@tf.custom_gradient
def lstm_sequence(projected, recurrent_kernel, h0, c0):
    """An LSTM (sigmoid gates, tanh) over time-major ``projected`` ([T, B, 4U], gates in
    Keras' order i, f, c, o, input bias included).

    Returns:
        All hidden states [T, B, U], the last hidden state and the last carry [B, U].
    """
    steps = tf.shape(projected)[0]

    def step(t, h, c, cs, zs):
        z = projected[t] + tf.matmul(h, recurrent_kernel)
        i, f, g, o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        return t + 1, h, c, cs.write(t, c), zs.write(t, z)

    # The loop keeps what cannot be recomputed; the hidden states follow from it, all at once.
    h, c, cs, zs = _forward_loop(step, steps, (h0, c0, _sequence(steps, h0), _sequence(steps, h0)))
    cs, zs = cs.stack(), zs.stack()
    hs = tf.sigmoid(tf.split(zs, 4, axis=2)[3]) * tf.tanh(cs)

    def gradient(d_hs, d_h, d_c):
        d_hs, d_h, d_c = _or_zeros(d_hs, hs), _or_zeros(d_h, h), _or_zeros(d_c, c)
        # Everything that does not depend on the incoming gradient, for all steps at once.
        i, f, g, o = tf.split(zs, 4, axis=2)
        i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
        tanh_c = tf.tanh(cs)
        h_to_c = o * (1.0 - tanh_c * tanh_c)
        # d_z = [d_c, d_c, d_c, d_h] * gate_derivatives, per step.
        gate_derivatives = tf.concat(
            [
                g * i * (1.0 - i),
                _previous(c0, cs) * f * (1.0 - f),
                i * (1.0 - g * g),
                tanh_c * o * (1.0 - o),
            ],
            axis=2,
        )
        transposed_kernel = tf.transpose(recurrent_kernel)

        def back(t, d_h_next, d_c_next, d_zs):
            d_h_t = d_hs[t] + d_h_next
            d_c_t = d_c_next + d_h_t * h_to_c[t]
            d_z = tf.concat([d_c_t, d_c_t, d_c_t, d_h_t], axis=1) * gate_derivatives[t]
            return t - 1, tf.matmul(d_z, transposed_kernel), d_c_t * f[t], d_zs.write(t, d_z)

        d_h0, d_c0, d_zs = _backward_loop(back, steps, (d_h, d_c, _sequence(steps, h0)))
        d_zs = d_zs.stack()
        return d_zs, _kernel_gradient(_previous(h0, hs), d_zs), d_h0, d_c0

    return (hs, h, c), gradient


@tf.custom_gradient
def gru_sequence(projected, recurrent_kernel, recurrent_bias, h0):
    """A GRU with ``reset_after=True`` (Keras' default; sigmoid gates, tanh) over time-major
    ``projected`` ([T, B, 3U], gates in Keras' order z, r, h, input bias included).

    Returns:
        All states [T, B, U] and the last one [B, U].
    """
    steps = tf.shape(projected)[0]
    units = tf.shape(h0)[1]

    def gates_and_candidate(x, m):
        update_reset = tf.sigmoid(x[..., : 2 * units] + m[..., : 2 * units])
        reset = update_reset[..., units:]
        candidate = tf.tanh(x[..., 2 * units :] + reset * m[..., 2 * units :])
        return update_reset[..., :units], reset, candidate

    def step(t, h, hs, ms):
        m = tf.matmul(h, recurrent_kernel) + recurrent_bias
        update, _, candidate = gates_and_candidate(projected[t], m)
        h = candidate + update * (h - candidate)
        return t + 1, h, hs.write(t, h), ms.write(t, m)

    h, hs, ms = _forward_loop(step, steps, (h0, _sequence(steps, h0), _sequence(steps, h0)))
    hs, ms = hs.stack(), ms.stack()

    def gradient(d_hs, d_h):
        d_hs, d_h = _or_zeros(d_hs, hs), _or_zeros(d_h, h)
        # The gates of every step, recomputed at once from what the loop kept.
        update, reset, candidates = gates_and_candidate(projected, ms)
        recurrent_hs = ms[..., 2 * units :]
        h_previous = _previous(h0, hs)
        # d(pre-activation) = d_h * coefficient, per gate; none depends on the gradient.
        k_update = (h_previous - candidates) * update * (1.0 - update)
        k_candidate = (1.0 - update) * (1.0 - candidates * candidates)
        k_reset = k_candidate * recurrent_hs * reset * (1.0 - reset)
        recurrent_coefficients = tf.concat([k_update, k_reset, k_candidate * reset], axis=2)
        transposed_kernel = tf.transpose(recurrent_kernel)

        def back(t, d_h_next, d_hs_total, d_ms):
            d_h_t = d_hs[t] + d_h_next
            d_m = tf.concat([d_h_t, d_h_t, d_h_t], axis=1) * recurrent_coefficients[t]
            d_h_next = d_h_t * update[t] + tf.matmul(d_m, transposed_kernel)
            return t - 1, d_h_next, d_hs_total.write(t, d_h_t), d_ms.write(t, d_m)

        d_h0, d_hs_total, d_ms = _backward_loop(
            back, steps, (d_h, _sequence(steps, h0), _sequence(steps, h0))
        )
        d_hs_total, d_ms = d_hs_total.stack(), d_ms.stack()
        d_projected = tf.concat([d_hs_total] * 3, axis=2) * tf.concat(
            [k_update, k_reset, k_candidate], axis=2
        )
        return (
            d_projected,
            _kernel_gradient(h_previous, d_ms),
            tf.reduce_sum(d_ms, axis=[0, 1]),
            d_h0,
        )

    return (hs, h), gradient


class _HoistedInputProjection:
    """Mixin for a Keras RNN layer: ``inputs @ kernel (+ bias)`` before the loop, and a loop
    with a hand-written gradient."""

    def _can_hoist(self, mask) -> bool:
        cell = self.cell
        return (
            mask is None
            and not cell.recurrent_dropout
            and not self.go_backwards
            and not self.unroll
            and cell.activation is keras.activations.tanh
            and getattr(cell, "recurrent_activation", keras.activations.sigmoid)
            is keras.activations.sigmoid
        )

    def _time_major_projection(self, sequences, input_bias, training):
        cell = self.cell
        if training and 0.0 < cell.dropout < 1.0:
            # The mask RNN.call prepared for this batch: one per sequence, for every time step.
            sequences = sequences * ops.expand_dims(cell.get_dropout_mask(sequences[:, 0, :]), 1)
        projected = ops.matmul(tf.transpose(sequences, [1, 0, 2]), cell.kernel)
        return projected if input_bias is None else projected + input_bias

    def _biases(self):
        """The input bias added to the projection (or None), and what the sequence function
        takes between the recurrent kernel and the initial states."""
        return (self.cell.bias if self.cell.use_bias else None), ()

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._can_hoist(mask):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        input_bias, extra_inputs = self._biases()
        projected = self._time_major_projection(sequences, input_bias, training)
        hs, *states = self._sequence(
            projected, self.cell.recurrent_kernel.value, *extra_inputs, *initial_state
        )
        # What Keras' inner_loop returns: last output, outputs, final states.
        outputs = tf.transpose(hs, [1, 0, 2]) if self.return_sequences else states[0]
        return states[0], outputs, states


@keras.saving.register_keras_serializable(package="imdb_rnn")
class ProjectedSimpleRNN(_HoistedInputProjection, keras.layers.SimpleRNN):
    """``keras.layers.SimpleRNN``, with the input projection before the time loop."""

    _sequence = staticmethod(simple_rnn_sequence)


@keras.saving.register_keras_serializable(package="imdb_rnn")
class ProjectedLSTM(_HoistedInputProjection, keras.layers.LSTM):
    """``keras.layers.LSTM``, with the input projection before the time loop."""

    _sequence = staticmethod(lstm_sequence)


@keras.saving.register_keras_serializable(package="imdb_rnn")
class ProjectedGRU(_HoistedInputProjection, keras.layers.GRU):
    """``keras.layers.GRU``, with the input projection before the time loop."""

    _sequence = staticmethod(gru_sequence)

    def _can_hoist(self, mask) -> bool:
        # With reset_after=False the reset gate scales the state before its matmul: nothing
        # of the step's matmul can be shared, so Keras' loop it is.
        return self.cell.reset_after and super()._can_hoist(mask)

    def _biases(self):
        cell = self.cell
        if cell.use_bias:
            return cell.bias[0], (cell.bias[1],)
        return None, (tf.zeros([3 * cell.units], self.compute_dtype),)


PROJECTED_LAYERS = {"simplernn": ProjectedSimpleRNN, "lstm": ProjectedLSTM, "gru": ProjectedGRU}
