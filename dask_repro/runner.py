"""The run: plans with DVC, hands the tasks to a Dask cluster, then lets ``dvc repro`` record
them in the user's workspace.

The cluster is a ``LocalCluster`` with one worker per core, in this process, unless a
scheduler address is given (``--scheduler``, or Dask's own configuration: the
``DASK_SCHEDULER_ADDRESS`` variable or ``scheduler-address`` in a Dask config file), with
workers started by ``dask worker`` elsewhere.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import dask
from distributed import Client, Future, LocalCluster, as_completed, wait

from dask_repro import task, workspace
from dask_repro.plan import Plan, dvc, make_plan

logger = logging.getLogger("dask_repro")

# How long the tasks of an interrupted run may take to end their stages.
STOP_SECONDS = 90
# The lines of a failed stage's output that the runner shows (the whole of it is in its log).
FAILURE_LINES = 20


class RunnerError(RuntimeError):
    """A problem with the set-up (no cluster, no DVC remote); the message names the fix."""


def connect(scheduler: str | None, workers: int | None) -> Client:
    """A client of the scheduler at ``scheduler`` (or Dask's configured one), else of a new
    ``LocalCluster`` in this process with ``workers`` workers (one per core by default)."""
    address = scheduler or dask.config.get("scheduler-address", None)
    if address:
        try:
            return Client(address, timeout="10s")
        except OSError as error:
            raise RunnerError(
                f"no Dask scheduler answers at {address} ({error}): start one (`dask scheduler`)"
                ", or unset DASK_SCHEDULER_ADDRESS to run on this machine"
            ) from None
    with warnings.catch_warnings():
        # "Port 8787 is already in use": another run's dashboard; this one takes another port.
        warnings.simplefilter("ignore")
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            # Threads in this process: a task only waits on DVC, in processes of its own.
            processes=False,
            silence_logs=logging.CRITICAL,
        )
    return Client(cluster)


def _dashboard(client: Client) -> str | None:
    try:
        services = client.scheduler_info().get("services", {})
    except OSError:
        return None
    return client.dashboard_link if "dashboard" in services else None


def _check_remote_set_up(project: Path, client: Client, snapshot: workspace.Snapshot) -> bool:
    """Whether any worker works outside the user's project; if so, that the project has a
    default DVC remote for the data to go through."""
    remote = client.run(_works_elsewhere, snapshot)
    if not any(remote.values()):
        return False
    if not dvc(["config", "core.remote"], project, check=False).strip():
        elsewhere = ", ".join(worker for worker, away in remote.items() if away)
        raise RunnerError(
            f"workers {elsewhere} work in other checkouts, which exchange data through a DVC "
            "remote: add one (`dvc remote add -d <name> <url>`, committed to .dvc/config)"
        )
    return True


def _works_elsewhere(snapshot: workspace.Snapshot) -> bool:
    return not workspace.works_in_users_project(snapshot, workspace.checkout_of(Path.cwd()))


def _remove_stale_workspaces(project: Path) -> None:
    """Removes the workspaces of earlier runs whose process is gone."""
    root = project / workspace.WORKSPACES
    for folder in root.glob("*-*") if root.exists() else []:
        pid = folder.name.rpartition("-")[2]
        if folder.is_dir() and pid.isdigit() and not _alive(int(pid)):
            workspace.remove_all(project, folder.name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Progress:
    """The console's line per stage."""

    def __init__(self, total: int):
        self.total, self.done = total, 0

    def started(self, event: tuple) -> None:
        message = event[1]
        logger.info("%s: started on %s", message["stage"], message["worker"])

    def finished(self, label: str, result: task.Done) -> None:
        self.done += 1
        where = " (another checkout)" if result.remote else ""
        logger.info(
            "%s: done in %.1f s%s [%d/%d]",
            label, result.seconds, where, self.done, self.total,
        )  # fmt: skip


def _log_path(project: Path, run_id: str, stage: str) -> Path:
    folder = project / workspace.WORKSPACES / "logs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stage.replace('/', '_')}.log"


def _report_failure(project: Path, run_id: str, label: str, failure: task.StageFailed) -> None:
    log = _log_path(project, run_id, failure.stage)
    log.write_text(failure.output)
    lines = failure.output.rstrip().splitlines()[-FAILURE_LINES:]
    logger.error(
        "%s failed; the end of its output (all of it: %s):\n%s",
        label, log, "\n".join(f"    {line}" for line in lines),
    )  # fmt: skip


def run_tasks(
    project: Path,
    client: Client,
    plan: Plan,
    snapshot: workspace.Snapshot,
    run_id: str,
    environment: dict[str, str],
) -> tuple[bool, bool]:
    """Runs the plan's tasks on the cluster; whether all succeeded, and whether any ran in
    another checkout. Stops every task on Ctrl-C (KeyboardInterrupt is raised again after).

    A task is submitted only when its upstream tasks are done and a worker thread is free, in
    DVC's order: Dask places a task that is not a root of a large graph on a worker as soon as
    it is submitted, and a training placed behind another on a busy worker waited while the
    other worker sat idle (its queuing applies to large groups of root tasks only)."""
    progress = _Progress(len(plan.tasks))
    started: set[str] = set()

    labels = {stage: ", ".join(plan.stages_of(stage)) for stage in plan.tasks}
    targets = {label: stage for stage, label in labels.items()}

    def on_start(event: tuple) -> None:
        started.add(targets.get(event[1]["stage"], event[1]["stage"]))
        progress.started(event)

    futures: dict[str, Future] = {}
    stages: dict[str, str] = {}
    waiting = list(plan.tasks)  # DVC's order, as `dvc repro` would run them
    succeeded: set[str] = set()
    finished: set[str] = set()
    completions = as_completed()

    def submit_ready() -> None:
        # Threads now, not at the start: workers may join a cluster during a run.
        free = max(sum(client.nthreads().values()), 1) - (len(futures) - len(finished))
        for stage in [s for s in waiting if set(plan.tasks[s]) <= succeeded][: max(free, 0)]:
            waiting.remove(stage)
            futures[stage] = client.submit(
                task.run_task,
                task.Task(
                    stage,
                    run_id,
                    environment,
                    hand_back=tuple(s for s in plan.stages_of(stage) if s in plan.committed),
                    chain=tuple(plan.stages_of(stage)),
                ),
                snapshot,
                *(futures[before] for before in plan.tasks[stage]),
                key=f"{stage}-{run_id}",
                pure=False,
            )
            stages[str(futures[stage].key)] = stage
            completions.add(futures[stage])

    failed, remote = False, False
    recorder = _Recorder(project, project / workspace.WORKSPACES / run_id / "handed-back")
    client.subscribe_topic(task.STARTED_TOPIC, on_start)
    try:
        with warnings.catch_warnings():
            # Each task carries the snapshot, so that a task whose worker dies can run
            # elsewhere (data scattered to that worker would go with it); Dask warns of a large
            # graph when the workspace's edits are large.
            warnings.simplefilter("ignore", UserWarning)
            submit_ready()
            for future in completions:
                stage = stages[str(future.key)]
                finished.add(stage)
                if future.status == "finished":
                    result = future.result()
                    _log_path(project, run_id, stage).write_text(result.output)
                    progress.finished(labels[stage], result)
                    remote |= result.remote
                    succeeded.add(stage)
                    submit_ready()  # Before the recording: a free worker waits for nothing.
                    recorder.record(
                        [s for s in plan.stages_of(stage) if s in plan.committed], result.files
                    )
                elif future.status != "cancelled":  # Cancelled: after another stage failed.
                    error = future.exception()
                    if isinstance(error, task.StageFailed) and error.stage == stage:
                        _report_failure(project, run_id, labels[stage], error)
                    elif not isinstance(error, task.StageFailed):
                        logger.error("%s failed: %s", labels[stage], error)
                    # As `dvc repro`: no stage starts after a failure; those under way finish,
                    # and DVC's run-cache keeps them for the next run.
                    failed = True
                    waiting.clear()
    except KeyboardInterrupt:
        waiting.clear()
        recorder.close(cancel=True)
        _stop(client, futures, started)
        raise
    finally:
        client.unsubscribe_topic(task.STARTED_TOPIC)
    recorder.close()
    return not failed, remote


class _Recorder:
    """Records the stages whose outputs a task hands back (plan.records_lost_outputs) as the
    task finishes: moves the outputs into the user's workspace (each file whole: a rename) and
    has DVC record them (`dvc commit`); for a stage whose dvc.lock entry names outputs in no
    cache, DVC would run the stage again rather than restore it from the run-cache.

    One `dvc commit` at a time (they share the workspace's dvc.lock), in a thread beside the
    tasks still running: done after the last task instead, in a fresh clone, it took 12 s of
    the run's 236 s while the workers sat idle."""

    def __init__(self, project: Path, staging: Path):
        self.project, self.staging = project, staging
        self.stages: list[str] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="dask-repro-commit"
        )
        self._commits: list[concurrent.futures.Future] = []

    def record(self, stages: list[str], files: dict[str, bytes]) -> None:
        if not stages:
            return
        # Written whole under the run's folder first, so that the workspace gets whole files.
        folder = self.staging / str(len(self._commits))
        for relative, content in files.items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        self.stages += stages
        self._commits.append(self._pool.submit(self._commit, stages, folder))

    def _commit(self, stages: list[str], folder: Path) -> None:
        for staged in sorted(path for path in folder.rglob("*") if path.is_file()):
            target = self.project / staged.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.replace(target)
        dvc(["commit", "--force", "--no-relink", "--quiet", *stages], self.project)

    def close(self, cancel: bool = False) -> None:
        """Waits for the recording under way (and, unless ``cancel``, the ones queued).

        Raises:
            DvcError: `dvc commit` failed.
        """
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        if cancel:
            return
        for commit in self._commits:
            commit.result()
        if self.stages:
            logger.info(
                "Recorded %d stage(s) whose recorded outputs were lost (dvc commit, as their "
                "tasks finished)", len(self.stages),
            )  # fmt: skip


