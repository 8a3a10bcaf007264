"""train.distribution: the same training code under each tf.distribute strategy, and which
process of a cluster writes."""

import json
import re
import subprocess
import sys

import pytest

from imdb_sentiment.distribution import cluster_task, is_chief, make_strategy
from imdb_sentiment.errors import StageError
from imdb_sentiment.params import load_params
from tests.conftest import environment, make_project, run, set_params, tiny_params
from tests.servers import free_port


def _tf_config(task_type, index, cluster=None):
    cluster = cluster or {"worker": ["localhost:1", "localhost:2"]}
    task = {"type": task_type, "index": index}
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}


def test_without_a_cluster_this_process_is_the_chief():
    assert cluster_task({}) is None
    assert is_chief({})


def test_worker_0_is_the_chief_unless_the_cluster_names_one():
    assert is_chief(_tf_config("worker", 0))
    assert not is_chief(_tf_config("worker", 1))
    with_chief = {"chief": ["localhost:3"], "worker": ["localhost:1"]}
    assert is_chief(_tf_config("chief", 0, with_chief))
    assert not is_chief(_tf_config("worker", 0, with_chief))


def test_invalid_tf_config_names_the_variable():
    with pytest.raises(StageError, match="TF_CONFIG is not valid"):
        cluster_task({"TF_CONFIG": "{not json"})


def test_multi_worker_without_tf_config_says_how_to_start_workers():
    with pytest.raises(StageError, match="TF_CONFIG is not set"):
        make_strategy("multi_worker", environ={})


def test_multi_worker_with_several_steps_per_execution_names_both_keys():
    from imdb_sentiment.params import ParamsError, parse_params

    raw = tiny_params()
    raw["train"].update(distribution="multi_worker", steps_per_execution=16)
    with pytest.raises(ParamsError, match="models.lstm: distribution multi_worker needs steps_per"):
        parse_params(raw)
    raw["train"]["steps_per_execution"] = 1
    assert parse_params(raw).model("lstm").distribution == "multi_worker"


def test_none_is_tensorflows_default_strategy():
    import tensorflow as tf

    assert make_strategy("none") is tf.distribute.get_strategy()


def test_mirrored_strategy_trains_the_model(workspace):
    from imdb_sentiment import paths
    from imdb_sentiment.dataset import load_split
    from imdb_sentiment.training import train_model

    project = paths.this_project()
    params = load_params(project.params_file).model("lstm")
    params = params.model_copy(update={"distribution": "mirrored", "epochs": 2})
    train, val = load_split(project.train_split), load_split(project.validation_split)
    result = train_model(params, train, val, vocabulary_size=100, callbacks=[])
    assert result.summary["epochs_run"] == 2
    assert type(result.model.distribute_strategy).__name__ == "MirroredStrategy"


@pytest.mark.e2e
def test_two_workers_on_loopback_train_one_model_that_the_chief_saves_and_logs_once(tmp_path):
    import mlflow

    project = make_project(tmp_path)
    run(["dvc", "repro", "prepare"], project)
    set_params(
        project, {"train": {"distribution": "multi_worker", "epochs": 2, "steps_per_execution": 1}}
    )
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "stages.train", "gru", "42"],
            cwd=project,
            env=environment(
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    for index, worker in enumerate(workers):
        assert worker.returncode == 0, f"worker {index}:\n{outputs[index][-4000:]}"
    assert "as worker 1 of the TF_CONFIG cluster" in outputs[1]
    # Both trained in step: every epoch's validation loss (averaged across workers) agrees.
    epoch_val_losses = [re.findall(r"val_loss: ([0-9.]+)", output) for output in outputs]
    assert len(epoch_val_losses[0]) == 2
    assert epoch_val_losses[0] == epoch_val_losses[1]
    assert (project / "models/gru/seed-42/model.keras").is_file()
    logged = json.loads((project / "models/gru/seed-42/mlflow_run.json").read_text())

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
        assert [r.info.run_id for r in runs] == [logged["run_id"]]
        assert runs[0].info.status == "FINISHED"
        assert runs[0].data.params["distribution"] == "multi_worker"
        assert json.loads(runs[0].data.tags["tf_config_cluster"]) == cluster
        assert len(mlflow.MlflowClient().get_metric_history(logged["run_id"], "val_loss")) == 2
        assert mlflow.pyfunc.load_model(logged["model_uri"]) is not None
    finally:
        mlflow.set_tracking_uri(None)
