"""End to end, things going wrong: interrupted stages, bad `dvc exp run -S` values, and two
experiments running at once against the default SQLite store."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest

from tests.conftest import (
    make_project,
    run,
    run_queued_experiments,
    set_params,
    start_interruptible,
)

pytestmark = pytest.mark.e2e

EXPERIMENT = "imdb-rnn-comparison"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A tiny project whose pipeline has run once, with dvc.lock committed."""
    project = make_project(tmp_path_factory.mktemp("failures"))
    run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "pipeline run"], project)
    return project


def client_for(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def runs_of(project: Path, model: str):
    client = client_for(project)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.pipeline_stage = 'train' and tags.model_name = '{model}'",
    )


LSTM_UNITS_7 = {"models": {"lstm": {"cell": "lstm", "units": 7}}}


def interrupt_training(project: Path, signal_number: int, changes: dict) -> subprocess.Popen:
    """Starts a long training of lstm under `dvc repro` with the params ``changes``, then
    signals its process group once training is under way (an epoch logged), as Ctrl-C or a
    job scheduler does; then restores params.yaml."""
    set_params(project, changes)
    set_params(project, {"train": {"epochs": 1000, "early_stopping_patience": 1000}})
    runs_before = len(runs_of(project, "lstm"))
    repro = start_interruptible(["dvc", "repro", "-s", "train@lstm-42"], project)
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline, "training did not start"
        assert repro.poll() is None, repro.stdout.read()
        runs = runs_of(project, "lstm")
        if len(runs) > runs_before and "val_loss" in runs[0].data.metrics:
            break
        time.sleep(0.5)
    os.killpg(repro.pid, signal_number)
    repro.wait(timeout=60)
    # DVC may exit before the stage it started has ended its run.
    while runs_of(project, "lstm")[0].info.status == "RUNNING":
        assert time.monotonic() < deadline + 60, "the interrupted run was never ended"
        time.sleep(0.5)
    run(["git", "checkout", "params.yaml"], project)
    return repro


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_training_ends_killed_and_reruns_next_time(project, signal_number):
    model_before = (project / "models/lstm/seed-42/model.keras").read_bytes()
    repro = interrupt_training(project, signal_number, {})
    assert repro.returncode != 0
    assert runs_of(project, "lstm")[0].info.status == "KILLED"
    # DVC removed the old output before the stage ran; no half-written model took its place,
    # and DVC did not record the interrupted stage.
    assert not (project / "models/lstm/seed-42/model.keras").exists()
    assert run(["git", "status", "--porcelain", "dvc.lock"], project) == ""
    # The earlier model is intact in DVC's cache, and its reports in git: they come back.
    run(["git", "checkout", "--", "reports"], project)
    run(["dvc", "checkout", "train@lstm-42"], project)
    assert (project / "models/lstm/seed-42/model.keras").read_bytes() == model_before
    assert "up to date" in run(["dvc", "status", "train@lstm-42"], project)


def test_an_interrupted_stage_with_new_params_runs_again(project):
    try:
        assert interrupt_training(project, signal.SIGINT, LSTM_UNITS_7).returncode != 0
        set_params(project, LSTM_UNITS_7)
        assert "train@lstm-42" in run(["dvc", "status", "train@lstm-42"], project)
        output = run(["dvc", "repro", "-s", "train@lstm-42"], project)
        assert "Running stage 'train@lstm-42'" in output
        assert runs_of(project, "lstm")[0].info.status == "FINISHED"
    finally:
        run(["git", "checkout", "--", "params.yaml", "dvc.lock", "reports"], project)
        run(["dvc", "checkout", "-q"], project)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("models.lstm.units=abc", "models.lstm.units: Input should be a valid integer (got 'abc')"),
        ("data.maxlen=-5", "data.maxlen: Input should be greater than 0 (got -5)"),
        ("train.dropout=1.5", "train.dropout: Input should be less than 1 (got 1.5)"),
    ],
)
def test_bad_values_from_dvc_exp_run_set_param_are_caught_by_key(project, setting, message):
    output = run(["dvc", "exp", "run", "--temp", "-S", setting], project, expect_failure=True)
    assert message in output
    assert "Traceback" not in output


