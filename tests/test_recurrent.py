"""The hoisted-projection layers compute what Keras' own layers compute, with the same weights:
outputs, final states and every gradient, with and without dropout."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from stages.recurrent import PROJECTED_LAYERS  # noqa: E402

KERAS_LAYERS = {
    "simplernn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}
SEQUENCES = np.random.default_rng(0).normal(size=(6, 9, 5)).astype("float32")


def _pair(cell, seed=0, **options):
    """A Keras layer and ours with the same weights and the same dropout seed."""
    keras.utils.set_random_seed(seed)
    theirs = KERAS_LAYERS[cell](4, **options)
    theirs.build(SEQUENCES.shape)
    keras.utils.set_random_seed(seed)
    ours = PROJECTED_LAYERS[cell](4, **options)
    ours.build(SEQUENCES.shape)
    # Random, not the initializers' zeros: biases and states must matter in the comparison.
    weights = [np.random.default_rng(1).normal(size=w.shape) * 0.5 for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return theirs, ours


def _outputs_and_gradients(layer, training, initial_state=None):
    inputs = tf.constant(SEQUENCES)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = layer(inputs, training=training, initial_state=initial_state)
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        # A loss that weighs every output element differently, so no gradient hides in a sum.
        loss = sum(tf.reduce_sum(tf.sin(3.0 * o) * o) for o in outputs)
    return outputs, tape.gradient(loss, [inputs, *layer.trainable_weights])


def _assert_same(theirs, ours, **call):
    their_outputs, their_gradients = _outputs_and_gradients(theirs, **call)
    our_outputs, our_gradients = _outputs_and_gradients(ours, **call)
    expected_values, actual_values = their_outputs + their_gradients, our_outputs + our_gradients
    for expected, actual in zip(expected_values, actual_values, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", KERAS_LAYERS)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_same_outputs_and_gradients_as_keras(cell, return_sequences):
    theirs, ours = _pair(cell, return_sequences=return_sequences, return_state=True)
    assert ours._can_hoist(None), "the test must exercise the hoisted loop, not Keras' own"
    _assert_same(theirs, ours, training=False)


@pytest.mark.parametrize("cell", KERAS_LAYERS)
def test_same_with_input_dropout_in_training(cell):
    theirs, ours = _pair(cell, dropout=0.5, return_sequences=True)
    _assert_same(theirs, ours, training=True)


@pytest.mark.parametrize("cell", KERAS_LAYERS)
def test_same_from_a_given_initial_state(cell):
    theirs, ours = _pair(cell, return_sequences=True)
    states = 2 if cell == "lstm" else 1
    initial = [tf.constant(np.full((6, 4), 0.3 * (k + 1), "float32")) for k in range(states)]
    _assert_same(theirs, ours, training=False, initial_state=initial)


@pytest.mark.parametrize("cell", KERAS_LAYERS)
def test_recurrent_dropout_falls_back_to_keras_loop(cell):
    theirs, ours = _pair(cell, recurrent_dropout=0.3, return_sequences=True)
    assert not ours._can_hoist(None)
    _assert_same(theirs, ours, training=False)


def test_saved_model_reloads_with_the_same_layer(tmp_path):
    inputs = keras.Input(shape=(9, 5))
    model = keras.Model(inputs, PROJECTED_LAYERS["gru"](4, dropout=0.2)(inputs))
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(reloaded.layers[-1]) is PROJECTED_LAYERS["gru"]
    np.testing.assert_allclose(reloaded(SEQUENCES), model(SEQUENCES), rtol=1e-6)
