"""The hoisted-projection layers compute what Keras' own layers compute, with the same weights:
outputs, final states and every gradient, with and without dropout, with their loops in
TensorFlow (``fused=False``) and in the C++ kernels (``fused=True``)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from stages import native, recurrent  # noqa: E402
from stages.recurrent import PROJECTED_LAYERS, ProjectedStack  # noqa: E402

KERAS_LAYERS = {
    "simplernn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}
SEQUENCES = np.random.default_rng(0).normal(size=(6, 9, 5)).astype("float32")


def _pair(cell, seed=0, fused=False, **options):
    """A Keras layer and ours with the same weights and the same dropout seed."""
    keras.utils.set_random_seed(seed)
    theirs = KERAS_LAYERS[cell](4, **options)
    theirs.build(SEQUENCES.shape)
    keras.utils.set_random_seed(seed)
    ours = PROJECTED_LAYERS[cell](4, fused=fused, **options)
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


FUSED = pytest.mark.parametrize("fused", [False, True], ids=["tf-loop", "fused"])


@pytest.fixture
def fused_calls(monkeypatch):
    """How many layers ran with the C++ kernels: a fused test must not pass on the TF loop."""
    calls = []
    original = recurrent.fused_sequence

    def counted(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(recurrent, "fused_sequence", counted)
    return calls


@FUSED
@pytest.mark.parametrize("cell", KERAS_LAYERS)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_same_outputs_and_gradients_as_keras(cell, return_sequences, fused, fused_calls):
    theirs, ours = _pair(cell, return_sequences=return_sequences, return_state=True, fused=fused)
    assert ours._can_hoist(None), "the test must exercise the hoisted loop, not Keras' own"
    _assert_same(theirs, ours, training=False)
    assert bool(fused_calls) is fused


@FUSED
@pytest.mark.parametrize("cell", KERAS_LAYERS)
def test_same_with_input_dropout_in_training(cell, fused):
    theirs, ours = _pair(cell, dropout=0.5, return_sequences=True, fused=fused)
    _assert_same(theirs, ours, training=True)


@FUSED
@pytest.mark.parametrize("cell", KERAS_LAYERS)
def test_same_from_a_given_initial_state(cell, fused):
    theirs, ours = _pair(cell, return_sequences=True, fused=fused)
    states = 2 if cell == "lstm" else 1
    initial = [tf.constant(np.full((6, 4), 0.3 * (k + 1), "float32")) for k in range(states)]
    _assert_same(theirs, ours, training=False, initial_state=initial)


@pytest.mark.parametrize("cell", KERAS_LAYERS)
def test_recurrent_dropout_falls_back_to_keras_loop(cell):
    theirs, ours = _pair(cell, recurrent_dropout=0.3, return_sequences=True)
    assert not ours._can_hoist(None)
    _assert_same(theirs, ours, training=False)


@pytest.mark.parametrize("cell", KERAS_LAYERS)
def test_fused_kernels_split_the_batch_without_changing_a_row(cell):
    # 37 rows make uneven blocks, one per thread; each row must not depend on the blocks.
    batch = np.random.default_rng(2).normal(size=(37, 9, 5)).astype("float32")
    layers = {}
    for fused in (False, True):
        keras.utils.set_random_seed(0)
        layers[fused] = PROJECTED_LAYERS[cell](4, return_sequences=True, fused=fused)
        layers[fused].build(batch.shape)
    layers[True].set_weights(layers[False].get_weights())
    whole = layers[True](batch)
    np.testing.assert_allclose(whole, layers[False](batch), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole[:5], layers[True](batch[:5]), rtol=1e-6, atol=1e-7)


def test_a_fused_layer_without_its_kernels_runs_the_tensorflow_loop(
    monkeypatch, caplog, fused_calls
):
    # A model trained with the kernels, loaded where they cannot be built (no compiler).
    keras.utils.set_random_seed(0)
    layer = PROJECTED_LAYERS["gru"](4, return_sequences=True, fused=True)
    expected = layer(SEQUENCES)
    assert fused_calls
    fused_calls.clear()

    def no_compiler():
        raise native.KernelBuildError("no C++ compiler on this test's machine")

    monkeypatch.setattr(native, "recurrent_ops", no_compiler)
    with caplog.at_level("WARNING", logger="stages.native"):
        actual = layer(SEQUENCES)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
    assert not fused_calls
    assert "no C++ compiler on this test's machine" in caplog.text


@FUSED
def test_saved_model_reloads_with_the_same_layer(tmp_path, fused):
    inputs = keras.Input(shape=(9, 5))
    model = keras.Model(inputs, PROJECTED_LAYERS["gru"](4, dropout=0.2, fused=fused)(inputs))
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(reloaded.layers[-1]) is PROJECTED_LAYERS["gru"]
    assert reloaded.layers[-1].fused is fused
    np.testing.assert_allclose(reloaded(SEQUENCES), model(SEQUENCES), rtol=1e-6)


def _stacks(cell, layers, seed=0, **options):
    """Keras' layers stacked, and our ProjectedStack, with the same weights and dropout seeds."""
    keras.utils.set_random_seed(seed)
    theirs = [
        KERAS_LAYERS[cell](
            4,
            return_sequences=options.get("return_sequences", False) or index < layers - 1,
            dropout=options.get("dropout", 0.0),
        )
        for index in range(layers)
    ]
    keras.utils.set_random_seed(seed)
    ours = ProjectedStack(cell, 4, layers, **options)
    ours.build(SEQUENCES.shape)
    shape = SEQUENCES.shape
    rng = np.random.default_rng(1)
    for layer, our_layer in zip(theirs, ours.recurrent_layers, strict=True):
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
        weights = [rng.normal(size=w.shape) * 0.5 for w in layer.get_weights()]
        layer.set_weights(weights)
        our_layer.set_weights(weights)
    return theirs, ours