def test_two_queued_experiments_run_at_once_into_one_store(project):
    status = run_queued_experiments(
        project, {f"gru-{units}": f"models.gru.units={units}" for units in (4, 5)}
    )
    assert status.count("Success") >= 2, status
    logs = "".join(run(["dvc", "queue", "logs", name], project) for name in ("gru-4", "gru-5"))
    assert "database is locked" not in logs
    by_experiment = {r.data.tags.get("dvc_exp_name"): r for r in runs_of(project, "gru")}
    for units in (4, 5):
        gru_run = by_experiment[f"gru-{units}"]
        assert gru_run.info.status == "FINISHED"
        assert gru_run.data.params["units"] == str(units)
        assert {"val_loss", "test_accuracy", "test_roc_auc"} <= set(gru_run.data.metrics)


@pytest.fixture
def small_disk(tmp_path):
    """A 150 MB tmpfs of its own (root only; skipped where a mount cannot be made)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=150m", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root?); test_faults.py patches writes")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path, leave_bytes: int) -> Path:
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    subprocess.run(["fallocate", "-l", str(free - leave_bytes), str(filler)], check=True)
    return filler


def test_a_full_disk_during_the_pipeline_is_one_line_and_dvc_repro_recovers(small_disk):
    project = make_project(small_disk)
    run(["dvc", "repro", "prepare"], project)
    # Less than the first training stage writes (its MLflow store and logged model, over 1 MB
    # here), so that the disk fills inside a stage, not in DVC's caching of a stage's outputs
    # after it, which DVC reports in its own words.
    filler = fill(small_disk, leave_bytes=1_000_000)
    output = run(["dvc", "repro"], project, expect_failure=True)
    [error] = [line for line in output.splitlines() if " ERROR imdb_sentiment: " in line]
    assert "no space left on the disk of " in error and "`dvc gc --workspace`" in error
    assert "Traceback" not in output
    filler.unlink()
    run(["dvc", "repro"], project)
    assert "up to date" in run(["dvc", "status"], project)
    client = client_for(project)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    statuses = {run_.info.status for run_ in client.search_runs([experiment.experiment_id])}
    # A run the full disk stopped ended FAILED, or was marked so by the next stage (the disk
    # may also fill before any run starts, as when MLflow first creates its store): none is
    # left RUNNING, and every model has a finished run.
    assert "RUNNING" not in statuses and "FINISHED" in statuses
    for model in ("simplernn", "lstm", "gru"):
        assert "FINISHED" in {run_.info.status for run_ in runs_of(project, model)}


def test_a_training_run_dvc_did_not_record_is_marked_by_the_next_run_of_its_stage(project):
    # As when DVC cannot cache a stage's outputs after its process ended: the run finished,
    # but dvc.lock does not know it. Here, the stage run by hand under its DVC name.
    stage = "train@gru-42"
    run(["python", "-m", "stages.train", "gru", "42"], project, env={"DVC_STAGE": stage})
    [unrecorded] = [r for r in runs_of(project, "gru") if r.info.status == "FINISHED"][:1]
    run(["dvc", "repro", "--force", "--single-item", stage], project)
    client = client_for(project)
    marked = client.get_run(unrecorded.info.run_id)
    assert marked.info.status == "FAILED"
    assert "DVC did not record its outputs" in marked.data.tags["ended_by"]
    # The run dvc.lock records, and the new one, stay as they were.
    statuses = [r.info.status for r in runs_of(project, "gru")]
    assert statuses.count("FINISHED") >= 2
    run(["git", "checkout", "--", "."], project)
    run(["dvc", "checkout"], project)
