"""Loading models saved before the recurrent layers became the ``fast_rnn`` package.

Those models kept their stacked recurrent layers inside one ``ProjectedStack`` layer (registered
as ``imdb_rnn>ProjectedStack``) of ``Projected<Cell>`` sub-layers. Keras finds saved weights by
the snake-cased class names of the layers that hold them, so the classes here keep those names;
they compute with ``fast_rnn``'s layers, the same function with the same weights.
"""

from __future__ import annotations

import keras

import fast_rnn.layers


class ProjectedSimpleRNN(fast_rnn.layers.SimpleRNN):
    pass


class ProjectedLSTM(fast_rnn.layers.LSTM):
    pass


class ProjectedGRU(fast_rnn.layers.GRU):
    pass


_SUB_LAYERS = {"simplernn": ProjectedSimpleRNN, "lstm": ProjectedLSTM, "gru": ProjectedGRU}


@keras.saving.register_keras_serializable(package="imdb_rnn")
class ProjectedStack(keras.layers.Layer):
    """``layers`` stacked recurrent layers of one cell type, as such a model saved them."""

    def __init__(self, cell, units, layers, dropout=0.0, return_sequences=False, **kwargs):
        kwargs.pop("fused", None)  # Every way it named ran the same function.
        super().__init__(**kwargs)
        self.saved_config = {
            "cell": cell,
            "units": units,
            "layers": layers,
            "dropout": dropout,
            "return_sequences": return_sequences,
        }
        # The attribute's name, too, is part of where the weights were saved.
        self.recurrent_layers = [
            _SUB_LAYERS[cell](
                units,
                dropout=dropout,
                return_sequences=return_sequences or index < layers - 1,
                name=f"{cell}_{index + 1}",
            )
            for index in range(layers)
        ]

    def build(self, input_shape):
        for layer in self.recurrent_layers:
            layer.build(input_shape)
            input_shape = layer.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        for layer in self.recurrent_layers:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    def call(self, inputs, training=False, mask=None):
        for layer in self.recurrent_layers:
            inputs = layer(inputs, training=training)
        return inputs

    def get_config(self):
        return {**super().get_config(), **self.saved_config}
