"""`python -m dask_repro` on the toy pipeline: what `dvc repro` writes, side by side; a failed
stage said once; Ctrl-C ends every stage and leaves the workspace as it was."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.dask_repro.conftest import environment, make_toy, run

RUNNER = [sys.executable, "-m", "dask_repro", "--workers", "2"]


def test_the_runner_writes_what_dvc_repro_writes(tmp_path: Path):
    by_dvc, by_runner = make_toy(tmp_path / "dvc"), make_toy(tmp_path / "runner")
    for toy in (by_dvc, by_runner):  # An uncommitted edit reaches every stage.
        (toy / "seed.txt").write_text("edited\n")
    run(["dvc", "repro"], by_dvc)
    output = run(RUNNER, by_runner)
    for stage in ("a", "b@1", "b@2", "b@3"):
        assert f"{stage}: done in" in output
        assert f"Stage '{stage}' is cached - skipping run" in output
    assert "Running stage 'c'" in output  # Its output is not cached: the final dvc repro ran it.
    for name in ("dvc.lock", "a.txt", "b1.txt", "b2.txt", "b3.txt", "c.txt"):
        assert (by_runner / name).read_bytes() == (by_dvc / name).read_bytes(), name
    assert (by_runner / "c.txt").read_text() == "edited\na\nb1\nedited\na\nb2\nc\n"
    assert "up to date" in run(["dvc", "repro"], by_runner)
    # No task's workspace is left.
    assert len(run(["git", "worktree", "list"], by_runner).splitlines()) == 1
    assert not [p for p in (by_runner / ".dvc/tmp/dask-repro").iterdir() if p.name[0].isdigit()]


def test_a_fresh_clone_runs_each_stage_once(tmp_path: Path):
    # Its committed dvc.lock records every stage with outputs in no cache: DVC would run each
    # one again rather than restore it from the run-cache, in the workspace and in every task
    # after it.
    origin = make_toy(tmp_path / "origin")
    run(["dvc", "repro"], origin)
    run(["git", "add", "-A"], origin)
    run(["git", "commit", "-qm", "a run"], origin)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    runs = tmp_path / "runs.txt"
    output = run(RUNNER, clone, TOY_RUNS=str(runs))
    # c's output is in git, and up to date.
    assert sorted(runs.read_text().split()) == ["a", "b1", "b2", "b3"], output
    assert "Recorded 4 stage(s) whose recorded outputs were lost" in output
    assert "up to date" in run(["dvc", "repro"], clone)
    assert (clone / "c.txt").read_text() == (origin / "c.txt").read_text()


def test_a_task_starts_on_the_first_worker_free_not_behind_a_busy_one(toy: Path):
    slow = "b1"
    # b@1 and b@2 start together, one of them long: b@3 must start when the other's worker is
    # free, not wait behind the long one (on whichever worker Dask would have placed it).
    run(["dvc", "repro", "a"], toy)  # So that the b stages are the graph's roots.
    (toy / f"sleep-{slow}").write_text("12")
    output = run(RUNNER, toy)
    lines = output.splitlines()

    def line_of(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    assert line_of("b@3: started") < line_of(f"b@{slow[1]}: done in"), output


def test_a_failed_stage_says_its_own_message_once_and_the_others_are_kept(toy: Path):
    (toy / "fail-b2").write_text("b2 cannot go on: delete fail-b2")
    output = run(RUNNER, toy, expect_failure=True)
    assert output.count("b2 cannot go on: delete fail-b2") == 1
    assert "b@2 failed; the end of its output" in output
    assert not (toy / "dvc.lock").exists()  # Nothing recorded in the workspace.
    (toy / "fail-b2").unlink()
    # The stages that succeeded are in DVC's run-cache: the next run restores them.
    rerun = run(RUNNER, toy)
    assert "b@2: done in" in rerun and "Running stage 'c'" in rerun


def test_ctrl_c_ends_every_stage_and_leaves_the_workspace_as_it_was(toy: Path):
    for name in ("b1", "b2", "b3"):
        (toy / f"sleep-{name}").write_text("60")
    runner = subprocess.Popen(
        RUNNER,
        cwd=toy,
        env=environment(),
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen, deadline = "", time.monotonic() + 60
    while seen.count(": started on") < 3:  # a, then two of the b's, side by side.
        assert time.monotonic() < deadline, seen
        seen += runner.stdout.readline()
    time.sleep(1)
    os.killpg(runner.pid, signal.SIGINT)  # Ctrl-C in the terminal.
    assert runner.wait(timeout=60) == 130
    seen += runner.stdout.read()
    assert "Interrupted: stopping 2 running stage(s)" in seen
    assert not subprocess.run(["pgrep", "-f", f"{toy}.*make.py"], check=False).stdout
    assert not (toy / "dvc.lock").exists() and not (toy / "b1.txt").exists()
    assert len(run(["git", "worktree", "list"], toy).splitlines()) == 1
    shutil.rmtree(toy / ".dvc/tmp/dask-repro/logs")
    assert [p.name for p in (toy / ".dvc/tmp/dask-repro").iterdir()] == ["git.lock"]


def test_params_set_on_the_command_line_reach_the_stages(toy: Path):
    (toy / "params.yaml").write_text("seed_text: one  # the seed\n")
    (toy / "dvc.yaml").write_text(
        (toy / "dvc.yaml")
        .read_text()
        .replace("deps: [make.py, seed.txt]", "deps: [make.py, seed.txt]\n    params: [seed_text]")
    )
    run([*RUNNER, "-S", "seed_text=two"], toy)
    assert "seed_text: two  # the seed" in (toy / "params.yaml").read_text()
    assert "seed_text: two" in (toy / "dvc.lock").read_text()


def test_two_runs_in_two_clones_at_once_do_not_collide(tmp_path: Path):
    toys = [make_toy(tmp_path / name) for name in ("first", "second")]
    for toy in toys:
        (toy / "sleep-b1").write_text("3")
    runners = [
        subprocess.Popen(
            RUNNER,
            cwd=toy,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for toy in toys
    ]
    for runner in runners:
        output, _ = runner.communicate(timeout=300)
        assert runner.returncode == 0, output
    for toy in toys:
        assert (toy / "c.txt").read_text() == "seed\na\nb1\nseed\na\nb2\nc\n"
        assert "up to date" in run(["dvc", "repro"], toy)
