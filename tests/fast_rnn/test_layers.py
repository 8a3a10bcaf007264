"""fast_rnn's layers compute what Keras' own layers compute, with the same weights: outputs,
final states and every gradient, alone and stacked, with and without dropout; and the C++
kernels really run where they apply, and Keras' loop where they do not."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from fast_rnn import build, ops  # noqa: E402
from fast_rnn.layers import LAYERS  # noqa: E402

KERAS_LAYERS = {
    "simplernn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}
SEQUENCES = np.random.default_rng(0).normal(size=(6, 9, 5)).astype("float32")


@pytest.fixture
def fused_calls(monkeypatch):
    """The layers that ran with the C++ kernels: a test of them must not pass on Keras' loop."""
    calls = []
    original = ops.recurrent_sequence

    def counted(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(ops, "recurrent_sequence", counted)
    return calls


def _pair(cell, seed=0, bidirectional=False, **options):
    """A Keras layer and ours (each in Keras' Bidirectional if asked) with the same weights and
    the same dropout seed."""
    pair = []
    for classes in (KERAS_LAYERS, LAYERS):
        keras.utils.set_random_seed(seed)
        layer = classes[cell](4, **options)
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, merge_mode="concat")
        layer.build(SEQUENCES.shape)
        pair.append(layer)
    # Random, not the initializers' zeros: biases and states must matter in the comparison.
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=w.shape) * 0.5 for w in pair[0].get_weights()]
    for layer in pair:
        layer.set_weights(weights)
    return tuple(pair)


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
@pytest.mark.parametrize("go_backwards", [False, True])
def test_same_outputs_and_gradients_as_keras(cell, return_sequences, go_backwards, fused_calls):
    theirs, ours = _pair(
        cell, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards
    )
    _assert_same(theirs, ours, training=False)
    assert fused_calls == [ours._cell_ops]


@pytest.mark.parametrize("cell", KERAS_LAYERS)
def test_same_with_input_dropout_in_training(cell, fused_calls):
    theirs, ours = _pair(cell, dropout=0.5, return_sequences=True)
    _assert_same(theirs, ours, training=True)
    assert fused_calls


@pytest.mark.parametrize("cell", KERAS_LAYERS)
def test_same_from_a_given_initial_state(cell, fused_calls):
    theirs, ours = _pair(cell, return_sequences=True)
    states = 2 if cell == "lstm" else 1
    initial = [tf.constant(np.full((6, 4), 0.3 * (k + 1), "float32")) for k in range(states)]
    _assert_same(theirs, ours, training=False, initial_state=initial)
    assert fused_calls


@pytest.mark.parametrize(
    ("cell", "options"),
    [
        ("simplernn", {"recurrent_dropout": 0.3}),
        ("lstm", {"recurrent_dropout": 0.3}),
        ("gru", {"recurrent_dropout": 0.3}),
        ("gru", {"reset_after": False}),
    ],
)
def test_what_the_kernels_do_not_compute_runs_in_keras_loop(cell, options, fused_calls):
    theirs, ours = _pair(cell, return_sequences=True, **options)
    _assert_same(theirs, ours, training=False)
    assert not fused_calls


@pytest.mark.parametrize("cell", KERAS_LAYERS)
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_computes_what_keras_bidirectional_computes(
    cell, training, return_sequences, fused_calls
):
    theirs, ours = _pair(cell, bidirectional=True, dropout=0.5, return_sequences=return_sequences)
    expected = _stack_outputs_and_gradients([theirs], training)
    actual = _stack_outputs_and_gradients([ours], training)
    for expected_value, actual_value in zip(expected, actual, strict=True):
        np.testing.assert_allclose(actual_value, expected_value, rtol=1e-4, atol=1e-5)
    # Both directions ran in the kernels (the op is traced once per direction).
    assert len(fused_calls) == 2


