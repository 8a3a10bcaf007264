import keras
import numpy as np
import pytest

import fast_rnn.layers
from imdb_sentiment.modeling import RECURRENT_LAYERS, ModelFileError, build_model, load_model
from imdb_sentiment.params import CELL_TYPES
from tests.conftest import PROJECT_ROOT, model_params


def small_model(cell, sequence_length, **hyperparameters):
    """A classifier small enough for a test: 100 words, embedding 8, two layers of 4 units."""
    shape = {"embedding_dim": 8, "layers": 2, "units": 4, "dropout": 0.5, "dense_units": 6}
    params = model_params(cell, **{**shape, "dense_dropout": 0.5, **hyperparameters})
    return build_model(params, vocabulary_size=100, sequence_length=sequence_length)


@pytest.mark.parametrize("cell", sorted(fast_rnn.layers.LAYERS))
@pytest.mark.parametrize("implementation", sorted(RECURRENT_LAYERS))
def test_model_maps_a_batch_of_80_token_reviews_to_one_probability_each(cell, implementation):
    model = small_model(cell, 80, recurrent_implementation=implementation)
    reviews = np.random.default_rng(0).integers(0, 100, size=(5, 80), dtype=np.int32)
    probabilities = np.asarray(model(reviews, training=False))
    assert probabilities.shape == (5, 1)
    assert ((probabilities > 0) & (probabilities < 1)).all()
    recurrent = [model.get_layer(f"{cell}_{index}") for index in (1, 2)]
    assert [type(layer) for layer in recurrent] == [RECURRENT_LAYERS[implementation][cell]] * 2
    assert recurrent[0].return_sequences and not recurrent[1].return_sequences


@pytest.mark.parametrize("cell", sorted(fast_rnn.layers.LAYERS))
def test_a_bidirectional_model_reads_both_ways_with_the_kernels_and_reloads(cell, tmp_path):
    model = small_model(cell, 12, bidirectional=True)
    wrappers = [model.get_layer(f"bidirectional_{cell}_{index}") for index in (1, 2)]
    for wrapper in wrappers:
        assert type(wrapper.forward_layer) is fast_rnn.layers.LAYERS[cell]
        assert type(wrapper.backward_layer) is fast_rnn.layers.LAYERS[cell]
        assert wrapper.backward_layer.go_backwards
    # units per direction, concatenated
    assert wrappers[0].output.shape == (None, 12, 8) and wrappers[1].output.shape == (None, 8)
    reviews = np.random.default_rng(0).integers(0, 100, size=(5, 12), dtype=np.int32)
    model.save(tmp_path / "model.keras")
    np.testing.assert_array_equal(
        load_model(tmp_path / "model.keras").predict(reviews, verbose=0),
        model.predict(reviews, verbose=0),
    )


@pytest.mark.parametrize("bidirectional", [False, True])
def test_max_pooling_reads_every_token_of_the_last_layer(bidirectional):
    model = small_model("lstm", 12, bidirectional=bidirectional, pooling="max", dropout=0.0)
    pooled = model.get_layer("max_over_tokens")
    assert pooled.input.shape == (None, 12, 8 if bidirectional else 4)
    # Each unit's largest output over the tokens of the last recurrent layer.
    inside = keras.Model(model.input, [pooled.input, pooled.output])
    reviews = np.random.default_rng(0).integers(1, 100, size=(3, 12), dtype=np.int32)
    sequence, maxima = inside(reviews)
    np.testing.assert_array_equal(maxima, np.max(sequence, axis=1))


def test_one_recurrent_layer_is_allowed():
    model = small_model("gru", 10, layers=1)
    assert [layer.name for layer in model.layers if layer.name.startswith("gru")] == ["gru_1"]
    assert model.output_shape == (None, 1)


def test_the_hyperparameters_that_shape_the_network_reach_it():
    model = small_model("lstm", 10, embedding_dim=5, units=3, dense_units=7, dense_dropout=0.25)
    assert model.get_layer("embedding").output.shape == (None, 10, 5)
    assert model.get_layer("lstm_2").output.shape == (None, 3)
    assert model.get_layer("dense").output.shape == (None, 7)
    assert model.get_layer("dense_dropout").rate == 0.25
    assert model.get_layer("lstm_1").dropout == 0.5


def test_a_model_saved_by_an_earlier_layout_is_refused_with_the_fix():
    # Saved when the recurrent layers sat inside one ProjectedStack layer.
    saved = PROJECT_ROOT / "tests" / "data" / "saved_before_fast_rnn.keras"
    with pytest.raises(ModelFileError, match=r"saved by an earlier layout .* run `dvc repro`"):
        load_model(saved)


def test_a_truncated_model_file_is_reported_as_corrupt_with_the_fix(tmp_path):
    model_file = tmp_path / "model.keras"
    small_model("gru", 10).save(model_file)
    model_file.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"model.keras cannot be loaded, it is corrupt .*"):
        load_model(model_file)
    with pytest.raises(ModelFileError, match=r"missing\.keras is missing: run `dvc repro`"):
        load_model(tmp_path / "missing.keras")


def test_every_cell_params_yaml_accepts_has_a_layer_in_each_implementation():
    for implementation, layers_by_cell in RECURRENT_LAYERS.items():
        assert tuple(layers_by_cell) == CELL_TYPES, implementation
