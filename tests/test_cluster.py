"""`make run` on a Dask cluster of two workers, each in a checkout of its own with its own DVC
cache, joined only by a DVC remote (a folder) and an MLflow server, as two machines would be:
the same bytes as a plain, sequential `dvc repro` of the same commit; a worker killed with
`kill -9` has its stage run again by the other, its run KILLED."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import psutil
import pytest
import yaml

from tests.conftest import environment, make_project, run, set_params
from tests.servers import free_port, start_mlflow_server, stop_server

pytestmark = pytest.mark.e2e

EXPERIMENT = "imdb-rnn-comparison"
# What must come out the same, byte for byte, wherever a stage ran.
RESULTS = [
    "reports/train/*/seed-*/history.csv",
    "reports/train/*/seed-*/metrics.json",
    "reports/evaluate/*/seed-*/metrics.json",
    "reports/evaluate/*/seed-*/roc.csv",
    "reports/evaluate/*/seed-*/predictions.csv",
    "reports/data/stats.json",
    "reports/metrics.json",
    "data/prepared/*",
]
# Outputs that name a run or time it, and the report's, which shows both: they differ from run
# to run by design. And the saved model, whose file holds the time it was saved (its weights
# are compared instead).
RUN_RECORDS = ("mlflow_run.json", "training_time.json", "model.keras", "models")
REPORT_RECORDS = ("reports/comparison.md", "reports/comparison.csv", "reports/runs.csv")


@contextlib.contextmanager
def cluster(workers: list[Path]) -> Iterator[str]:
    """A `dask scheduler` and one `dask worker` in each checkout of ``workers``, as
    `make scheduler` and `make worker` start them; yields the scheduler's address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    processes = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            # The scheduler reads the tasks, so it imports the runner's code.
            env=environment(PYTHONPATH=str(workers[0])),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        time.sleep(2)
        for checkout in workers:
            processes.append(
                subprocess.Popen(
                    [
                        dask,
                        "worker",
                        address,
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--name",
                        checkout.name,
                    ],
                    cwd=checkout,
                    env=environment(PYTHONPATH=str(checkout)),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(len(workers), timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[dict]:
    """The user's project with a DVC remote, two workers' checkouts of it, an MLflow server."""
    folder = tmp_path_factory.mktemp("cluster")
    project = make_project(folder)
    remote = folder / "remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], project)
    run(["git", "commit", "-qam", "a DVC remote"], project)
    workers = []
    for name in ("worker-a", "worker-b"):
        run(["git", "clone", "-q", str(project), str(folder / name)], folder)
        workers.append(folder / name)
    (folder / "server").mkdir()
    port = free_port()
    server = start_mlflow_server(folder / "server", port)
    try:
        yield {"project": project, "workers": workers, "uri": f"http://127.0.0.1:{port}"}
    finally:
        stop_server(server)


def results(project: Path) -> dict[str, bytes]:
    found = {}
    for pattern in RESULTS:
        for path in sorted(project.glob(pattern)):
            found[path.relative_to(project).as_posix()] = path.read_bytes()
    return found


def locked(project: Path) -> dict:
    """dvc.lock, but for the hashes of the outputs that name or time a run."""
    stages = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    for stage in stages.values():
        for entry in (*stage.get("outs", []), *stage.get("deps", [])):
            if entry["path"].endswith(RUN_RECORDS) or entry["path"] in REPORT_RECORDS:
                entry.pop("md5"), entry.pop("size"), entry.pop("nfiles", None)
    return stages


def weights(project: Path) -> dict[str, bytes]:
    """Each saved model's weights (the .keras file is a zip that holds them)."""
    return {
        path.as_posix(): zipfile.ZipFile(path).read("model.weights.h5")
        for path in sorted(project.glob("models/*/seed-*/model.keras"))
    }


def comparison(project: Path) -> pd.DataFrame:
    table = pd.read_csv(project / "reports/comparison.csv")
    return table.drop(columns=["training_seconds", "samples_per_second", "mlflow_run_ids"])


def test_a_cluster_of_two_checkouts_writes_what_a_sequential_dvc_repro_writes(setup):
    project, workers, uri = setup["project"], setup["workers"], setup["uri"]
    sequential = project.parent / "sequential"
    run(["git", "clone", "-q", str(project), str(sequential)], project.parent)
    run(["dvc", "repro"], sequential, env={"MLFLOW_TRACKING_URI": uri})
    with cluster(workers) as address:
        output = run(
            ["python", "-m", "dask_repro", "--scheduler", address, "--env", "MLFLOW_TRACKING_URI"],
            project,
            env={"MLFLOW_TRACKING_URI": uri},
        )
    ran_on = {line.split(": started on ")[1].strip() for line in output.splitlines()
              if ": started on " in line}  # fmt: skip
    assert len(ran_on) == 2, output  # Both workers took stages.
    # Every task (a training and its evaluation are one) ran away from here.
    assert output.count("(another checkout)") == 4, output
    # The recording `dvc repro` restored every stage from the remote: it ran the report alone.
    assert re.findall(r"Running stage '([^']+)'", output) == ["report"], output
    assert results(project) == results(sequential)
    assert list(weights(project).values()) == list(weights(sequential).values())
    assert locked(project) == locked(sequential)
    pd.testing.assert_frame_equal(comparison(project), comparison(sequential))
    assert "up to date" in run(["dvc", "repro"], project, env={"MLFLOW_TRACKING_URI": uri})
    # Every stage's run went to the server, once, from a worker's workspace.
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    for model in ("simplernn", "lstm", "gru"):
        link = json.loads((project / f"models/{model}/seed-42/mlflow_run.json").read_text())
        recorded = client.get_run(link["run_id"])
        assert recorded.info.status == "FINISHED"
        assert "test_accuracy" in recorded.data.metrics  # Its evaluation, another task.
        assert "/.dvc/tmp/dask-repro/" in recorded.data.tags["project"]
        assert not recorded.data.tags["project"].startswith(str(project))
    trainings = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.pipeline_stage = 'train' and "
        f"tags.project LIKE '{workers[0].parent}/worker-%'",
    )
    assert len(trainings) == 3
    for checkout in workers:  # No workspace left behind.
        assert len(run(["git", "worktree", "list"], checkout).splitlines()) == 1


def _guard_parents(checkout: Path) -> set[int]:
    """The worker processes that run a task's guard in ``checkout``'s workspaces."""
    found = set()
    for process in psutil.process_iter(["cmdline", "cwd"]):
        command = process.info["cmdline"] or []
        if "dask_repro.guard" in command and str(checkout) in (process.info["cwd"] or ""):
            with contextlib.suppress(psutil.Error):
                found.add(process.ppid())
    return found


def test_a_killed_worker_has_its_stage_run_again_by_the_other(setup):
    project, workers, uri = setup["project"], setup["workers"], setup["uri"]
    # A longer training of gru, so that there is time to kill the worker under it.
    models = yaml.safe_load((project / "params.yaml").read_text())["models"]
    slow_gru = {**models["gru"], "epochs": 400, "early_stopping_patience": 400}
    set_params(project, {"models": {**models, "gru": slow_gru}})
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    with cluster(workers) as address:
        runner = subprocess.Popen(
            ["python", "-m", "dask_repro", "--scheduler", address, "--env", "MLFLOW_TRACKING_URI"],
            cwd=project,
            env=environment(MLFLOW_TRACKING_URI=uri),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline, killed = time.monotonic() + 180, None
        while killed is None:
            assert time.monotonic() < deadline and runner.poll() is None
            under_way = client.search_runs(
                [experiment.experiment_id],
                filter_string="tags.dvc_stage = 'train@gru-42' and attributes.status = 'RUNNING'",
            )
            for checkout in workers:
                parents = _guard_parents(checkout)
                if under_way and parents:
                    killed = under_way[0]
                    os.kill(parents.pop(), signal.SIGKILL)  # kill -9 of the worker
                    break
            time.sleep(0.5)
        output, _ = runner.communicate(timeout=600)
    assert runner.returncode == 0, output
    deadline = time.monotonic() + 60
    while client.get_run(killed.info.run_id).info.status == "RUNNING":
        assert time.monotonic() < deadline, "the killed worker's run stayed RUNNING"
        time.sleep(1)
    assert client.get_run(killed.info.run_id).info.status == "KILLED"
    link = json.loads((project / "models/gru/seed-42/mlflow_run.json").read_text())
    assert link["run_id"] != killed.info.run_id
    assert client.get_run(link["run_id"]).info.status == "FINISHED"
    assert "up to date" in run(["dvc", "repro"], project, env={"MLFLOW_TRACKING_URI": uri})
