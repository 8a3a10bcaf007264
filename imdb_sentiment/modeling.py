"""The classifier, for any recurrent cell type: one function, with the cell as data."""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

import fast_rnn.layers
import fast_rnn.optimizers
from imdb_sentiment.errors import StageError
from imdb_sentiment.params import ModelParams

# The recurrent layer of each cell type, per ``train.recurrent_implementation``: the same
# function with the same weights, computed by this project's C++ kernels or by Keras' own loop.
RECURRENT_LAYERS = {
    "fused": fast_rnn.layers.LAYERS,
    "keras": {"simplernn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU},
}
# Adam per ``train.recurrent_implementation``: the same update bit for bit, fast_rnn's applying
# the embedding's sparse gradient in one C++ op instead of Keras' dozen passes over the table.
ADAM = {"fused": fast_rnn.optimizers.Adam, "keras": keras.optimizers.Adam}


def build_model(params: ModelParams, vocabulary_size: int, sequence_length: int) -> keras.Model:
    """The reference notebook's architecture: Embedding, stacked recurrent layers, Dense,
    Dropout, ReLU, and a sigmoid output giving the probability that a review is positive.

    Args:
        params: The model's hyperparameters; what shapes the network: ``cell``,
            ``embedding_dim``, ``layers`` (stacked recurrent layers), ``units``, ``dropout`` (on
            the inputs of each recurrent layer), ``dense_units``, ``dense_dropout``,
            ``recurrent_implementation`` (``fused``: ``fast_rnn``'s layers, each layer's time
            loop in one C++ op; ``keras``: Keras' own layers, cuDNN on a GPU),
            ``bidirectional`` (each recurrent layer reads the review both ways, ``units`` per
            direction, so the state the classifier sees has read the review's beginning as
            recently as its end) and ``pooling`` (what the dense layers read of the last
            recurrent layer: ``last``, its final state, as the notebook did, or ``max``, each
            unit's largest output over all tokens, so that a telling phrase counts wherever it
            is in a long review).
        vocabulary_size: Token ids run from 0 to ``vocabulary_size - 1``.
        sequence_length: Tokens per (padded) review.

    Returns:
        An uncompiled model mapping ``[batch, sequence_length]`` int ids to ``[batch, 1]``.
    """
    # params.py has checked every value; no second check here.
    cell, pooling, recurrent_layers = params.cell, params.pooling, params.layers
    recurrent_layer = RECURRENT_LAYERS[params.recurrent_implementation][cell]
    token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocabulary_size, params.embedding_dim, name="embedding")(token_ids)
    for index in range(recurrent_layers):
        # Every layer but the last passes its whole sequence on to the next one.
        layer = recurrent_layer(
            params.units,
            dropout=params.dropout,
            return_sequences=index < recurrent_layers - 1 or pooling == "max",
            name=f"{cell}_{index + 1}",
        )
        if params.bidirectional:
            layer = layers.Bidirectional(layer, name=f"bidirectional_{cell}_{index + 1}")
        x = layer(x)
    if pooling == "max":
        x = layers.GlobalMaxPooling1D(name="max_over_tokens")(x)
    x = layers.Dense(params.dense_units, name="dense")(x)
    x = layers.Dropout(params.dense_dropout, name="dense_dropout")(x)
    x = layers.ReLU(name="relu")(x)
    probability = layers.Dense(1, activation="sigmoid", name="positive_probability")(x)
    return keras.Model(token_ids, probability, name=f"{cell}_classifier")


def compile_model(
    model: keras.Model,
    learning_rate: float,
    steps_per_execution: int = 1,
    recurrent_implementation: str = "fused",
) -> keras.Model:
    """Adam and binary cross-entropy, reporting accuracy, as in the reference notebook; the Adam
    of ``recurrent_implementation`` (``ADAM``), the same numbers either way."""
    model.compile(
        optimizer=ADAM[recurrent_implementation](learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


class ModelFileError(StageError):
    """A saved model cannot be loaded; the message names the file and how to get it back."""


def load_model(path: Path) -> keras.Model:
    """Loads a saved classifier, to predict one batch per step; importing this module
    registered its recurrent layers.

    Raises:
        ModelFileError: The file is missing, was saved by an earlier layout of this project, or
            is corrupt; the message says which, and the fix.
    """
    if not Path(path).is_file():
        raise ModelFileError(f"{path} is missing: run `dvc repro` (or `dvc checkout`) first")
    try:
        model = keras.models.load_model(path)
    except Exception as error:
        if "Could not locate class 'ProjectedStack'" in str(error):
            # Models saved before fast_rnn became a package kept their recurrent layers in one
            # ProjectedStack layer; a model in the workspace is retrained by the next `dvc
            # repro` anyway, and a logged MLflow model carries the code that loads it.
            raise ModelFileError(
                f"{path} was saved by an earlier layout of this project (its recurrent layers "
                "in one ProjectedStack layer), which this code does not load: run `dvc repro` "
                "to train it again, or load it with the commit that trained it"
            ) from None
        raise ModelFileError(
            f"{path} cannot be loaded, it is corrupt or truncated ({type(error).__name__}): "
            "restore it with `dvc checkout`, or train it again with `dvc repro`"
        ) from None
    # A loaded classifier predicts. With the steps_per_execution it was trained with (16),
    # Keras' predict traces a graph of that many steps unrolled, about 1.5 s of each
    # evaluation here, and computes the last bit of half the probabilities differently from a
    # single call of the model. One step per call traces one step, and gives each review the
    # probability that the served model's compiled call gives it.
    model.steps_per_execution = 1
    return model
