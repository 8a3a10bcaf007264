"""train.distribution: the same training code under a tf.distribute strategy."""

import pytest

from stages.distribution import make_strategy
from stages.params import load_params


def test_none_is_tensorflows_default_strategy():
    import tensorflow as tf

    assert make_strategy("none") is tf.distribute.get_strategy()


def test_mirrored_strategy_trains_the_model(workspace):
    from stages import paths
    from stages.prepare import load_split
    from stages.train import train_model

    params = load_params(paths.PARAMS_FILE).model("lstm")
    params = params.model_copy(update={"distribution": "mirrored", "epochs": 2})
    train, val = load_split(paths.TRAIN_SPLIT), load_split(paths.VALIDATION_SPLIT)
    result = train_model(params, train, val, vocabulary_size=100, callbacks=[])
    assert result.summary["epochs_run"] == 2
    assert type(result.model.distribute_strategy).__name__ == "MirroredStrategy"


def test_multi_worker_is_refused_by_name():
    from stages.params import ParamsError, parse_params

    with pytest.raises(ParamsError, match=r"train\.distribution: Input should be 'none' or"):
        parse_params({"train": {"distribution": "multi_worker"}})
