import contextlib
import os
import signal
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from imdb_sentiment import paths
from imdb_sentiment.tracking import lifecycle, registry, store
from imdb_sentiment.tracking.busy import TrackingError


@pytest.fixture
def client(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield mlflow.MlflowClient(tracking_uri=uri)
    mlflow.set_tracking_uri(None)


def status_of_only_run(client):
    experiment = client.get_experiment_by_name("test")
    [run] = client.search_runs([experiment.experiment_id])
    return run.info.status


def test_a_dvc_experiment_copy_uses_the_store_of_the_project_it_was_copied_from():
    root = Path("/home/me/project")
    assert paths.users_project(root / ".dvc/tmp/exps/run/tmpabc123") == root
    assert paths.users_project(root) == root


def test_default_store_is_mlflow_db_in_the_project_root(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    expected = f"sqlite:///{paths.this_project().users_project / 'mlflow.db'}"
    assert store.tracking_uri() == expected
    assert os.path.isabs(expected.removeprefix("sqlite:///"))


def test_a_run_that_succeeds_ends_finished_with_source_tags(client):
    with lifecycle.run("test", run_name="ok", tags={"model_name": "gru"}) as run:
        mlflow.log_metric("x", 1.0)
    finished = client.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.tags["model_name"] == "gru"
    assert finished.data.tags["git_dirty"] in {"true", "false"}


def test_a_run_that_raises_ends_failed(client):
    with pytest.raises(RuntimeError), lifecycle.run("test"):
        raise RuntimeError("boom")
    assert status_of_only_run(client) == "FAILED"


def test_a_run_interrupted_by_ctrl_c_ends_killed(client):
    with pytest.raises(KeyboardInterrupt), lifecycle.run("test"):
        raise KeyboardInterrupt
    assert status_of_only_run(client) == "KILLED"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_run_stopped_by_a_signal_ends_killed_whatever_error_the_interrupt_became(client, stop):
    # TensorFlow's training step turned a SIGTERM's KeyboardInterrupt into "SystemError: ...
    # bad argument to internal function" (the interrupt was raised inside its call back into
    # Python); a C extension that swallows the interrupt and fails otherwise does the same.
    # (A process started in the background of a shell begins with SIGINT ignored.)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match=stop.name), lifecycle.run("test"):
        try:
            os.kill(os.getpid(), stop)
            time.sleep(5)
        except KeyboardInterrupt:
            raise SystemError("bad argument to internal function") from None
    assert status_of_only_run(client) == "KILLED"
    # The handlers are the process's own again once the run is closed.
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_run_whose_interrupt_was_dropped_inside_the_stage_ends_killed(client):
    # CI (2026-12-08): a training Ctrl-C'd under make run ended FINISHED. Its KeyboardInterrupt
    # had not come out of the stage's work; the signal had come all the same.
    with pytest.raises(KeyboardInterrupt, match="SIGINT"), lifecycle.run("test"):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            pass  # dropped, as a library's call back into Python can drop it
    assert status_of_only_run(client) == "KILLED"


def test_a_run_interrupted_while_it_opens_ends_killed(client, monkeypatch):
    # A worker killed as its stage opened the run (tests/test_cluster.py): the store had made
    # the run, and the interrupt came before the stage held it.
    start_run = mlflow.start_run

    def interrupted_start_run(*args, **kwargs):
        opened = start_run(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
        return opened

    monkeypatch.setattr(mlflow, "start_run", interrupted_start_run)
    with pytest.raises(KeyboardInterrupt, match="SIGINT"), lifecycle.run("test"):
        pytest.fail("the stage went on after the interrupt")
    assert status_of_only_run(client) == "KILLED"


def test_a_reopened_run_keeps_its_tags_and_ends_finished_again(client):
    with lifecycle.run("test", tags={"pipeline_stage": "train"}) as first:
        pass
    with lifecycle.run("test", run_id=first.info.run_id):
        mlflow.log_metric("test_accuracy", 0.9)
    reopened = client.get_run(first.info.run_id)
    assert reopened.info.status == "FINISHED"
    assert reopened.data.tags["pipeline_stage"] == "train"
    assert reopened.data.metrics["test_accuracy"] == 0.9


def test_an_unusable_store_is_a_tracking_error_naming_it(monkeypatch, tmp_path):
    (tmp_path / "not-a-folder").write_text("a file where the store's folder should be")
    uri = f"sqlite:///{tmp_path / 'not-a-folder' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingError) as raised, lifecycle.run("test"):
        pass
    mlflow.set_tracking_uri(None)
    assert "not-a-folder" in str(raised.value)
    # The user chose this store: the message says how to go back to the project's own.
    assert str(raised.value).endswith(
        "Unset MLFLOW_TRACKING_URI to use mlflow.db in the project root"
    )


class _Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def _logged_model_uri() -> str:
    with mlflow.start_run():
        return mlflow.pyfunc.log_model(name="model", python_model=_Constant()).model_uri


def test_the_champion_alias_moves_to_each_promoted_version_and_is_summarized(client):
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    assert registry.champion_summary("clf") is None  # No champion yet.
    first, better = (_logged_model_uri() for _ in range(2))
    tags = {"pipeline_model": "lstm", "seed": "42", "val_accuracy": "0.85", "val_reviews": "2500",
            "source_run_id": "run-of-lstm-42", "val_split_md5": "abc"}  # fmt: skip
    assert registry.promote("clf", first, tags) == "1"
    assert registry.champion_summary("clf") == {
        "name": "lstm (seed 42, version 1)",
        "val_accuracy": 0.85,
        "val_reviews": 2500,
        "val_split": "abc",
        "version": "1",
        "source_run_id": "run-of-lstm-42",
    }
    # A version registered before versions carried val_reviews: the report uses its own.
    assert registry.promote("clf", better, {"pipeline_model": "gru", "seed": "7",
                                            "val_accuracy": "0.88"}) == "2"  # fmt: skip
    summary = registry.champion_summary("clf")
    assert (summary["version"], summary["val_accuracy"]) == ("2", 0.88)
    assert summary["val_reviews"] is None
    assert len(client.search_model_versions("name = 'clf'")) == 2


def test_a_dataset_names_the_dvc_hash_and_commit_that_fetch_its_file_again(tmp_path, monkeypatch):
    import hashlib
    import subprocess

    from imdb_sentiment.tracking import provenance
    from tests.conftest import environment

    monkeypatch.setattr(paths, "this_project", lambda: paths.ProjectFiles(tmp_path))
    data = tmp_path / "data" / "prepared" / "test.npz"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"reviews")
    md5 = hashlib.md5(b"reviews").hexdigest()
    lock = {"stages": {"prepare": {"outs": [{"path": "data/prepared/test.npz", "md5": md5}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    for command in (["init", "-q"], ["add", "dvc.lock"], ["commit", "-qm", "lock"]):
        subprocess.run(["git", *command], cwd=tmp_path, env=environment(), check=True)
    tags = provenance.data_tags(data)
    commit = provenance._git("rev-parse", "HEAD")
    assert tags == {
        "dvc_path": "data/prepared/test.npz",
        "dvc_md5": md5,
        "git_commit": commit,
        "dvc_lock_at_commit": "true",
    }
    data.write_bytes(b"other reviews")  # Prepared anew, not committed yet.
    assert provenance.data_tags(data)["dvc_lock_at_commit"] == "false"


@pytest.mark.parametrize(
    ("answer", "logged_once_more"),
    [
        # What MLflow's server (PostgreSQL) answered when two trainings logged the same
        # dataset at the same moment: the dataset was there by the time this run inserted it.
        (
            "BAD_REQUEST: (psycopg.errors.UniqueViolation) duplicate key value violates unique "
            'constraint "dataset_pk"',
            True,
        ),
        ("RESOURCE_DOES_NOT_EXIST: Run 'abc' not found", False),
    ],
)
def test_a_dataset_logged_by_another_run_at_the_same_moment_is_logged_once_more(
    client, tmp_path, monkeypatch, answer, logged_once_more
):
    import numpy as np
    from mlflow.exceptions import MlflowException

    from imdb_sentiment.dataset import EncodedSplit
    from imdb_sentiment.tracking import records

    monkeypatch.setattr(records, "data_tags", lambda path: {"dvc_path": path.name})
    log_input, answers = mlflow.log_input, [answer]

    def racing(*args, **kwargs):
        if answers:
            raise MlflowException(answers.pop())
        return log_input(*args, **kwargs)

    monkeypatch.setattr(mlflow, "log_input", racing)
    split = EncodedSplit(np.arange(2), np.ones((2, 3), dtype=np.int32), np.array([0, 1]))
    raised = contextlib.nullcontext() if logged_once_more else pytest.raises(TrackingError)
    with raised, lifecycle.run("test") as run:
        records.log_dataset(split, tmp_path / "train.npz", "training")
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert [dataset.dataset.name for dataset in inputs] == (
        ["imdb-training"] if logged_once_more else []
    )
