"""Training ahead (imdb_sentiment/ahead.py): how a stage takes a training that ran ahead of
it, and how a worker ends. Stand-in workers here; tests/test_pipeline.py and
tests/test_reproducibility.py run real ones under `dvc repro`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from imdb_sentiment import ahead
from imdb_sentiment.paths import ProjectFiles
from tests import test_dvc_yaml
from tests.conftest import PROJECT_ROOT, tiny_params

# What DVC's command line says it will run: `dvc repro`; `-f`; `--no-run-cache`; `-s <stage>`.
WHOLE = ahead.DvcRun(whole_pipeline=True)
FORCED = ahead.DvcRun(whole_pipeline=True, forced=True, restores_from_run_cache=False)
NO_RUN_CACHE = ahead.DvcRun(whole_pipeline=True, restores_from_run_cache=False)
SOME = ahead.DvcRun()

# A stand-in worker: marks its training done, waits for the stage to take it, then notes that
# it went on to the end (where a worker ends its MLflow run).
WAITS_FOR_THE_CLAIM = """
import pathlib, sys, time
stash = pathlib.Path(sys.argv[1])
print("Epoch 1/1 - the worker's log", flush=True)
(stash / "trained").touch()
while not (stash / "claimed").exists():
    time.sleep(0.05)
