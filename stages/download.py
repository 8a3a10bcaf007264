"""Stage 1: fetch the IMDB archive and verify its checksum.

The archive comes from ``data.local_copy`` when that file exists (offline machines), else from
``data.url``, which may be an http(s) URL, a ``file://`` URL or a local path. It is written
atomically: an interrupted or corrupt download never lands where DVC would take it for the
output.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from stages import paths
from stages.cli import StageError, run_stage
from stages.files import atomic_path
from stages.params import load_params

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20


def local_path(location: str, base: Path) -> Path:
    """The file that a path or ``file://`` URL names; relative paths start at ``base``."""
    if location.startswith("file://"):
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(location).path))
    return (base / Path(location).expanduser()).resolve()


def as_url(location: str, base: Path) -> str:
    """``location`` as a URL: URLs stay as they are, paths become ``file://`` URLs."""
    return location if "://" in location else local_path(location, base).as_uri()


def copy_with_checksum(source: BinaryIO, target: BinaryIO, total_bytes: int | None) -> str:
    """Copies ``source`` to ``target`` with a progress bar; returns the sha256 of the bytes."""
    digest = hashlib.sha256()
    with tqdm(total=total_bytes, unit="B", unit_scale=True, desc="download") as progress:
        while chunk := source.read(_CHUNK_BYTES):
            digest.update(chunk)
            target.write(chunk)
            progress.update(len(chunk))
    return digest.hexdigest()


def fetch(url: str, destination: Path, expected_sha256: str) -> None:
    """Downloads ``url`` to ``destination`` if its sha256 is ``expected_sha256``.

    Raises:
        StageError: The URL cannot be read, or its content has another checksum. Nothing is
            written to ``destination`` then.
    """
    with atomic_path(destination) as partial:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                length = response.headers.get("Content-Length")
                actual_sha256 = copy_with_checksum(response, out, int(length) if length else None)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise StageError(
                f"cannot download {url}: {reason}. Offline? Put a copy of the archive on disk "
                "and point data.local_copy (with data.local_copy_sha256) at it in params.yaml."
            ) from error
        if actual_sha256 != expected_sha256:
            raise StageError(
                f"{url} has sha256 {actual_sha256}, but params.yaml expects {expected_sha256}. "
                "The file is corrupt or another version: download it again, or if it is the "
                "archive you want, put its sha256 in params.yaml."
            )


def main(argv: list[str]) -> None:
    params = load_params(paths.PARAMS_FILE).data
    local_copy = params.local_copy and local_path(params.local_copy, paths.PROJECT_ROOT)
    if local_copy and local_copy.is_file():
        logger.info("Using the local copy %s instead of downloading %s", local_copy, params.url)
        fetch(local_copy.as_uri(), paths.ARCHIVE, params.local_copy_sha256)
    else:
        if local_copy:
            logger.info("No local copy at %s; downloading %s", local_copy, params.url)
        fetch(as_url(params.url, paths.PROJECT_ROOT), paths.ARCHIVE, params.sha256)
    logger.info("Wrote %s (sha256 verified)", paths.ARCHIVE.relative_to(paths.PROJECT_ROOT))


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
