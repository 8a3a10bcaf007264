"""A task: one stage, run by DVC in a workspace of its own, on whichever Dask worker takes it.

In the workspace (``workspace.py``), ``dvc repro <stage>`` restores the stage's upstream stages
from DVC's cache and run-cache (they ran in other tasks, or were up to date) and runs the stage,
so that DVC records its run in the run-cache under the same key as in the user's workspace.
On another machine, the task first fetches the run-cache from the DVC remote, pulls what it
needs, and pushes its outputs and run-cache entry back.

The command runs under ``guard.py``: a task stopped by the runner (Ctrl-C), or whose worker
dies, ends its stage as Ctrl-C would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dask_repro import workspace
from dask_repro.workspace import Snapshot

# The event topic on which tasks say that they started.
STARTED_TOPIC = "dask-repro-started"

# The guard processes this worker process runs, to stop them all on the runner's request.
_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()
# Each worker thread's workspace of a run, by (checkout, run, thread): the run's next task on
# that thread reuses it, with what DVC knows there already (the hashes of what it restored),
# instead of a new worktree and restoring every input again (about 2-3 s a task).
_workspaces: dict[tuple[str, str, int], Path] = {}


@dataclass(frozen=True)
class Task:
    stage: str  # the last stage of the task's chain: `dvc repro <stage>` runs them all
    run_id: str
    # Variables set in the stage's environment (the runner's own values of the ones it passes on).
    environment: dict[str, str] = field(default_factory=dict)
    # The stages whose outputs the task hands back (plan.records_lost_outputs).
    hand_back: tuple[str, ...] = ()
    # Every stage of its chain, in order, whose outputs and run-cache entries go to the remote.
    chain: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Its stages, as the console names the task."""
        return ", ".join(self.chain or (self.stage,))


@dataclass(frozen=True)
class Done:
    stage: str
    seconds: float
    worker: str
    remote: bool
    output: str
    # The stage's output files, by path in the project, when the task hands them back.
    files: dict[str, bytes] = field(default_factory=dict)


class StageFailed(Exception):
    """A stage's run failed; carries its exit status and its output."""

    def __init__(self, stage: str, status: int, output: str):
        super().__init__(stage, status, output)
        self.stage, self.status, self.output = stage, status, output

    def __str__(self) -> str:
        return f"{self.stage} exited with {self.status}"


def _announce_start(stage: str) -> str:
    """Tells the runner this task started; the worker's address (or "here")."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return "here"
    # A LocalCluster numbers its workers; others are known by their address.
    # An in-process worker's address ends with its number there.
    if worker.address.startswith("inproc://"):
        name = f"worker {worker.address.rsplit('/', 1)[-1]}"
    else:
        name = f"worker {worker.name}" if str(worker.name).isdigit() else worker.address
    worker.log_event(STARTED_TOPIC, {"stage": stage, "worker": name})
    return name


def _guarded(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Runs ``command`` under the guard; its exit status and its output."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dask_repro.guard", *command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        # A terminal's Ctrl-C reaches the runner alone, which stops each task once, through
        # its guard (stop_all): a second interrupt could cut a stage's clean-up short.
        start_new_session=True,
    )
    with _running_lock:
        _running.add(process)
    try:
        output = process.stdout.read() if process.stdout else ""
        return process.wait(), output
    finally:
        with _running_lock:
            _running.discard(process)


def _dvc(arguments: list[str], cwd: Path, env: dict[str, str], stage: str) -> str:
    status, output = _guarded(["dvc", *arguments], cwd, env)
    if status != 0:
        raise StageFailed(stage, status, output)
    return output


def run_task(task: Task, snapshot: Snapshot, *upstream: Done) -> Done:
    """Runs ``task`` in a workspace of its own made from ``snapshot`` (after ``upstream``, the
    tasks it waits for)."""
    started = time.monotonic()
    worker = _announce_start(task.label)
    checkout = workspace.checkout_of(Path.cwd())
    remote = not workspace.works_in_users_project(snapshot, checkout)
    key = (str(checkout), task.run_id, threading.get_ident())
    folder = _workspaces.get(key)
    if folder is None or not folder.exists():
        name = f"{task.run_id}/{uuid.uuid4().hex[:8]}"
        folder = _workspaces[key] = workspace.create(checkout, snapshot, name)
    env = {**os.environ, **task.environment}
    if remote:
        # So that a stage can tell that what lives beside the user's project (a store in a
        # file, say) is out of its reach.
        env[workspace.ORIGIN_VARIABLE] = f"{snapshot.machine}:{snapshot.project}"
    try:
        output = ""
        if remote:
            output += _dvc(["fetch", "--run-cache", task.stage], folder, env, task.stage)
        output += _dvc(
            ["repro", *(["--pull"] if remote else []), task.stage], folder, env, task.stage
        )
        if remote:
            # Every stage of the chain, so that each of them is restorable from the remote.
            pushed = task.chain or (task.stage,)
            output += _dvc(["push", "--run-cache", *pushed], folder, env, task.stage)
        files = {
            path: data for stage in task.hand_back for path, data in _outputs(folder, stage).items()
        }
    except BaseException:
        # What a failed or stopped stage left there is not for the next task.
        _workspaces.pop(key, None)
        workspace.remove(checkout, folder)
        raise
    return Done(task.stage, time.monotonic() - started, worker, remote, output, files)


def clean_up(run_id: str) -> int:
    """Removes this worker process's workspaces of run ``run_id``; returns how many."""
    done = [key for key in _workspaces if key[1] == run_id]
    for key in done:
        workspace.remove(Path(key[0]), _workspaces.pop(key))
    return len(done)


def _outputs(folder: Path, stage: str) -> dict[str, bytes]:
    """The output files of ``stage`` as DVC recorded them in the workspace's dvc.lock (its
    documented format), by path from the project's root."""
    pipeline, _, name = stage.rpartition(":")
    base = Path(pipeline).parent if pipeline else Path()
    entry = yaml.safe_load((folder / base / "dvc.lock").read_text())["stages"][name]
    files = {}
    for out in entry.get("outs", []):
        path = folder / base / out["path"]
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in found:
            files[file.relative_to(folder).as_posix()] = file.read_bytes()
    return files


def stop_all() -> list[str]:
    """Stops every task this worker process runs, as Ctrl-C would; returns their guards, as
    "machine:pid". Returns at once: each task ends when its stage has cleaned up."""
    with _running_lock:
        running = list(_running)
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    return [f"{workspace.machine_id()}:{process.pid}" for process in running]
