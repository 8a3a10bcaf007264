"""The classifier, for any recurrent cell type: one function, with the cell as data."""

from __future__ import annotations

import keras
from keras import layers

import fast_rnn.layers

# Registers how models saved before fast_rnn was a package of its own stored their layers.
from imdb_sentiment import legacy  # noqa: F401

# The recurrent layer of each cell type, per ``train.recurrent_implementation``: the same
# function with the same weights, computed by this project's C++ kernels or by Keras' own loop.
RECURRENT_LAYERS = {
    "fused": fast_rnn.layers.LAYERS,
    "keras": {"simplernn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU},
}


def build_model(
    cell: str,
    vocabulary_size: int,
    sequence_length: int,
    embedding_dim: int,
    recurrent_layers: int,
    units: int,
    dropout: float,
    dense_units: int,
    dense_dropout: float,
    recurrent_implementation: str = "fused",
    bidirectional: bool = False,
    pooling: str = "last",
) -> keras.Model:
    """The seed's architecture: Embedding, stacked recurrent layers, Dense, Dropout, ReLU, and a
    sigmoid output giving the probability that a review is positive.

    Args:
        cell: ``simplernn``, ``lstm`` or ``gru``.
        vocabulary_size: Token ids run from 0 to ``vocabulary_size - 1``.
        sequence_length: Tokens per (padded) review.
        recurrent_layers: How many recurrent layers are stacked.
        dropout: Dropout on the inputs of each recurrent layer.
        recurrent_implementation: ``fused`` (``fast_rnn``'s layers, each layer's time loop in
            one C++ op) or ``keras`` (Keras' own layers, cuDNN on a GPU).
        bidirectional: Each recurrent layer reads the review both ways (Keras'
            ``Bidirectional``, ``units`` per direction, outputs concatenated), so the state the
            classifier sees has read the review's beginning as recently as its end.
        pooling: What the dense layers read of the last recurrent layer: ``last``, its final
            state (the seed's), or ``max``, each unit's largest output over all tokens, so
            that a telling phrase counts wherever it is in a long review.

    Returns:
        An uncompiled model mapping ``[batch, sequence_length]`` int ids to ``[batch, 1]``.
    """
    if recurrent_implementation not in RECURRENT_LAYERS:
        raise ValueError(
            f"unknown recurrent_implementation {recurrent_implementation!r}; "
            f"choose one of {', '.join(RECURRENT_LAYERS)}"
        )
    recurrent_layer = RECURRENT_LAYERS[recurrent_implementation].get(cell)
    if recurrent_layer is None:
        raise ValueError(
            f"unknown cell {cell!r}; choose one of {', '.join(fast_rnn.layers.LAYERS)}"
        )
    if pooling not in ("last", "max"):
        raise ValueError(f"unknown pooling {pooling!r}; choose last or max")
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocabulary_size, embedding_dim, name="embedding")(token_ids)
    for index in range(recurrent_layers):
        # Every layer but the last passes its whole sequence on to the next one.
        layer = recurrent_layer(
            units,
            dropout=dropout,
            return_sequences=index < recurrent_layers - 1 or pooling == "max",
            name=f"{cell}_{index + 1}",
        )
        if bidirectional:
            layer = layers.Bidirectional(layer, name=f"bidirectional_{cell}_{index + 1}")
        x = layer(x)
    if pooling == "max":
        x = layers.GlobalMaxPooling1D(name="max_over_tokens")(x)
    x = layers.Dense(dense_units, name="dense")(x)
    x = layers.Dropout(dense_dropout, name="dense_dropout")(x)
    x = layers.ReLU(name="relu")(x)
    probability = layers.Dense(1, activation="sigmoid", name="positive_probability")(x)
    return keras.Model(token_ids, probability, name=f"{cell}_classifier")


def compile_model(
    model: keras.Model, learning_rate: float, steps_per_execution: int = 1
) -> keras.Model:
    """Adam and binary cross-entropy, reporting accuracy, as in the seed."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def load_model(path) -> keras.Model:
    """Loads a saved classifier; importing this module registered its recurrent layers."""
    return keras.models.load_model(path)
