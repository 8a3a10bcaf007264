"""A stage's MLflow run: opened at the edge of the stage, and always closed with a true status.

A run that fails ends FAILED, one interrupted by Ctrl-C or SIGTERM ends KILLED: none is left
RUNNING (one whose process was killed is marked FAILED by the next stage on the same host,
``cleanup.py``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from imdb_sentiment import paths
from imdb_sentiment.disk import disk_full_from, is_disk_full
from imdb_sentiment.tracking import store
from imdb_sentiment.tracking.busy import TrackingError, first_line, store_file
from imdb_sentiment.tracking.cleanup import end_orphaned_runs, end_unrecorded_runs
from imdb_sentiment.tracking.provenance import source_tags

logger = logging.getLogger(__name__)

# How often a training run samples CPU, memory and disk (MLflow's system metrics), unless
# MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL says otherwise: a few dozen points for a training.
SYSTEM_METRICS_SECONDS = 5

# The signal that stopped this process's run, if one did (set by the handler below).
_stopped_by: str | None = None
# True while the run is being opened: an interrupt then waits until the run is open, so that
# the run it created is ended KILLED rather than left RUNNING.
_opening = False


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    global _stopped_by
    _stopped_by = signal.Signals(signum).name
    if not _opening:
        raise KeyboardInterrupt(f"stopped by signal {_stopped_by}")


def _restore(handlers: dict) -> None:
    for stop, handler in handlers.items():
        signal.signal(stop, handler)


def _process_tags() -> dict[str, str]:
    """Which process, on which host and in which project folder, holds the run open."""
    return {
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
        "project": str(paths.this_project().root),
    }


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
            store.tracking_uri(),
            first_line(error),
        )
        logger.debug("Ending the run", exc_info=True)
        mlflow.tracking.fluent._active_run_stack.get().clear()
        return False
    return True


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
    uri = store.tracking_uri()
    store.check_server(uri)
    mlflow.set_tracking_uri(uri)
    experiment_id = store.experiment_id(experiment_name)
    end_orphaned_runs(experiment_id)
    if run_id is None:
        end_unrecorded_runs(experiment_id)
    global _stopped_by, _opening
    _stopped_by, _opening = None, True
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
        _opening = False
        _restore(previous_handlers)
        raise store.problem(error, "starting a run", time.monotonic() - started) from error
    _opening = False
    status = RunStatus.FAILED
    try:
        if _stopped_by is not None:  # Interrupted while the run was being opened.
            raise KeyboardInterrupt(f"stopped by signal {_stopped_by}")
        yield active_run
        if _stopped_by is not None:
            # A stop signal came while the stage ran, yet no KeyboardInterrupt came out of it
            # (one raised inside a library's call back into Python can be dropped there): the
            # run was stopped all the same, and must not end FINISHED.
            raise KeyboardInterrupt(f"stopped by signal {_stopped_by}")
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
            raise disk_full_from(error, store_file(uri)) from error
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
