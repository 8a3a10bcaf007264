import keras
import numpy as np
import pytest

import fast_rnn.layers
from imdb_sentiment.modeling import RECURRENT_LAYERS, build_model, load_model
from tests.conftest import PROJECT_ROOT


def small_model(cell, sequence_length, **options):
    """A classifier small enough for a test: 100 words, embedding 8, two layers of 4 units."""
    defaults = {
        **{"vocabulary_size": 100, "embedding_dim": 8, "recurrent_layers": 2, "units": 4},
        **{"dropout": 0.5, "dense_units": 6, "dense_dropout": 0.5},
    }
    return build_model(cell, sequence_length=sequence_length, **{**defaults, **options})


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
    model = build_model(
        "gru", 50, 10, 4, recurrent_layers=1, units=3, dropout=0.0, dense_units=2, dense_dropout=0.0
    )
    assert model.output_shape == (None, 1)


def test_unknown_cell_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown cell 'transformer'; choose one of simplernn"):
        build_model("transformer", 50, 10, 4, 1, 3, 0.0, 2, 0.0)


def test_unknown_pooling_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown pooling 'mean'; choose last or max"):
        build_model("gru", 50, 10, 4, 1, 3, 0.0, 2, 0.0, pooling="mean")


def test_a_model_saved_before_fast_rnn_was_its_own_package_loads_and_predicts_the_same():
    # Saved by the previous code (its recurrent layers inside one ProjectedStack layer), with
    # its predictions at the time.
    saved = PROJECT_ROOT / "tests" / "data" / "saved_before_fast_rnn"
    model = load_model(saved.with_suffix(".keras"))
    expected = np.load(saved.with_suffix(".npz"))
    # Another CPU may round the last bit differently: the same function, not the same bits.
    np.testing.assert_allclose(
        model.predict(expected["token_ids"], verbose=0), expected["probabilities"], rtol=1e-6
    )