@pytest.mark.parametrize("cell", KERAS_LAYERS)
def test_the_kernels_split_the_batch_without_changing_a_row(cell):
    # 37 rows make uneven blocks, one per thread; each row must not depend on the blocks.
    batch = np.random.default_rng(2).normal(size=(37, 9, 5)).astype("float32")
    keras.utils.set_random_seed(0)
    theirs = KERAS_LAYERS[cell](4, return_sequences=True)
    theirs.build(batch.shape)
    ours = LAYERS[cell](4, return_sequences=True)
    ours.build(batch.shape)
    ours.set_weights(theirs.get_weights())
    whole = ours(batch)
    np.testing.assert_allclose(whole, theirs(batch), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole[:5], ours(batch[:5]), rtol=1e-6, atol=1e-7)


def test_without_kernels_a_layer_runs_keras_loop_and_says_why(monkeypatch, caplog, fused_calls):
    # A model trained with the kernels, loaded where they cannot be built (no compiler).
    keras.utils.set_random_seed(0)
    layer = LAYERS["gru"](4, return_sequences=True)
    expected = layer(SEQUENCES)
    assert fused_calls
    fused_calls.clear()

    def no_compiler():
        raise build.KernelBuildError("no C++ compiler on this test's machine")

    monkeypatch.setattr(ops, "load_kernels", no_compiler)
    with caplog.at_level("WARNING", logger="fast_rnn.ops"):
        actual = layer(SEQUENCES)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    assert not fused_calls
    assert "no C++ compiler on this test's machine" in caplog.text


def test_a_saved_model_reloads_with_the_same_layer(tmp_path):
    inputs = keras.Input(shape=(9, 5))
    model = keras.Model(inputs, LAYERS["gru"](4, dropout=0.2)(inputs))
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(reloaded.layers[-1]) is LAYERS["gru"]
    np.testing.assert_allclose(reloaded(SEQUENCES), model(SEQUENCES), rtol=1e-6)


def _stacks(cell, layers, return_sequences):
    """Keras' layers and ours, stacked ``layers`` deep with dropout, same weights and seeds."""
    stacks = {}
    for kind, classes in (("theirs", KERAS_LAYERS), ("ours", LAYERS)):
        keras.utils.set_random_seed(0)
        stacks[kind] = [
            classes[cell](4, dropout=0.5, return_sequences=return_sequences or i < layers - 1)
            for i in range(layers)
        ]
    shape, rng = SEQUENCES.shape, np.random.default_rng(1)
    for theirs, ours in zip(stacks["theirs"], stacks["ours"], strict=True):
        theirs.build(shape)
        ours.build(shape)
        shape = theirs.compute_output_shape(shape)
        weights = [rng.normal(size=w.shape) * 0.5 for w in theirs.get_weights()]
        theirs.set_weights(weights)
        ours.set_weights(weights)
    return stacks["theirs"], stacks["ours"]


def _stack_outputs_and_gradients(stack, training):
    inputs = tf.constant(SEQUENCES)
    weights = [w for layer in stack for w in layer.trainable_weights]

    @tf.function  # The training graph, as model.fit runs it.
    def run():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = inputs
            for layer in stack:
                outputs = layer(outputs, training=training)
            loss = tf.reduce_sum(tf.sin(3.0 * outputs) * outputs)
        return [outputs, *tape.gradient(loss, [inputs, *weights])]

    return run()


@pytest.mark.parametrize("cell", KERAS_LAYERS)
@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_stacked_layers_compute_what_keras_stacked_layers_compute(
    cell, layers, training, return_sequences, fused_calls
):
    theirs, ours = _stacks(cell, layers, return_sequences)
    expected = _stack_outputs_and_gradients(theirs, training)
    actual = _stack_outputs_and_gradients(ours, training)
    for expected_value, actual_value in zip(expected, actual, strict=True):
        np.testing.assert_allclose(actual_value, expected_value, rtol=1e-4, atol=1e-5)
    assert len(fused_calls) == layers
