import numpy as np
import pytest

from stages.modeling import KERAS_LAYERS, RECURRENT_IMPLEMENTATIONS, build_model
from stages.recurrent import PROJECTED_LAYERS


@pytest.mark.parametrize("cell", sorted(KERAS_LAYERS))
@pytest.mark.parametrize("implementation", RECURRENT_IMPLEMENTATIONS)
def test_model_maps_a_batch_of_80_token_reviews_to_one_probability_each(cell, implementation):
    model = build_model(
        cell,
        vocabulary_size=100,
        sequence_length=80,
        embedding_dim=8,
        recurrent_layers=2,
        units=4,
        dropout=0.5,
        dense_units=6,
        dense_dropout=0.5,
        recurrent_implementation=implementation,
    )
    reviews = np.random.default_rng(0).integers(0, 100, size=(5, 80), dtype=np.int32)
    probabilities = np.asarray(model(reviews, training=False))
    assert probabilities.shape == (5, 1)
    assert ((probabilities > 0) & (probabilities < 1)).all()
    if implementation in ("fused", "projected"):
        layer_type = PROJECTED_LAYERS[cell]
        recurrent = model.get_layer(f"{cell}_stack").recurrent_layers
        assert all(layer.fused is (implementation == "fused") for layer in recurrent)
    else:
        layer_type = KERAS_LAYERS[cell]
        recurrent = [layer for layer in model.layers if isinstance(layer, layer_type)]
    assert [type(layer) for layer in recurrent] == [layer_type] * 2
    assert [layer.name for layer in recurrent] == [f"{cell}_1", f"{cell}_2"]
    assert len(recurrent) == 2
    assert recurrent[0].return_sequences and not recurrent[1].return_sequences


def test_one_recurrent_layer_is_allowed():
    model = build_model(
        "gru", 50, 10, 4, recurrent_layers=1, units=3, dropout=0.0, dense_units=2, dense_dropout=0.0
    )
    assert model.output_shape == (None, 1)


def test_unknown_cell_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown cell 'transformer'; choose one of simplernn"):
        build_model("transformer", 50, 10, 4, 1, 3, 0.0, 2, 0.0)
