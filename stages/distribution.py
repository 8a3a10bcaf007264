"""Which ``tf.distribute`` strategy trains the model: the ``train.distribution`` param.

- ``none``: TensorFlow's default strategy, one device.
- ``mirrored``: one replica per local device (several GPUs, or the CPU alone), gradients
  all-reduced; ``batch_size`` is the global batch, split across replicas.

The same training code runs under each: the model is built and compiled in the strategy's scope.
Multi-worker training (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``) is not offered: Keras
3.15's ``fit`` fails under it (keras-team/keras#20585; see README, Training on more devices).
"""

from __future__ import annotations

from typing import Literal

Distribution = Literal["none", "mirrored"]


def make_strategy(distribution: Distribution):
    """The ``tf.distribute`` strategy for ``distribution``."""
    import tensorflow as tf

    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
