"""Why the store failed: busy (and who holds it), full, or else unusable, as one line."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from imdb_sentiment.disk import disk_full_from, is_disk_full
from imdb_sentiment.errors import StageError


class TrackingError(StageError):
    """The tracking store cannot be used; the message says which store and what to do."""


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def store_file(uri: str) -> Path | None:
    """The SQLite file of the store at ``uri``, or None for a server."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def holders(store: Path) -> str:
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


def store_problem(
    error: BaseException, doing: str, waited_seconds: float, uri: str, users_choice: bool
) -> StageError:
    """The one-line error for the store at ``uri`` that failed while ``doing``: busy (with who
    holds it and how long this process waited), full, or else unusable. ``users_choice``: the
    user set ``MLFLOW_TRACKING_URI`` to this store."""
    store = store_file(uri)
    if is_disk_full(error):
        return disk_full_from(error, store)
    if store is not None and "database is locked" in str(error):
        held_by = holders(store)
        by = f"held by {held_by}" if held_by else "held by another process"
        return TrackingError(
            f"the MLflow store {store} is busy ({by}); {doing} waited {waited_seconds:.0f} s for "
            "it. Run again when that process is done (or stop it)"
        )
    hint = (
        "Unset MLFLOW_TRACKING_URI to use mlflow.db in the project root"
        if users_choice
        else "Check that its folder is writable"
    )
    return TrackingError(f"cannot use the MLflow tracking store {uri} ({doing}): "
                         f"{first_line(error)}. {hint}")  # fmt: skip
