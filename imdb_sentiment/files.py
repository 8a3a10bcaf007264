"""Writes outputs atomically, so that an interrupted stage never leaves a half-written file
where DVC or the next stage would take it for a finished one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imdb_sentiment.disk import disk_full, is_disk_full


@contextmanager
def atomic_path(path: Path, needed_bytes: int | None = None) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it to ``path`` only on success.

    The temporary file keeps ``path``'s suffix, since some writers (Keras, NumPy) choose the
    format by it. A full disk is reported as such, with ``needed_bytes`` (about what the file
    takes) when the caller knows it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
    )
    os.close(handle)
    temporary_path = Path(temporary)
    # mkstemp makes the file private; outputs get the usual permissions instead.
    umask = os.umask(0)
    os.umask(umask)
    temporary_path.chmod(0o666 & ~umask)
    try:
        yield temporary_path
        os.replace(temporary_path, path)
    except OSError as error:
        if is_disk_full(error):
            raise disk_full(path, needed_bytes) from error
        raise
    finally:
        temporary_path.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    with atomic_path(path, len(data)) as temporary:
        temporary.write_bytes(data)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as file:
        return json.load(file)
