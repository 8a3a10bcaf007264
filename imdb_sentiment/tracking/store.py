"""The MLflow store and a stage's run in it: which store, opening a run, and always closing it.

Stages open their run here, at the edge. A run that fails ends FAILED, one interrupted by Ctrl-C
or SIGTERM ends KILLED: none is left RUNNING (one whose process was killed is marked FAILED by
the next stage on the same host).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import mlflow
import psutil
from filelock import FileLock
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from imdb_sentiment import paths
from imdb_sentiment.cli import StageError
from imdb_sentiment.disk import disk_full_from, is_disk_full
from imdb_sentiment.tracking.provenance import recorded_run_id, source_tags

logger = logging.getLogger(__name__)


class TrackingError(StageError):
    """The tracking store cannot be used; the message says which store and what to do."""


def default_tracking_uri() -> str:
    """The SQLite store that ``mlflow ui`` opens when it is started in the project root
    (MLflow's default, resolved from the project root, not the cwd)."""
    return f"sqlite:///{paths.this_project().users_project / 'mlflow.db'}"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else :func:`default_tracking_uri`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def _local_artifact_location(experiment_name: str) -> str | None:
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, so the variable's presence does not
    # tell whether the user chose the store: its value does.
    if tracking_uri() != default_tracking_uri():
        return None  # A server or a store the user configured knows its own artifact root.
    return (paths.this_project().users_project / "mlartifacts" / experiment_name).as_uri()


def _experiment_id(experiment_name: str) -> str:
    """The id of ``experiment_name``, created with artifacts beside the store if it is new."""
    # Two stages starting at once (`dvc queue start -j 2`) would both create the SQLite
    # tables, or the experiment, and one would fail: the first to come does it alone.
    started = time.monotonic()
    lock = (
        FileLock(paths.this_project().users_project / "mlflow.db.lock")
        if tracking_uri() == default_tracking_uri()
        else nullcontext()
    )
    try:
        with lock:
            experiment = mlflow.get_experiment_by_name(experiment_name)
            if experiment is not None:
                return experiment.experiment_id
            try:
                return mlflow.create_experiment(
                    experiment_name, artifact_location=_local_artifact_location(experiment_name)
                )
            except mlflow.exceptions.MlflowException as error:
                # On a shared server another process (a parallel experiment, a teammate) may
                # have created it since we looked: no lock spans machines.
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                created = mlflow.get_experiment_by_name(experiment_name)
                if created is None:  # Created and deleted again since: let the caller say so.
                    raise
                return created.experiment_id
    except Exception as error:
        raise _store_problem(error, "finding the experiment", time.monotonic() - started) from error


# The signal that stopped this process's run, if one did (set by the handler below).
_stopped_by: str | None = None


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    global _stopped_by
    _stopped_by = signal.Signals(signum).name
    raise KeyboardInterrupt(f"stopped by signal {_stopped_by}")


def check_server(uri: str, timeout_seconds: float = 5.0) -> None:
    """Fails fast when a tracking server does not answer, instead of after MLflow's retries
    (minutes), and before any training."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_seconds):
            pass
    except (OSError, ValueError) as error:
        raise TrackingError(
            f"the MLflow tracking server {uri} does not answer ({getattr(error, 'reason', error)})"
            ": start it, or unset MLFLOW_TRACKING_URI to use mlflow.db in the project root."
        ) from None


def _process_tags() -> dict[str, str]:
    """Which process, on which host and in which project folder, holds the run open."""
    return {
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
        "project": str(paths.this_project().root),
    }


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_orphaned_runs(experiment_id: str) -> list[str]:
    """Marks FAILED the runs of this host left RUNNING by a process that is gone (killed by
    SIGKILL or the OOM killer, or unable to reach its server when it ended).

    Returns:
        The ids of the runs it ended.
    """
    client = mlflow.MlflowClient()
    running = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.host = '{socket.gethostname()}'",
    )
    orphans = [run for run in running if not _is_alive(int(run.data.tags.get("pid", "0")))]
    for orphan in orphans:
        client.set_tag(orphan.info.run_id, "ended_by", "cleanup: its process was gone")
        client.set_terminated(orphan.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        logger.warning("Marked MLflow run %s FAILED: its process had died", orphan.info.run_id)
    return [orphan.info.run_id for orphan in orphans]


def end_unrecorded_runs(experiment_id: str) -> list[str]:
    """Marks FAILED the earlier runs of this DVC stage that ended FINISHED but whose outputs DVC
    never recorded (it failed after the stage's process, say, caching them on a full disk): any
    finished run of the stage in this project newer than the one dvc.lock records. Only under
    ``dvc repro`` of the workspace, for a stage whose outputs name their run (training).

    Returns:
        The ids of the runs it marked.
    """
    stage = os.environ.get("DVC_STAGE")
    if not stage or os.environ.get("DVC_EXP_NAME"):
        return []
    recorded = recorded_run_id(stage)
    if recorded is None:
        return []
    client = mlflow.MlflowClient()
    try:
        since = client.get_run(recorded).info.start_time
    except MlflowException:
        return []
    finished = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'FINISHED' and tags.dvc_stage = '{stage}' "
        f"and attributes.start_time > {since}",
    )
    project = str(paths.this_project().root)
    unrecorded = [
        run
        for run in finished
        if run.info.run_id != recorded
        and run.data.tags.get("project") == project
        and "dvc_exp_name" not in run.data.tags
    ]
    for run in unrecorded:
        client.set_tag(
            run.info.run_id,
            "ended_by",
            f"cleanup: DVC did not record its outputs (found by the next run of {stage})",
        )
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        logger.warning(
            "Marked MLflow run %s FAILED: its stage ran, but DVC did not record its outputs",
            run.info.run_id,
        )
    return [run.info.run_id for run in unrecorded]


def _restore(handlers: dict) -> None:
    for stop, handler in handlers.items():
        signal.signal(stop, handler)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _end_run(run_id: str, status: str) -> bool:
    """Ends the active run with ``status``; False if the store would not take it."""
    try:
        mlflow.end_run(status)
    except Exception as error:
        # The server went away, or the store's disk is full: the run stays RUNNING there until
        # a later stage on this host ends it (end_orphaned_runs). The error that ended the
        # stage matters more, and comes next.
        logger.warning(
            "MLflow run %s stays RUNNING in %s until the next stage on this machine marks it "
            "FAILED: the store would not take its end (%s)",
            run_id,
            tracking_uri(),
            _first_line(error),
        )
        logger.debug("Ending the run", exc_info=True)
        mlflow.tracking.fluent._active_run_stack.get().clear()
        return False
    return True


def _holders(store: Path) -> str:
    """The processes that have ``store`` open, as "pid 123 (python -m stages.train …)", or
    "pid 123 (train lstm 42, a warm fork)" for a stage forked from a warm interpreter, whose
    command line is the server's (prefork names the fork after its command)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "name"]):
        if process.pid == os.getpid():
            continue
        try:
            if any(Path(file.path) == store for file in process.open_files()):
                command = " ".join(process.info["cmdline"] or [])
                if "prefork.server" in command:
                    command = f"{process.info['name']}, a warm fork"
                found.append(f"pid {process.pid} ({command[:80]})")
        except (psutil.Error, OSError):
            continue
    return ", ".join(found)


def _store_file() -> Path | None:
    """The SQLite file of the store, or None for a server."""
    uri = tracking_uri()
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _store_problem(error: BaseException, doing: str, waited_seconds: float) -> StageError:
    """The one-line error for a store that failed while ``doing``: busy (with who holds it and
    how long this process waited), full, or else unusable."""
    store = _store_file()
    if is_disk_full(error):
        return disk_full_from(error, store)
    if store is not None and "database is locked" in str(error):
        holders = _holders(store)
        by = f"held by {holders}" if holders else "held by another process"
        return TrackingError(
            f"the MLflow store {store} is busy ({by}); {doing} waited {waited_seconds:.0f} s for "
            "it. Run again when that process is done (or stop it)"
        )
    uri = tracking_uri()
    hint = (
        "Unset MLFLOW_TRACKING_URI to use mlflow.db in the project root"
        if os.environ.get("MLFLOW_TRACKING_URI") and uri != default_tracking_uri()
        else "Check that its folder is writable"
    )
    return TrackingError(f"cannot use the MLflow tracking store {uri} ({doing}): "
                         f"{_first_line(error)}. {hint}")  # fmt: skip


# How often a training run samples CPU, memory and disk (MLflow's system metrics), unless
# MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL says otherwise: a few dozen points for a training.
SYSTEM_METRICS_SECONDS = 5


@contextmanager
def run(
    experiment_name: str,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
    system_metrics: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """Opens an MLflow run (a new one, or ``run_id`` again) and always closes it.

    The run ends FINISHED on success, KILLED on Ctrl-C or SIGTERM, FAILED on any other error.
    A new run is tagged with where its code came from; a reopened one keeps the tags it has.
    With ``system_metrics``, MLflow samples the machine's CPU and memory use while it runs.
    """
    uri = tracking_uri()
    check_server(uri)
    mlflow.set_tracking_uri(uri)
    experiment_id = _experiment_id(experiment_name)
    end_orphaned_runs(experiment_id)
    if run_id is None:
        end_unrecorded_runs(experiment_id)
    global _stopped_by
    _stopped_by = None
    previous_handlers = {
        stop: signal.signal(stop, _raise_keyboard_interrupt)
        for stop in (signal.SIGINT, signal.SIGTERM)
    }
    started = time.monotonic()
    try:
        if system_metrics and not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
            mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_SECONDS)
        active_run = mlflow.start_run(
            run_id=run_id,
            experiment_id=None if run_id else experiment_id,
            run_name=run_name,
            tags={**({} if run_id else source_tags()), **(tags or {}), **_process_tags()},
            log_system_metrics=system_metrics,
        )
    except Exception as error:
        _restore(previous_handlers)
        raise _store_problem(error, "starting a run", time.monotonic() - started) from error
    status = RunStatus.FAILED
    try:
        yield active_run
        status = RunStatus.FINISHED
    except KeyboardInterrupt:
        status = RunStatus.KILLED
        raise
    except Exception as error:
        if _stopped_by is not None:
            # The interrupt, raised inside a C extension's call back into Python, can come out
            # of it as another error (TensorFlow's training step: "SystemError: ... bad
            # argument to internal function"): the run was stopped all the same.
            status = RunStatus.KILLED
            raise KeyboardInterrupt(f"stopped by signal {_stopped_by}") from error
        if is_disk_full(error):
            raise disk_full_from(error, _store_file()) from error
        if not isinstance(error, MlflowException):
            raise
        # Mostly a server that went away mid-stage; the traceback is for LOG_LEVEL=DEBUG.
        logger.debug("MLflow error", exc_info=True)
        raise TrackingError(f"MLflow failed ({uri}): {error.message}") from error
    finally:
        ended = _end_run(active_run.info.run_id, RunStatus.to_string(status))
        _restore(previous_handlers)
        if ended:
            logger.info(
                "MLflow run %s ended %s (%s)",
                active_run.info.run_id,
                RunStatus.to_string(status),
                uri,
            )
