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
  the kernels come from one large matmul each after it;
- with ``fused=True`` (the pipeline's default) the loop itself, forward and backward, is one
  C++ op per layer (``stages/kernels/recurrent_sequences.cc``, built by ``stages/native.py``):
  no TensorFlow op dispatch per step, and the batch split over the cores;
- otherwise the loop is TensorFlow ops, and stacked layers (``ProjectedStack``) run in one loop
  as a wavefront: iteration ``s`` computes step ``s`` of the first layer and step ``s - 1`` of
  the second, which do not depend on each other, so the two cores run them side by side (10%
  less time for two layers, forward and backward, than one loop per layer; README,
  Performance).

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

from stages import native


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


def _recurrent_gradients(weights, initial_state, states, d_recurrent):
    """The gradients of a layer's recurrent kernel (and recurrent bias, where it has one) from
    its states and the gradient of its recurrent part ``h_{t-1} @ R (+ b_R)`` at every step."""
    gradients = {
        "recurrent_kernel": _kernel_gradient(_previous(initial_state, states), d_recurrent)
    }
    if "recurrent_bias" in weights:
        gradients["recurrent_bias"] = tf.reduce_sum(d_recurrent, axis=[0, 1])
    return gradients


# A gate pre-activation far beyond float32's saturation: sigmoid of it is exactly 0 or 1.
_SATURATED = 1e30


class _StatesKeptFirst:
    """For cells whose loop keeps their (only) state first: the outputs are what it kept."""

    @staticmethod
    def outputs(kept):
        return kept[0]

    @staticmethod
    def final_states(kept):
        return (kept[0][-1],)


class _SimpleRNNMath(_StatesKeptFirst):
    """``h = tanh(x + h @ R)``. The loop keeps the states."""

    gates = 1
    kept = 1  # sequences the loop keeps per layer
    # Whether the input part and the recurrent part of a step enter its gates apart (and so
    # have different gradients), rather than as one sum.
    input_apart = False
    # Before a layer's first step in a wavefront (see ``recurrent_stack``), its input row makes
    # the step return exactly the zero state: tanh(0) = 0.
    hold = (0.0,)

    @staticmethod
    def forward(x, state, recurrent_kernel, recurrent_bias):
        (h,) = state
        h = tf.tanh(x + tf.matmul(h, recurrent_kernel))
        return (h,), (h,)

    @staticmethod
    def backward_coefficients(inputs, kept, initial_state):
        (hs,) = kept
        return (1.0 - hs * hs,)

    @staticmethod
    def backward(d_h, carry, coefficients, transposed_kernel):
        (tanh_derivative,) = coefficients
        d_z = d_h * tanh_derivative
        return d_z, d_z, tf.matmul(d_z, transposed_kernel), ()

    @staticmethod
    def fused_forward(kernels, x, initial_states, weights):
        hs = kernels.imdb_simple_rnn_sequence(x, initial_states[0], weights["recurrent_kernel"])
        return hs, (), (hs[-1],)

    @staticmethod
    def fused_backward(kernels, d_outputs, d_final_states, x, hs, kept, initial_states, weights):
        d_z, d_h0 = kernels.imdb_simple_rnn_sequence_grad(
            d_outputs, d_final_states[0], hs, weights["recurrent_kernel"]
        )
        return d_z, d_z, (d_h0,)


class _LSTMMath:
    """Sigmoid gates and tanh, gates in Keras' order i, f, c, o. The loop keeps the carries and
    the pre-activations; the hidden states follow from them, all at once, after the loop."""

    gates = 4
    kept = 2
    input_apart = False
    # Input gate shut: the carry stays f * 0 = 0, and so does h = o * tanh(0).
    hold = (-_SATURATED, 0.0, 0.0, 0.0)

    @staticmethod
    def forward(x, state, recurrent_kernel, recurrent_bias):
        h, c = state
        z = x + tf.matmul(h, recurrent_kernel)
        i, f, g, o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        return (h, c), (c, z)

    @staticmethod
    def outputs(kept):
        cs, zs = kept
        return tf.sigmoid(tf.split(zs, 4, axis=-1)[3]) * tf.tanh(cs)

    @classmethod
    def final_states(cls, kept):
        cs, zs = kept
        return cls.outputs((cs[-1:], zs[-1:]))[0], cs[-1]

    @staticmethod
    def backward_coefficients(inputs, kept, initial_state):
        cs, zs = kept
        # Everything that does not depend on the incoming gradient, for all steps at once.
        i, f, g, o = tf.split(zs, 4, axis=-1)
        i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
        tanh_c = tf.tanh(cs)
        h_to_c = o * (1.0 - tanh_c * tanh_c)
        # d_z = [d_c, d_c, d_c, d_h] * gate_derivatives, per step.
        gate_derivatives = tf.concat(
            [
                g * i * (1.0 - i),
                _previous(initial_state[1], cs) * f * (1.0 - f),
                i * (1.0 - g * g),
                tanh_c * o * (1.0 - o),
            ],
            axis=-1,
        )
        return h_to_c, gate_derivatives, f

    @staticmethod
    def backward(d_h, carry, coefficients, transposed_kernel):
        h_to_c, gate_derivatives, f = coefficients
        (d_c_next,) = carry
        d_c = d_c_next + d_h * h_to_c
        d_z = tf.concat([d_c, d_c, d_c, d_h], axis=-1) * gate_derivatives
        return d_z, d_z, tf.matmul(d_z, transposed_kernel), (d_c * f,)

    @staticmethod
    def fused_forward(kernels, x, initial_states, weights):
        hs, cs, zs = kernels.imdb_lstm_sequence(x, *initial_states, weights["recurrent_kernel"])
        return hs, (cs, zs), (hs[-1], cs[-1])

    @staticmethod
    def fused_backward(kernels, d_outputs, d_final_states, x, hs, kept, initial_states, weights):
        d_z, d_h0, d_c0 = kernels.imdb_lstm_sequence_grad(
            d_outputs, *d_final_states, *kept, initial_states[1], weights["recurrent_kernel"]
        )
        return d_z, d_z, (d_h0, d_c0)


class _GRUMath(_StatesKeptFirst):
    """Keras' GRU with ``reset_after=True`` (its default): sigmoid gates, tanh, gates in
    Keras' order z, r, h. The recurrent part (``h @ R + recurrent bias``) is kept apart from the
    input part ``x`` because the reset gate scales only the former. The loop keeps the states
    and the recurrent parts; the gates are recomputed, all at once, for the backward pass."""

    gates = 3
    kept = 2
    input_apart = True
    # Update gate open all the way: h = candidate + 1 * (0 - candidate) = 0.
    hold = (_SATURATED, 0.0, 0.0)

    @staticmethod
    def _gates(x, m):
        # Static where it is known (always, in a model): a dynamic size costs ops every step.
        units = x.shape[-1] // 3 if x.shape[-1] is not None else tf.shape(x)[-1] // 3
        update_reset = tf.sigmoid(x[..., : 2 * units] + m[..., : 2 * units])
        reset = update_reset[..., units:]
        candidate = tf.tanh(x[..., 2 * units :] + reset * m[..., 2 * units :])
        return update_reset[..., :units], reset, candidate

    @classmethod
    def forward(cls, x, state, recurrent_kernel, recurrent_bias):
        (h,) = state
        m = tf.matmul(h, recurrent_kernel) + recurrent_bias
        update, _, candidate = cls._gates(x, m)
        h = candidate + update * (h - candidate)
        return (h,), (h, m)

    @classmethod
    def backward_coefficients(cls, inputs, kept, initial_state):
        hs, ms = kept
        update, reset, candidates = cls._gates(inputs, ms)
        recurrent_candidates = ms[..., 2 * tf.shape(hs)[-1] :]
        # d(pre-activation) = d_h * coefficient, per gate; none depends on the gradient.
        k_update = (_previous(initial_state[0], hs) - candidates) * update * (1.0 - update)
        k_candidate = (1.0 - update) * (1.0 - candidates * candidates)
        k_reset = k_candidate * recurrent_candidates * reset * (1.0 - reset)
        recurrent_coefficients = tf.concat([k_update, k_reset, k_candidate * reset], axis=-1)
        input_coefficients = tf.concat([k_update, k_reset, k_candidate], axis=-1)
        return recurrent_coefficients, input_coefficients, update

    @staticmethod
    def backward(d_h, carry, coefficients, transposed_kernel):
        recurrent_coefficients, input_coefficients, update = coefficients
        d_h3 = tf.concat([d_h, d_h, d_h], axis=-1)
        d_m = d_h3 * recurrent_coefficients
        d_h_previous = d_h * update + tf.matmul(d_m, transposed_kernel)
        return d_h3 * input_coefficients, d_m, d_h_previous, ()

    @staticmethod
    def fused_forward(kernels, x, initial_states, weights):
        hs, ms = kernels.imdb_gru_sequence(
            x, initial_states[0], weights["recurrent_kernel"], weights["recurrent_bias"]
        )
        return hs, (ms,), (hs[-1],)

    @staticmethod
    def fused_backward(kernels, d_outputs, d_final_states, x, hs, kept, initial_states, weights):
        (ms,) = kept
        d_x, d_m, d_h0 = kernels.imdb_gru_sequence_grad(
            d_outputs, d_final_states[0], x, hs, ms, initial_states[0], weights["recurrent_kernel"]
        )
        return d_x, d_m, (d_h0,)


def recurrent_stack(math, first_inputs, layers, masks, initial_states):
    """Stacked recurrent layers over time-major sequences, as one loop with a hand-written
    gradient.

    With several layers the loop runs them as a wavefront: its iteration ``s`` computes step
    ``s`` of the first layer and step ``s - l`` of layer ``l`` (from 0), each from what the
    previous iteration left. The layers' steps in one iteration do not depend on each other, so
    TensorFlow runs them side by side on the CPU's cores, and the loop turns ``T + L - 1`` times
    instead of ``L * T``. Layer ``l`` starts at iteration ``l``: before that its input rows are
    ``math.hold``, which keeps its state exactly zero, so layers above the first must start
    from zero states.

    Args:
        math: ``_SimpleRNNMath``, ``_LSTMMath`` or ``_GRUMath``.
        first_inputs: The first layer's input part for every iteration, ``[T + L - 1, B, G]``
            (``inputs @ kernel + bias``; the rows past ``T`` are never used).
        layers: Per layer, a dict: ``recurrent_kernel`` ``[U, G]``, ``recurrent_bias`` ``[G]``
            (GRU), and for every layer after the first ``kernel`` ``[U_below, G]`` and
            ``input_rows`` ``[T + L - 1, G]`` (its input bias per iteration, or the hold).
        masks: Per layer after the first, the dropout mask on its inputs ``[B, U_below]``, or
            None. Masks get no gradient.
        initial_states: Per layer, a tuple of states ``[B, U]``.

    Returns:
        The top layer's outputs ``[T, B, U]`` and its final states.
    """
    structure = (first_inputs, layers, initial_states)
    count = len(layers)
    # Layers above the first compute their input part in the loop; where it enters the gates
    # apart (GRU) the loop keeps it for the backward pass (otherwise it is inside what the
    # loop keeps already).
    keeps_inputs = [index > 0 and math.input_apart for index in range(count)]

    @tf.custom_gradient
    def stack(*flat):
        first_inputs, layers, initial_states = tf.nest.pack_sequence_as(structure, flat)
        iterations = tf.shape(first_inputs)[0]

        def below(index, h_below):
            mask = masks[index - 1]
            return h_below if mask is None else h_below * mask

        def step(t, states, kept):
            new_states, new_kept = [], []
            for index, layer in enumerate(layers):
                if index == 0:
                    x = first_inputs[t]
                else:
                    # The layer below's output of the previous iteration: one step behind.
                    h_below = below(index, states[index - 1][0])
                    x = layer["input_rows"][t] + tf.matmul(h_below, layer["kernel"])
                state, keep = math.forward(
                    x, states[index], layer["recurrent_kernel"], layer.get("recurrent_bias")
                )
                if keeps_inputs[index]:
                    keep = (*keep, x)
                new_states.append(state)
                new_kept.append(
                    tuple(ta.write(t, k) for ta, k in zip(kept[index], keep, strict=True))
                )
            return t + 1, new_states, new_kept

        kept = [
            tuple(_sequence(iterations, first_inputs) for _ in range(math.kept + keeps_inputs[i]))
            for i in range(count)
        ]
        _, kept = _forward_loop(step, iterations, ([tuple(s) for s in initial_states], kept))
        kept = [tuple(ta.stack() for ta in layer_kept) for layer_kept in kept]
        # Layer l's step t ran in iteration t + l.
        top = count - 1
        top_kept = tuple(k[top:] for k in kept[top])
        outputs, final_states = math.outputs(top_kept), math.final_states(top_kept)

        def gradient(d_outputs, *d_final_states):
            d_outputs = _or_zeros(d_outputs, outputs)
            d_final_states = [
                _or_zeros(d, s) for d, s in zip(d_final_states, final_states, strict=True)
            ]
            # The top layer's outputs start at iteration `top`; nothing depends on earlier ones.
            d_top = tf.pad(d_outputs, [[top, 0], [0, 0], [0, 0]])
            hs = [math.outputs(k[: math.kept]) for k in kept]
            # A GRU's backward pass needs each layer's input part: given for the first layer,
            # kept by the loop for the others.
            inputs = [
                first_inputs,
                *(k[-1] if keeps_inputs[i] else None for i, k in enumerate(kept) if i),
            ]
            coefficients = [
                math.backward_coefficients(inputs[i], kept[i][: math.kept], initial_states[i])
                for i in range(count)
            ]
            transposed = [tf.transpose(layer["recurrent_kernel"]) for layer in layers]
            transposed_inputs = [None] + [tf.transpose(layer["kernel"]) for layer in layers[1:]]

            def back(t, d_hs, carries, d_xs, d_ms):
                new_d_hs, new_carries, new_d_xs, new_d_ms = [], [], [], []
                d_x_per_layer = []
                for index in range(count):
                    d_h = d_hs[index] + d_top[t] if index == top else d_hs[index]
                    d_x, d_m, d_h_previous, carry = math.backward(
                        d_h,
                        carries[index],
                        tuple(c[t] for c in coefficients[index]),
                        transposed[index],
                    )
                    d_x_per_layer.append(d_x)
                    new_d_hs.append(d_h_previous)
                    new_carries.append(carry)
                    new_d_xs.append(d_xs[index].write(t, d_x))
                    if d_ms:
                        new_d_ms.append(d_ms[index].write(t, d_m))
                for index in range(1, count):
                    # Layer `index` read the layer below's previous output through its kernel.
                    d_below = tf.matmul(d_x_per_layer[index], transposed_inputs[index])
                    new_d_hs[index - 1] += below(index, d_below)
                return t - 1, new_d_hs, new_carries, new_d_xs, new_d_ms

            zero_states = [tf.zeros_like(state[0]) for state in initial_states]
            d_hs = [*zero_states[:top], d_final_states[0]]
            carries = [tuple(tf.zeros_like(s) for s in state[1:]) for state in initial_states]
            carries[top] = tuple(d_final_states[1:])
            d_xs = [_sequence(iterations, first_inputs) for _ in range(count)]
            # Apart, the gradients of the recurrent and the input parts differ; otherwise both
            # are the pre-activations' gradient.
            d_ms = (
                [_sequence(iterations, first_inputs) for _ in range(count)]
                if math.input_apart
                else []
            )
            d_hs, carries, d_xs, d_ms = _backward_loop(
                back, iterations, (d_hs, carries, d_xs, d_ms)
            )
            d_xs = [ta.stack() for ta in d_xs]
            d_ms = [ta.stack() for ta in d_ms] if math.input_apart else d_xs
            d_layers = []
            for index, layer in enumerate(layers):
                d_layer = _recurrent_gradients(
                    layer, initial_states[index][0], hs[index], d_ms[index]
                )
                if index:
                    previous_below = below(
                        index, _previous(initial_states[index - 1][0], hs[index - 1])
                    )
                    d_layer["kernel"] = _kernel_gradient(previous_below, d_xs[index])
                    d_layer["input_rows"] = tf.reduce_sum(d_xs[index], axis=1)
                d_layers.append(d_layer)
            d_initial = [(d_hs[i], *carries[i]) for i in range(count)]
            return tf.nest.flatten((d_xs[0], d_layers, d_initial))

        return (outputs, *final_states), gradient

    return stack(*tf.nest.flatten(structure))


def fused_sequence(math, kernels, inputs, weights, initial_states):
    """One recurrent layer over time-major sequences, every step in one C++ op
    (``stages/kernels/recurrent_sequences.cc``) and its gradient in another.

    Args:
        math: ``_SimpleRNNMath``, ``_LSTMMath`` or ``_GRUMath``.
        kernels: The loaded ops (``native.recurrent_ops()``).
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
        outputs, kept, final_states = math.fused_forward(kernels, inputs, initial_states, weights)

        def gradient(d_outputs, *d_final_states):
            d_inputs, d_recurrent, d_initial = math.fused_backward(
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


class _HoistedInputProjection:
    """Mixin for a Keras RNN layer: ``inputs @ kernel (+ bias)`` before the loop, and a loop
    with a hand-written gradient: the C++ kernels' with ``fused=True``, otherwise
    ``recurrent_stack``'s in TensorFlow."""

    def __init__(self, *args, fused=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fused = fused

    def get_config(self):
        return {**super().get_config(), "fused": self.fused}

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

    def _input_bias(self):
        """The bias added to ``inputs @ kernel``, or None."""
        return tf.convert_to_tensor(self.cell.bias) if self.cell.use_bias else None

    def _loop_weights(self) -> dict:
        """What ``recurrent_stack`` takes of this layer besides its input part."""
        return {"recurrent_kernel": tf.convert_to_tensor(self.cell.recurrent_kernel)}

    def _input_dropout_mask(self, step_input, training):
        cell = self.cell
        if training and 0.0 < cell.dropout < 1.0:
            # Keras' own loop uses one mask per sequence for every time step (RNN.call prepares
            # it, cached on the cell until the call ends).
            return cell.get_dropout_mask(step_input)
        return None

    def _time_major_projection(self, sequences, training):
        mask = self._input_dropout_mask(sequences[:, 0, :], training)
        if mask is not None:
            sequences = sequences * ops.expand_dims(mask, 1)
        projected = ops.matmul(tf.transpose(sequences, [1, 0, 2]), self.cell.kernel)
        input_bias = self._input_bias()
        return projected if input_bias is None else projected + input_bias

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._can_hoist(mask):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        inputs = self._time_major_projection(sequences, training)
        # The kernels are float32 only, and a model trained with them may be loaded where they
        # cannot be built (a serving host without a compiler): the TensorFlow loop computes the
        # same function. Training checks for the kernels before it starts (stages/train.py).
        kernels = (
            native.recurrent_ops_or_none() if self.fused and inputs.dtype == tf.float32 else None
        )
        if kernels is not None:
            hs, *states = fused_sequence(
                self._math, kernels, inputs, self._loop_weights(), tuple(initial_state)
            )
        else:
            hs, *states = recurrent_stack(
                self._math,
                inputs,
                [self._loop_weights()],
                masks=[],
                initial_states=[tuple(initial_state)],
            )
        # What Keras' inner_loop returns: last output, outputs, final states.
        outputs = tf.transpose(hs, [1, 0, 2]) if self.return_sequences else states[0]
        return states[0], outputs, states


@keras.saving.register_keras_serializable(package="imdb_rnn")
class ProjectedSimpleRNN(_HoistedInputProjection, keras.layers.SimpleRNN):
    """``keras.layers.SimpleRNN``, with the input projection before the time loop."""

    _math = _SimpleRNNMath


@keras.saving.register_keras_serializable(package="imdb_rnn")
class ProjectedLSTM(_HoistedInputProjection, keras.layers.LSTM):
    """``keras.layers.LSTM``, with the input projection before the time loop."""

    _math = _LSTMMath


@keras.saving.register_keras_serializable(package="imdb_rnn")
class ProjectedGRU(_HoistedInputProjection, keras.layers.GRU):
    """``keras.layers.GRU``, with the input projection before the time loop."""

    _math = _GRUMath

    def _can_hoist(self, mask) -> bool:
        # With reset_after=False the reset gate scales the state before its matmul: nothing
        # of the step's matmul can be shared, so Keras' loop it is.
        return self.cell.reset_after and super()._can_hoist(mask)

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


PROJECTED_LAYERS = {"simplernn": ProjectedSimpleRNN, "lstm": ProjectedLSTM, "gru": ProjectedGRU}


@keras.saving.register_keras_serializable(package="imdb_rnn")
class ProjectedStack(keras.layers.Layer):
    """``layers`` stacked ``Projected*`` layers of one cell type (each but the last returning
    its sequences).

    With ``fused=True`` the sub-layers run one after the other, each with the C++ kernels (each
    kernel spreads the batch over the cores already). Otherwise they run together as one
    wavefront loop (``recurrent_stack``). The weights are the sub-layers' own (named
    ``<cell>_1``, ``<cell>_2``, ...), so the function is exactly that of the same Keras layers
    stacked. Where a sub-layer cannot take the fast path (see ``_HoistedInputProjection``), or
    with an input mask, the sub-layers run one after the other, with Keras' loop.
    """

    def __init__(
        self, cell, units, layers, dropout=0.0, return_sequences=False, fused=False, **kwargs
    ):
        super().__init__(**kwargs)
        if cell not in PROJECTED_LAYERS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(PROJECTED_LAYERS)}")
        self.cell_type, self.units, self.layer_count = cell, units, layers
        self.dropout, self.return_sequences, self.fused = dropout, return_sequences, fused
        self.recurrent_layers = [
            PROJECTED_LAYERS[cell](
                units,
                dropout=dropout,
                return_sequences=return_sequences or index < layers - 1,
                fused=fused,
                name=f"{cell}_{index + 1}",
            )
            for index in range(layers)
        ]

    def build(self, input_shape):
        shape = input_shape
        for layer in self.recurrent_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def compute_output_shape(self, input_shape):
        for layer in self.recurrent_layers:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    def call(self, inputs, training=False, mask=None):
        layers = self.recurrent_layers
        if (
            self.fused
            or mask is not None
            or len(layers) < 2
            or not all(layer._can_hoist(None) for layer in layers)
        ):
            for layer in layers:
                inputs = layer(inputs, training=training, mask=mask)
                mask = None  # Keras' layers pass a mask on only with their sequences.
            return inputs
        try:
            return self._wavefront(inputs, training)
        finally:
            for layer in layers:
                layer.cell.reset_dropout_mask()

    def _wavefront(self, inputs, training):
        first, *above = self.recurrent_layers
        math = first._math
        count = len(self.recurrent_layers)
        batch = tf.shape(inputs)[0]
        dtype = first.compute_dtype
        # The first layer's input part of every iteration; the last count - 1 are never used.
        first_inputs = tf.pad(
            first._time_major_projection(inputs, training), [[0, count - 1], [0, 0], [0, 0]]
        )
        iteration = tf.range(tf.shape(first_inputs)[0])
        loop_weights, masks, units_below = [first._loop_weights()], [], first.cell.units
        for index, layer in enumerate(above, start=1):
            cell = layer.cell
            gate_size = math.gates * cell.units
            bias = layer._input_bias()
            bias = tf.zeros([gate_size], dtype) if bias is None else bias
            hold = tf.repeat(tf.constant(math.hold, dtype), cell.units)
            loop_weights.append(
                {
                    **layer._loop_weights(),
                    "kernel": tf.convert_to_tensor(cell.kernel),
                    "input_rows": tf.where((iteration >= index)[:, None], bias, hold),
                }
            )
            masks.append(layer._input_dropout_mask(tf.zeros([batch, units_below], dtype), training))
            units_below = cell.units
        initial_states = [
            tuple(
                tf.zeros([batch, layer.cell.units], dtype)
                for _ in tf.nest.flatten(layer.cell.state_size)
            )
            for layer in self.recurrent_layers
        ]
        hs, *states = recurrent_stack(math, first_inputs, loop_weights, masks, initial_states)
        return tf.transpose(hs, [1, 0, 2]) if self.return_sequences else states[0]

    def get_config(self):
        return {
            **super().get_config(),
            "cell": self.cell_type,
            "units": self.units,
            "layers": self.layer_count,
            "dropout": self.dropout,
            "return_sequences": self.return_sequences,
            "fused": self.fused,
        }
