"""Disk space: what a run of the pipeline will write, checked before the download, and a full
disk met later reported in one line that says where, how much was needed and what to free."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from imdb_sentiment.errors import StageError

if TYPE_CHECKING:  # Only annotations: the file helpers import this module, params need not.
    from imdb_sentiment.params import Params

MB = 1_000_000
# Fewer compressed bytes per review than any IMDB archive has (the labeled copy has about 570,
# the official archive about 840 with its unlabeled reviews): an upper bound on the reviews.
_ARCHIVE_BYTES_PER_REVIEW = 400
# What each training run writes besides its model: the MLflow model's code and environment,
# figures, history, predictions (25,000 rows of about 30 bytes), twice (workspace and cache).
_PER_RUN_BYTES = 5 * MB
# The MLflow store's database and the reports.
_FIXED_BYTES = 20 * MB
# Saved weights and the optimizer's two moments, in float32.
_SAVED_BYTES_PER_WEIGHT = 3 * 4

# Per cell: its gates, and its biases per gate and unit (GRU's reset_after keeps two).
_GATES = {"simplernn": (1, 1), "lstm": (4, 1), "gru": (3, 2)}


def model_weights(params: Params, name: str) -> int:
    """How many weights ``models.<name>`` has."""
    model = params.model(name)
    directions = 2 if model.bidirectional else 1
    units, (gates, biases) = model.units, _GATES[model.cell]
    weights = params.data.num_words * model.embedding_dim
    inputs = model.embedding_dim
    for _ in range(model.layers):
        weights += directions * gates * (inputs * units + units * units + biases * units)
        inputs = directions * units
    return weights + inputs * model.dense_units + 2 * model.dense_units + 1


def saved_model_bytes(weights: int) -> int:
    """About how many bytes a saved model with ``weights`` weights takes: each weight and its
    two Adam moments, in float32."""
    return weights * _SAVED_BYTES_PER_WEIGHT


def bytes_after_download(params: Params, archive_bytes: int) -> int:
    """About how many bytes the rest of the pipeline writes after an archive of
    ``archive_bytes``: the archive's copy in DVC's cache, the prepared splits (and their
    copies), and per model and seed its model file three times (workspace, DVC's cache, MLflow's
    artifacts) with what else its run keeps. An upper bound, not a measurement."""
    reviews = archive_bytes // _ARCHIVE_BYTES_PER_REVIEW
    prepared = reviews * (params.data.maxlen * 4 + 16)
    runs = len(params.networks)
    model_files = sum(
        saved_model_bytes(model_weights(params, network.model)) * 3
        for network in params.networks.values()
    )
    return archive_bytes + 2 * prepared + model_files + runs * _PER_RUN_BYTES + _FIXED_BYTES


class DiskFullError(StageError):
    """The disk filled up; the message says where, how much more was needed, and what to free."""


WHAT_TO_FREE = (
    "free space there (`dvc gc --workspace` drops DVC's cached outputs that the workspace no "
    "longer uses; `mlflow gc` the artifacts of deleted MLflow runs), then run `dvc repro` again"
)


def free_bytes(path: Path) -> int:
    """The free bytes of the disk that holds ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return 0


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, is a full disk: an ``OSError`` of
    ``ENOSPC`` or ``EDQUOT``, or SQLite's "database or disk is full" (MLflow's store)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(current) or "No space left on device" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_full(path: Path, needed_bytes: int | None = None) -> DiskFullError:
    """The one-line error for a full disk met while writing ``path``."""
    needed = f"about {needed_bytes / MB:,.1f} MB more were needed, " if needed_bytes else ""
    return DiskFullError(
        f"no space left on the disk of {path}: {needed}"
        f"{free_bytes(path) / MB:,.1f} MB are free; {WHAT_TO_FREE}"
    )


def disk_full_from(error: BaseException, where: Path | None = None) -> DiskFullError:
    """The one-line error for ``error``, a full disk (:func:`is_disk_full`): of the file it
    names, or else of ``where`` (by default the current folder, the project's under DVC)."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, DiskFullError):
            return current
        if isinstance(current, OSError) and current.filename:
            return disk_full(Path(current.filename))
        current = current.__cause__ or current.__context__
    return disk_full(where or Path.cwd())


def check_space_for_run(folder: Path, needed_bytes: int, what: str) -> None:
    """Raises a :class:`DiskFullError` before any work when ``folder``'s disk has less free
    space than ``needed_bytes`` (``what`` says what they are for)."""
    free = free_bytes(folder)
    if free < needed_bytes:
        raise DiskFullError(
            f"not enough disk space in {folder}: {what} needs about {needed_bytes / MB:,.0f} MB, "
            f"but only {free / MB:,.0f} MB are free; {WHAT_TO_FREE}"
        )