def _stack_outputs_and_gradients(call, weights, training):
    inputs = tf.constant(SEQUENCES)

    @tf.function  # The training graph, as model.fit runs it.
    def run():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = call(inputs, training)
            loss = tf.reduce_sum(tf.sin(3.0 * outputs) * outputs)
        return [outputs, *tape.gradient(loss, [inputs, *weights])]

    return run()


@FUSED
@pytest.mark.parametrize("cell", KERAS_LAYERS)
@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_stack_computes_what_keras_stacked_layers_compute(
    cell, layers, training, return_sequences, fused, fused_calls
):
    theirs, ours = _stacks(
        cell, layers, dropout=0.5, return_sequences=return_sequences, fused=fused
    )

    def their_call(inputs, training):
        for layer in theirs:
            inputs = layer(inputs, training=training)
        return inputs

    weights = [w for layer in theirs for w in layer.trainable_weights]
    expected = _stack_outputs_and_gradients(their_call, weights, training)
    actual = _stack_outputs_and_gradients(
        lambda inputs, training: ours(inputs, training=training), ours.trainable_weights, training
    )
    assert [w.shape for w in ours.trainable_weights] == [w.shape for w in weights]
    for expected_value, actual_value in zip(expected, actual, strict=True):
        np.testing.assert_allclose(actual_value, expected_value, rtol=1e-4, atol=1e-5)
    assert len(fused_calls) == (layers if fused else 0)


def test_stack_with_a_slow_path_layer_runs_its_layers_one_by_one():
    stack = ProjectedStack("lstm", 4, 2)
    stack.build(SEQUENCES.shape)
    stack.recurrent_layers[1].cell.recurrent_dropout = 0.3  # Keras' own loop for this one.
    expected = stack.recurrent_layers[1](stack.recurrent_layers[0](SEQUENCES))
    np.testing.assert_allclose(stack(SEQUENCES), expected, rtol=1e-6)


@FUSED
def test_saved_model_with_a_stack_reloads(tmp_path, fused):
    inputs = keras.Input(shape=(9, 5))
    model = keras.Model(inputs, ProjectedStack("lstm", 4, 2, dropout=0.2, fused=fused)(inputs))
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(reloaded.layers[-1]) is ProjectedStack
    assert all(layer.fused is fused for layer in reloaded.layers[-1].recurrent_layers)
    np.testing.assert_allclose(reloaded(SEQUENCES), model(SEQUENCES), rtol=1e-6)
