import mlflow
import numpy as np
import pytest

from fast_rnn import build, ops
from imdb_sentiment import modeling, paths, training
from imdb_sentiment.errors import StageError
from imdb_sentiment.params import ParamsError
from stages import train


def only_run(experiment_name: str = "imdb-rnn-comparison"):
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(experiment_name)
    [run] = client.search_runs([experiment.experiment_id])
    return run


def test_a_diverging_loss_fails_the_stage_and_its_run_and_saves_no_model(workspace, monkeypatch):
    build_model = modeling.build_model

    def build_model_with_nan_weights(*args, **kwargs):
        # Adam keeps even huge learning rates finite on this data, so the NaN is injected.
        model = build_model(*args, **kwargs)
        embedding = model.get_layer("embedding")
        embedding.set_weights([np.full_like(w, np.nan) for w in embedding.get_weights()])
        return model

    monkeypatch.setattr(modeling, "build_model", build_model_with_nan_weights)
    with pytest.raises(StageError, match=r"training diverged: loss became nan in epoch 1\. Lower"):
        train.main(["gru", "42"])
    assert only_run().info.status == "FAILED"
    assert not paths.this_project().model_file("gru", 42).exists()
    assert not paths.this_project().run_id_file("gru", 42).exists()


def test_a_network_not_in_params_fails_before_any_run_starts(workspace):
    with pytest.raises(ParamsError, match=r"networks: gru-7 is not one of the networks .*: 42\)"):
        train.main(["gru", "7"])
    assert mlflow.MlflowClient().get_experiment_by_name("imdb-rnn-comparison") is None


def test_a_missing_seed_argument_says_how_to_call_the_stage(workspace):
    with pytest.raises(StageError, match=r"usage: python -m stages.train <model> <seed>, a net"):
        train.main(["gru"])


def test_an_unknown_model_fails_before_any_run_starts(workspace):
    with pytest.raises(ParamsError, match="models.bert: no such model"):
        train.main(["bert", "42"])
    assert mlflow.MlflowClient().get_experiment_by_name("imdb-rnn-comparison") is None


def test_kernels_that_cannot_be_built_fail_before_any_run_starts(workspace, monkeypatch):
    def no_compiler():
        raise build.KernelBuildError("the C++ recurrent kernels need a C++ compiler")

    monkeypatch.setattr(ops, "load_kernels", no_compiler)
    with pytest.raises(
        StageError, match="need a C\\+\\+ compiler.*recurrent_implementation: keras"
    ):
        train.main(["gru", "42"])
    assert mlflow.MlflowClient().get_experiment_by_name("imdb-rnn-comparison") is None
    assert not paths.this_project().model_file("gru", 42).exists()


def test_op_determinism_follows_the_param():
    from tensorflow.python.framework import config as tf_config

    try:
        training.seed_everything(1, op_determinism=False)
        assert not tf_config.is_op_determinism_enabled()
        training.seed_everything(1, op_determinism=True)
        assert tf_config.is_op_determinism_enabled()
    finally:
        # The switch is process-wide; the pipeline's default is on.
        training.seed_everything(1)


def test_training_batches_hold_every_review_once_in_a_seeded_order_without_autotuning():
    # tf.data's autotuning left the process idle for seconds in half the epochs here
    # (docs/performance.md): it stays off, and the batches stay what they were.
    from imdb_sentiment.dataset import EncodedSplit

    reviews = np.arange(10 * 3, dtype=np.int32).reshape(10, 3)
    split = EncodedSplit(ids=np.arange(10), reviews=reviews, labels=np.arange(10, dtype=np.int32))
    shuffled = training.batches(split, 4, shuffle_seed=7)
    assert shuffled.options().autotune.enabled is False
    epochs = [[(x.numpy(), y.numpy()) for x, y in shuffled] for _ in range(2)]
    assert [len(y) for _, y in epochs[0]] == [4, 4, 2]
    orders = [np.concatenate([y for _, y in epoch]) for epoch in epochs]
    for epoch, order in zip(epochs, orders, strict=True):
        assert sorted(order) == list(range(10))
        np.testing.assert_array_equal(np.concatenate([x for x, _ in epoch]), reviews[order])
    # Reshuffled every epoch, and the same way in every run.
    assert list(orders[0]) != list(orders[1])
    again = np.concatenate([y.numpy() for _, y in training.batches(split, 4, shuffle_seed=7)])
    np.testing.assert_array_equal(again, orders[0])
    in_order = training.batches(split, 4)
    assert in_order.options().autotune.enabled is False
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in in_order]), reviews)
