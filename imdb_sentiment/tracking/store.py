"""Which MLflow store the project's runs go to, and its experiment: found, checked, created.

The default is a SQLite file in the user's project, the store `mlflow ui` opens when it is
started there; ``MLFLOW_TRACKING_URI`` chooses another (a team's server). A stage that runs in a
copy of the project (a DVC experiment's, or a task's workspace of ``make run``) writes to the
user's project's store, and one that runs in another checkout, on another machine, needs a
server: its own checkout's store would keep its runs from the user.
"""

from __future__ import annotations

import os
import time
import urllib.request
from contextlib import nullcontext

import mlflow
from filelock import FileLock

from dask_repro.workspace import users_project_elsewhere
from imdb_sentiment import paths
from imdb_sentiment.tracking.busy import TrackingError, store_problem


def default_tracking_uri() -> str:
    """The SQLite store that ``mlflow ui`` opens when it is started in the project root
    (MLflow's default, resolved from the project root, not the cwd)."""
    return f"sqlite:///{paths.this_project().users_project / 'mlflow.db'}"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else :func:`default_tracking_uri`.

    Raises:
        TrackingError: Neither, in a stage that runs away from the user's project.
    """
    chosen = os.environ.get("MLFLOW_TRACKING_URI")
    if chosen:
        return chosen
    elsewhere = users_project_elsewhere()
    if elsewhere:
        raise TrackingError(
            f"this stage runs on a Dask worker in another checkout than the user's project "
            f"({elsewhere}), and the project's MLflow store is a file there: set "
            "MLFLOW_TRACKING_URI to a tracking server that both reach (docs/team.md), where "
            "`make run` starts"
        )
    return default_tracking_uri()


def chosen_by_user() -> bool:
    """Whether the user set ``MLFLOW_TRACKING_URI`` to a store other than the project's own.
    (mlflow.set_tracking_uri exports the variable, so its presence does not tell: its value
    does.)"""
    return tracking_uri() != default_tracking_uri()


def _local_artifact_location(experiment_name: str) -> str | None:
    if chosen_by_user():
        return None  # A server or a store the user configured knows its own artifact root.
    return (paths.this_project().users_project / "mlartifacts" / experiment_name).as_uri()


def experiment_id(experiment_name: str) -> str:
    """The id of ``experiment_name``, created with artifacts beside the store if it is new."""
    # Two stages starting at once (`make run`, `dvc queue start -j 2`) would both create the
    # SQLite tables, or the experiment, and one would fail: the first to come does it alone.
    started = time.monotonic()
    lock = (
        nullcontext()
        if chosen_by_user()
        else FileLock(paths.this_project().users_project / "mlflow.db.lock")
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
        raise problem(error, "finding the experiment", time.monotonic() - started) from error


def problem(error: BaseException, doing: str, waited_seconds: float) -> Exception:
    """The one-line error for this project's store, failed while ``doing``."""
    return store_problem(
        error, doing, waited_seconds, tracking_uri(), users_choice=bool(
            os.environ.get("MLFLOW_TRACKING_URI") and chosen_by_user()
        ),
    )  # fmt: skip


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