time.sleep(0.5)
(stash.parent / "worker-ended").touch()
"""


def start_stand_in(project: ProjectFiles, script: str) -> tuple[Path, subprocess.Popen]:
    stash = project.trained_ahead_dir("gru", 7)
    (stash / "outputs" / "models" / "gru" / "seed-7").mkdir(parents=True)
    (stash / "outputs" / "models" / "gru" / "seed-7" / "model.keras").write_text("trained ahead")
    log = (stash / "log.txt").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-c", script, str(stash)], stdout=log, stderr=subprocess.STDOUT
    )
    (stash / "worker.pid").write_text(str(worker.pid))
    return stash, worker


def test_a_stage_takes_the_outputs_of_a_training_ahead_once_its_worker_has_ended(tmp_path, capsys):
    project = ProjectFiles(tmp_path)
    stash, worker = start_stand_in(project, WAITS_FOR_THE_CLAIM)

    assert ahead._take(project, ahead._Stash(stash))

    assert project.model_file("gru", 7).read_text() == "trained ahead"
    # The stage returned only after the worker ended (its MLflow run closed), not at the claim.
    assert (stash.parent / "worker-ended").exists()
    assert worker.poll() is not None
    assert not stash.exists()
    # The worker's log is shown as the stage's own: a user sees its epochs.
    assert "Epoch 1/1 - the worker's log" in capsys.readouterr().out


def test_a_stage_trains_itself_when_its_training_ahead_ended_without_outputs(tmp_path, caplog):
    project = ProjectFiles(tmp_path)
    stash, worker = start_stand_in(
        project, "import sys; print('training diverged', flush=True); sys.exit(1)"
    )
    worker.wait()

    assert not ahead._take(project, ahead._Stash(stash))

    assert not project.model_file("gru", 7).exists()
    assert not stash.exists()
    failed_log = stash.with_name(f"{stash.name}.failed.txt")
    assert "training diverged" in failed_log.read_text()
    assert str(failed_log) in caplog.text


def test_a_worker_ends_as_an_interrupted_stage_when_dvc_has_ended(tmp_path):
    # The worker's SIGTERM is what ends its MLflow run KILLED (tracking/store.py).
    stand_in_dvc = subprocess.Popen(["sleep", "60"])
    ended = tmp_path / "ended"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pathlib, signal, sys, time\n"
            "from imdb_sentiment import ahead\n"
            f"signal.signal(signal.SIGTERM, lambda *_: (pathlib.Path({str(ended)!r}).touch(),"
            " sys.exit(0)))\n"
            f"ahead._end_with({stand_in_dvc.pid})\n"
            "time.sleep(60)\n",
        ],
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        time.sleep(1.5)
        assert worker.poll() is None, "the worker ended while DVC still ran"
        stand_in_dvc.kill()
        stand_in_dvc.wait()
        assert worker.wait(timeout=10) == 0
        assert ended.exists()
    finally:
        for process in (worker, stand_in_dvc):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["gru", "7"], (["gru", "7"], None)),
        (["gru", "7", ahead.WORKER_FLAG, "1234"], (["gru", "7"], 1234)),
    ],
)
def test_worker_arguments(argv, expected):
    assert ahead.worker_arguments(argv) == expected


def test_a_stage_counts_as_one_dvc_will_run_until_its_inputs_match_dvc_lock_and_its_outputs_exist(
    tmp_path,
):
    project = ProjectFiles(tmp_path)
    shutil.copy(PROJECT_ROOT / "dvc.yaml", project.pipeline_file)
    project.params_file.write_text(yaml.safe_dump(tiny_params()))
    now = ahead._Inputs(project).now("gru")
    # What DVC writes after running train@gru-42 with these inputs.
    entry = {
        "deps": [{"path": path, "md5": md5} for path, md5 in now["deps"].items()],
        "params": {"params.yaml": now["params"]},
    }
    project.lock_file.write_text(yaml.safe_dump({"stages": {"train@gru-42": entry}}))
    # A fresh clone: dvc.lock is up to date, the outputs are not there.
    assert ahead._Inputs(project).will_run("gru", 42, WHOLE)
    for output in test_dvc_yaml.declared_outputs("train", "gru", 42):
        target = project.root / output.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")
    assert not ahead._Inputs(project).will_run("gru", 42, WHOLE)
    assert ahead._Inputs(project).will_run("gru", 42, FORCED)
    # Another seed, another model's entry missing from dvc.lock, a changed param.
    assert ahead._Inputs(project).will_run("gru", 7, WHOLE)
    assert ahead._Inputs(project).will_run("lstm", 42, WHOLE)
    params = yaml.safe_load(project.params_file.read_text())
    params["train"]["learning_rate"] = 0.5
    project.params_file.write_text(yaml.safe_dump(params))
    assert ahead._Inputs(project).will_run("gru", 42, WHOLE)


def test_a_stage_that_dvc_restores_from_its_run_cache_is_not_one_it_runs(tmp_path):
    from dvc.stage.cache import _get_cache_hash

    project = ProjectFiles(tmp_path)
    (project.root / ".dvc").mkdir()
    shutil.copy(PROJECT_ROOT / "dvc.yaml", project.pipeline_file)
    project.params_file.write_text(yaml.safe_dump(tiny_params()))
    inputs = ahead._Inputs(project)
    for path in inputs.now("gru")["deps"]:
        (project.root / path).parent.mkdir(parents=True, exist_ok=True)
        (project.root / path).write_text(f"the content of {path}")
    now = ahead._Inputs(project).now("gru")
    assert ahead._Inputs(project).will_run("gru", 7, WHOLE)
    # DVC's run-cache entry for train@gru-7 run with these inputs, in dvc.lock's form (deps
    # and outputs in path order), filed under DVC's own key.
    entry = {
        "cmd": "python -m stages.train gru 7",
        "deps": [
            {"path": path, "hash": "md5", "md5": now["deps"][path], "size": 20}
            for path in sorted(now["deps"])
        ],
        "params": {"params.yaml": now["params"]},
        "outs": [
            {"path": str(path.relative_to(PROJECT_ROOT)), "hash": "md5", "md5": "0" * 32}
            for path in sorted(test_dvc_yaml.declared_outputs("train", "gru", 7))
        ],
    }
    key = _get_cache_hash(entry, key=True)
    (project.root / ".dvc" / "cache" / "runs" / key[:2] / key).mkdir(parents=True)

    assert not ahead._Inputs(project).will_run("gru", 7, WHOLE)
    # `dvc repro --no-run-cache` or `-f` runs it anyway; another seed has no entry.
    assert ahead._Inputs(project).will_run("gru", 7, NO_RUN_CACHE)
    assert ahead._Inputs(project).will_run("gru", 7, FORCED)
    assert ahead._Inputs(project).will_run("gru", 8, WHOLE)


@pytest.mark.parametrize(
    ("command_line", "expected"),
    [
        (["/venv/bin/python3", "/venv/bin/dvc", "repro"], WHOLE),
        (["dvc", "repro", "--pull", "-k"], WHOLE),
        (["python", "-m", "dvc", "repro", "-f"], FORCED),
        (["dvc", "repro", "--no-run-cache"], NO_RUN_CACHE),
        (["dvc", "exp", "run", "-S", "models.lstm.units=128", "-n", "wide"], WHOLE),
        (["dvc", "exp", "run", "--set-param=train.seeds=[1,2]", "--force"], FORCED),
        # Some stages only, or not in the project: DVC may not reach a stage trained ahead.
        (["dvc", "repro", "train@lstm-42"], SOME),
        (["dvc", "repro", "-s", "train@lstm-42"], SOME),
        (["dvc", "repro", "--dry"], SOME),
        (["dvc", "exp", "run", "--queue", "-S", "train.units=8"], SOME),
        (["dvc", "exp", "run", "--temp"], SOME),
        (["dvc", "exp", "exec-run", "--infofile", "x.run"], SOME),
        (["dvc", "queue", "start"], SOME),
        (["python", "-c", "import subprocess"], SOME),
    ],
)
def test_only_a_dvc_command_that_runs_every_changed_stage_trains_ahead(command_line, expected):
    assert ahead.dvc_run(command_line) == expected
