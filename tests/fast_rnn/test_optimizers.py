"""fast_rnn's Adam gives Keras' Adam's results bit for bit (the weights and both moments), with
the embedding's sparse update really in the C++ op; a model compiled with it saves and reloads;
the op keeps earlier reads intact and rejects rows outside the table."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from fast_rnn import ops  # noqa: E402
from fast_rnn.optimizers import Adam  # noqa: E402

ROWS, WIDTH, STEPS = 500, 8, 12


@pytest.fixture
def sparse_updates(monkeypatch):
    """How many updates went to the C++ op: a test of it must not pass on Keras' update."""
    calls = []
    kernels = ops.load_kernels()

    class Counting:
        def __getattr__(self, name):
            return getattr(kernels, name)

        def fast_rnn_sparse_adam(self, **inputs):
            calls.append(inputs["values"].shape)
            return kernels.fast_rnn_sparse_adam(**inputs)

    monkeypatch.setattr("fast_rnn.optimizers.kernels_or_none", lambda: Counting())
    return calls


def _reviews():
    rng = np.random.default_rng(0)
    # Frequent ids repeat within a review and across a batch, and a padding id, as in text.
    ids = np.minimum(rng.zipf(1.3, size=(64, 20)), ROWS - 1).astype("int32")
    ids[:, :5] = 0
    return ids, rng.integers(0, 2, size=(64, 1)).astype("float32")


def _trained(optimizer_class):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((20,), dtype="int32"),
            keras.layers.Embedding(ROWS, WIDTH),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=optimizer_class(0.01), loss="binary_crossentropy", steps_per_execution=3
    )
    ids, labels = _reviews()
    model.fit(ids, labels, batch_size=16, epochs=STEPS // 4, shuffle=False, verbose=0)
    return model


def _bytes(model):
    return [
        np.asarray(value).tobytes()
        for value in [*model.get_weights(), *(v.numpy() for v in model.optimizer.variables)]
    ]


def test_the_same_bytes_as_keras_adam(sparse_updates):
    ours, theirs = _trained(Adam), _trained(keras.optimizers.Adam)
    # One sparse update per step (the embedding's); the dense layers take Keras' update.
    assert len(sparse_updates) >= 1
    assert _bytes(ours) == _bytes(theirs)
    assert int(ours.optimizer.iterations.numpy()) == STEPS


def test_a_saved_model_reloads_with_it(tmp_path):
    model = _trained(Adam)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is Adam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()


def _op_inputs(indices, dtype="int32"):
    rng = np.random.default_rng(2)
    variable, momentum, velocity = (
        tf.Variable(rng.normal(size=(ROWS, WIDTH)).astype("float32")) for _ in range(3)
    )
    velocity.assign(tf.abs(velocity))
    return {
        "variable": variable.handle,
        "momentum": momentum.handle,
        "velocity": velocity.handle,
        "values": tf.constant(rng.normal(size=(len(indices), WIDTH)).astype("float32")),
        "indices": tf.constant(indices, dtype=dtype),
        "alpha": tf.constant(0.01),
        "one_minus_beta_1": tf.constant(0.1),
        "one_minus_beta_2": tf.constant(0.001),
        "epsilon": tf.constant(1e-7),
    }, variable


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_a_read_before_the_update_keeps_its_values(dtype):
    inputs, variable = _op_inputs([3, 7, 3], dtype)
    before = variable.value()
    copy = before.numpy().copy()
    ops.load_kernels().fast_rnn_sparse_adam(**inputs)
    np.testing.assert_array_equal(before.numpy(), copy)
    assert not np.array_equal(variable.numpy(), copy)


def test_a_row_outside_the_table_is_refused_and_changes_nothing():
    inputs, variable = _op_inputs([3, ROWS])
    copy = variable.numpy().copy()
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"index {ROWS} at position 1"):
        ops.load_kernels().fast_rnn_sparse_adam(**inputs)
    np.testing.assert_array_equal(variable.numpy(), copy)
