"""Reruns are exact: the same model and seed trained twice gives the same bytes, whether each
stage runs in a cold process or in a warm fork (prefork/), and whether the seed is trained alone
or side by side with other seeds (`make run`'s runner, dask_repro/); another seed gives another
model (so that the tests can fail). The same bytes as an earlier commit's code, on the real
data, is what `python bench/seeds.py --against <commit>` checks (results depend on the CPU, so
no bytes are kept here to compare with)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import mlflow
import pytest
from filelock import FileLock

from tests.conftest import (
    WARM_CALLER_MB,
    environment,
    make_project,
    networks,
    run,
    run_with_peak_memory,
    set_params,
    start_interruptible,
    start_warm_interpreter,
    warm_interpreter_folder,
)

pytestmark = pytest.mark.e2e

RUNNER = ["python", "-m", "dask_repro", "--workers", "2"]
OUTPUTS = [
    "reports/train/gru/seed-{seed}/history.csv",
    "reports/train/gru/seed-{seed}/metrics.json",
    "reports/evaluate/gru/seed-{seed}/metrics.json",
    "reports/evaluate/gru/seed-{seed}/predictions.csv",
]


@pytest.fixture(scope="module")
def servers() -> dict[str, str]:
    """The variables that give this module's stages warm interpreters of their own, stopped
    at the end (each holds TensorFlow, about 700 MB)."""
    with warm_interpreter_folder("rp") as folder:
        yield {"TMPDIR": folder}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A tiny project with two seeds, its data prepared."""
    project = make_project(tmp_path_factory.mktemp("reproducibility"))
    set_params(project, {"networks": networks(("simplernn", "lstm", "gru"), [42, 7])})
    run(["dvc", "repro", "prepare"], project)
    return project


def tracking_client(project: Path) -> mlflow.MlflowClient:
    # A first use of a new store creates its tables: under the stages' lock, as they do, since
    # this test reads the store while they start (else one of them may find the tables half
    # made: "table ... already exists").
    with FileLock(project / "mlflow.db.lock"):
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
        client.search_experiments()
    return client


def run_stage(project: Path, stage: str, seed: int, env: dict[str, str]) -> float:
    """Runs one stage of gru as DVC does; returns the peak memory of the process it started."""
    code, output, peak_mb = run_with_peak_memory(
        ["python", "-m", f"stages.{stage}", "gru", str(seed)], project, environment(**env)
    )
    assert code == 0, output[-4000:]
    return peak_mb


def train_and_evaluate(project: Path, seed: int, env: dict[str, str]) -> dict[str, bytes]:
    """Runs gru's training and evaluation stages; returns what they wrote that a rerun must
    reproduce. Each stage must have run the way ``env`` asks: warm, or cold (PREFORK=0)."""
    for stage in ("train", "evaluate"):
        peak_mb = run_stage(project, stage, seed, env)
        if env.get("PREFORK") == "0":
            assert peak_mb > WARM_CALLER_MB, f"{stage} ran in {peak_mb:.0f} MB: not cold"
        else:
            assert peak_mb < WARM_CALLER_MB, f"{stage} ran in {peak_mb:.0f} MB: not warm"
    return {output: (project / output.format(seed=seed)).read_bytes() for output in OUTPUTS}


def test_a_cold_rerun_and_a_warm_rerun_write_the_same_bytes(project, servers):
    cold = train_and_evaluate(project, 42, {**servers, "PREFORK": "0"})
    # A cold stage starts no server.
    start_warm_interpreter(project, servers)
    cold_again = train_and_evaluate(project, 42, {**servers, "PREFORK": "0"})
    warm = train_and_evaluate(project, 42, servers)
    for output, content in cold.items():
        assert cold_again[output] == content, f"{output} differs between two cold runs"
        assert warm[output] == content, f"{output} differs between a cold run and a warm one"


def test_a_seed_beside_other_seeds_writes_what_it_writes_alone(project, servers):
    alone = {
        seed: train_and_evaluate(project, seed, {**servers, "PREFORK": "0"}) for seed in (42, 7)
    }
    start_warm_interpreter(project, servers)
    # Every stage trained again, two at a time: `make run`'s runner on a LocalCluster of two
    # workers, with nothing in DVC's run-cache to restore.
    shutil.rmtree(project / ".dvc" / "cache" / "runs", ignore_errors=True)
    output = run(RUNNER, project, env=servers)
    assert "train@gru-7, evaluate@gru-7: started" in output
    for seed in (42, 7):
        for output_file, content in alone[seed].items():
            beside = (project / output_file.format(seed=seed)).read_bytes()
            assert beside == content, f"{output_file} differs when seeds train side by side"
    run_of_7 = json.loads((project / "models/gru/seed-7/mlflow_run.json").read_text())["run_id"]
    recorded = tracking_client(project).get_run(run_of_7)
    assert recorded.data.tags["dvc_stage"] == "train@gru-7"
    assert recorded.info.status == "FINISHED"
    assert recorded.data.metrics["val_accuracy"] >= 0  # Its epochs were recorded.


def runs_under_way(project: Path) -> list:
    """The MLflow training runs that are under way."""
    client = tracking_client(project)
    experiment = client.get_experiment_by_name("imdb-rnn-comparison")
    if experiment is None:
        return []
    return client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.pipeline_stage = 'train' and attributes.status = 'RUNNING'",
    )


def test_ctrl_c_of_make_run_ends_every_training_killed_and_writes_nothing(project, servers):
    params = (project / "params.yaml").read_text()
    set_params(project, {"train": {"epochs": 1000, "early_stopping_patience": 1000}})
    before = {path: path.read_bytes() for path in (project / "models").rglob("*") if path.is_file()}
    lock = (project / "dvc.lock").read_bytes()
    start_warm_interpreter(project, servers)
    try:
        runner = start_interruptible(RUNNER, project, env=servers)
        deadline = time.monotonic() + 120
        while len(under_way := runs_under_way(project)) < 2:  # Two trainings side by side.
            assert time.monotonic() < deadline, "no two trainings under way"
            assert runner.poll() is None, runner.stdout.read()
            time.sleep(0.5)
        os.killpg(runner.pid, signal.SIGINT)
        assert runner.wait(timeout=120) == 130, runner.stdout.read()
    finally:
        (project / "params.yaml").write_text(params)
    client = tracking_client(project)
    for stopped in under_way:
        status = client.get_run(stopped.info.run_id).info.status
        assert status == "KILLED", f"{stopped.data.tags['dvc_stage']}: {status}"
    assert not runs_under_way(project)
    after = {path: path.read_bytes() for path in (project / "models").rglob("*") if path.is_file()}
    assert after == before and (project / "dvc.lock").read_bytes() == lock
    assert len(run(["git", "worktree", "list"], project).splitlines()) == 1


def test_another_seed_trains_another_model(project, servers):
    histories = {}
    for seed in (42, 7):
        history = project / f"reports/train/gru/seed-{seed}/history.csv"
        if not history.exists():  # The tests above ran these, unless this one runs alone.
            train_and_evaluate(project, seed, {**servers, "PREFORK": "0"})
        histories[seed] = history.read_bytes()
    assert histories[42] != histories[7]
