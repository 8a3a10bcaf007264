"""Keras' Adam with the update of a sparse gradient (an embedding's) in one C++ op.

    from fast_rnn.optimizers import Adam  # a drop-in for keras.optimizers.Adam

Keras 3's Adam turns an embedding's sparse gradient (``tf.IndexedSlices``, the rows of one
batch) into two dense tables, then makes about ten passes over the table and its moments. The op
(``sparse_adam.cc``) sums the rows once and makes one pass, and its results are Keras' bit for
bit (``tests/fast_rnn/test_optimizers.py``). Dense gradients, a ``tf.distribute`` strategy other
than the default, ``amsgrad``, a dtype other than float32 or a machine without the kernels get
Keras' own update.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from fast_rnn.ops import kernels_or_none


@keras.saving.register_keras_serializable(package="fast_rnn")
class Adam(keras.optimizers.Adam):
    """``keras.optimizers.Adam``, with the same arguments and results."""

    def update_step(self, gradient, variable, learning_rate):
        kernels = kernels_or_none() if self._takes_sparse_update(gradient, variable) else None
        if kernels is None:
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        # alpha as Keras computes it, op for op, so that it is the same float.
        lr = ops.cast(learning_rate, variable.dtype)
        local_step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), local_step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        kernels.fast_rnn_sparse_adam(
            variable=variable.handle,
            momentum=self._momentums[index].value.handle,
            velocity=self._velocities[index].value.handle,
            values=gradient.values,
            indices=gradient.indices,
            alpha=alpha,
            # Keras multiplies by these Python floats, which become float32 tensors.
            one_minus_beta_1=tf.constant(1 - self.beta_1, tf.float32),
            one_minus_beta_2=tf.constant(1 - self.beta_2, tf.float32),
            epsilon=tf.constant(self.epsilon, tf.float32),
        )

    def _takes_sparse_update(self, gradient, variable) -> bool:
        return (
            isinstance(gradient, tf.IndexedSlices)
            and gradient.values.dtype == tf.float32
            and variable.dtype == tf.float32
            and isinstance(variable, tf.Variable)
            and not self.amsgrad
            and not tf.distribute.has_strategy()
        )
