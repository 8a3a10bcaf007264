"""Fetching the archive: from a URL or a file on disk, with retries, a progress bar and a checksum.

The archive is written atomically: an interrupted or corrupt download never lands where DVC
would take it for the output.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from imdb_sentiment.disk import check_space_for_run
from imdb_sentiment.errors import StageError
from imdb_sentiment.files import atomic_path

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


# Waits between attempts: a flaky connection gets four tries within about 15 s, then an error.
RETRY_DELAYS_SECONDS = (1, 4, 10)
# Room to leave beyond the archive itself: prepare writes its splits to the same disk.


class _CutShort(OSError):
    """The server closed the connection before sending the whole file."""


def copy_with_checksum(
    source: io.BufferedIOBase, target: BinaryIO, total_bytes: int | None
) -> tuple[str, int]:
    """Copies ``source`` to ``target`` with a progress bar.

    Returns:
        The sha256 of the bytes copied, and how many there were.
    """
    digest, copied = hashlib.sha256(), 0
    with tqdm(total=total_bytes, unit="B", unit_scale=True, desc="download") as progress:
        # read1 returns what has arrived, up to a chunk, so the progress bar moves smoothly.
        while chunk := source.read1(_CHUNK_BYTES):
            digest.update(chunk)
            target.write(chunk)
            copied += len(chunk)
            progress.update(len(chunk))
    return digest.hexdigest(), copied


def _download_once(url: str, partial: Path, bytes_after: Callable[[int], int]) -> str:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            length = response.headers.get("Content-Length")
            expected_bytes = int(length) if length else None
            if expected_bytes is not None:
                check_space_for_run(
                    partial.parent,
                    expected_bytes + bytes_after(expected_bytes),
                    "this run (the archive, the prepared data, every model of params.yaml and "
                    "the copies DVC and MLflow keep)",
                )
            with open(partial, "wb") as out:
                sha256, received = copy_with_checksum(response, out, expected_bytes)
    except http.client.IncompleteRead as error:
        raise _CutShort(f"the transfer was cut short after {len(error.partial)} bytes") from None
    if expected_bytes is not None and received != expected_bytes:
        raise _CutShort(f"the transfer was cut short: {received} of {expected_bytes} bytes")
    return sha256


def _unrecoverable(url: str, error: Exception) -> StageError:
    if isinstance(error, urllib.error.HTTPError):
        return StageError(
            f"{url} answered HTTP {error.code} {error.reason}: check data.url in params.yaml, "
            "or point data.local_copy (with data.local_copy_sha256) at a copy on disk."
        )
    reason = getattr(error, "reason", error)
    return StageError(
        f"cannot download {url}: {reason}. Offline? Put a copy of the archive on disk and point "
        "data.local_copy (with data.local_copy_sha256) at it in params.yaml."
    )


def fetch(
    url: str,
    destination: Path,
    expected_sha256: str,
    retry_delays: tuple[float, ...] = RETRY_DELAYS_SECONDS,
    bytes_after: Callable[[int], int] = lambda archive_bytes: 0,
) -> None:
    """Downloads ``url`` to ``destination`` if its sha256 is ``expected_sha256``.

    Before the first byte, the disk must hold the archive and ``bytes_after(archive bytes)``:
    what the rest of the run will write (when the size is known in advance).

    Over http(s), connection failures, server errors (HTTP 5xx) and cut-short transfers are
    retried after each of ``retry_delays``; each attempt starts from the first byte. A local
    file is read once.

    Raises:
        StageError: The URL cannot be read, there is not enough disk space, or the content has
            another checksum. Nothing is written to ``destination`` then, nor when the download
            is interrupted.
    """
    if not url.startswith(("http://", "https://")):
        retry_delays = ()
    failure: OSError
    with atomic_path(destination) as partial:
        for attempt, delay in enumerate((*retry_delays, None), start=1):
            try:
                actual_sha256 = _download_once(url, partial, bytes_after)
                break
            except urllib.error.HTTPError as error:
                if error.code < 500 or delay is None:
                    raise _unrecoverable(url, error) from error
                failure = error
            except OSError as error:  # URLError, timeouts, refused or reset connections.
                if delay is None:
                    raise _unrecoverable(url, error) from error
                failure = error
            logger.warning(
                "Download attempt %d of %d failed (%s); retrying in %s s",
                attempt,
                len(retry_delays) + 1,
                getattr(failure, "reason", failure),
                delay,
            )
            time.sleep(delay)
        if actual_sha256 != expected_sha256:
            raise StageError(
                f"{url} has sha256 {actual_sha256}, but params.yaml expects {expected_sha256}. "
                "The file is corrupt or another version: download it again, or if it is the "
                "archive you want, put its sha256 in params.yaml."
            )