def _stop(client: Client, futures: dict[str, Future], started: set[str]) -> None:
    """Stops every running task as Ctrl-C would, cancels the others, and waits for the stages
    under way to end."""
    # Workers in this process share one list of guards: each guard once.
    stopped = set().union(*client.run(task.stop_all).values())
    client.cancel([future for stage, future in futures.items() if stage not in started])
    if stopped:
        logger.error("Interrupted: stopping %d running stage(s)", len(stopped))
    under_way = [future for stage, future in futures.items() if stage in started]
    try:
        wait(under_way, timeout=STOP_SECONDS)
    except Exception as error:  # A task cancelled as it started, or one past the time-out.
        logger.debug("Waiting for the stopped tasks: %s", error)


def record(project: Path, pull: bool) -> int:
    """``dvc repro`` in the user's workspace: restores every task's outputs from the run-cache
    (fetched from the DVC remote first, if tasks ran elsewhere) and runs what is left."""
    if pull:
        subprocess.run(["dvc", "fetch", "--run-cache", "--quiet"], cwd=project, check=False)
    return subprocess.run(["dvc", "repro", *(["--pull"] if pull else [])], cwd=project).returncode


def run(
    project: Path,
    connect_client: Callable[[], Client],
    environment: dict[str, str],
) -> int:
    """Runs the pipeline of ``project``; returns the exit status of the run.

    Raises:
        RunnerError, DvcError: A problem of the set-up, or of the pipeline, that DVC names.
    """
    plan = make_plan(project)
    if not plan.tasks:
        return record(project, pull=False)
    _remove_stale_workspaces(project)
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    snapshot = dataclasses.replace(workspace.take_snapshot(project), forgotten=tuple(plan.tasks))
    started = time.monotonic()
    with connect_client() as client:
        pull = _check_remote_set_up(project, client, snapshot)
        workers = len(client.scheduler_info().get("workers", {}))
        dashboard = _dashboard(client)
        logger.info(
            "Running %d stage(s) as %d task(s) on %d Dask worker(s)%s; then `dvc repro` records "
            "them%s",
            sum(len(plan.stages_of(task)) for task in plan.tasks), len(plan.tasks), workers,
            f" (dashboard: {dashboard})" if dashboard else "",
            f" and runs {', '.join(plan.left)}" if plan.left else "",
        )  # fmt: skip
        try:
            succeeded, ran_elsewhere = run_tasks(
                project, client, plan, snapshot, run_id, environment
            )
        finally:
            with contextlib.suppress(Exception):  # A lost cluster keeps its workspaces.
                client.run(task.clean_up, run_id)
            workspace.remove_all(project, run_id)
    if not succeeded:
        logger.error(
            "Stopped after a failure; the stages that ran are kept in DVC's run-cache, and "
            "the next run restores them"
        )
        return 1
    logger.info("The tasks took %.1f s; recording them with dvc repro", time.monotonic() - started)
    return record(project, pull=pull or ran_elsewhere)
