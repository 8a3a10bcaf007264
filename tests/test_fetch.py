import hashlib
import http.server
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from imdb_sentiment.errors import StageError
from imdb_sentiment.fetch import as_url, fetch, local_path
from tests.conftest import tiny_params


def test_fetch_copies_a_local_file_url_when_its_checksum_matches(tiny_archive, tmp_path):
    archive, sha256 = tiny_archive
    destination = tmp_path / "out" / "aclImdb.tar.gz"
    fetch(archive.as_uri(), destination, sha256)
    assert hashlib.sha256(destination.read_bytes()).hexdigest() == sha256
    assert [path.name for path in destination.parent.iterdir()] == ["aclImdb.tar.gz"]


def test_a_checksum_mismatch_is_an_error_and_leaves_no_file(tiny_archive, tmp_path):
    archive, _ = tiny_archive
    destination = tmp_path / "out" / "aclImdb.tar.gz"
    with pytest.raises(StageError) as raised:
        fetch(archive.as_uri(), destination, "0" * 64)
    assert str(raised.value) == (
        f"{archive.as_uri()} has sha256 {tiny_archive[1]}, but params.yaml expects {'0' * 64}. "
        "The file is corrupt or another version: download it again, or if it is the archive "
        "you want, put its sha256 in params.yaml."
    )
    assert list(destination.parent.iterdir()) == []


def test_an_unreadable_url_says_how_to_work_offline_and_leaves_no_file(tmp_path):
    destination = tmp_path / "out" / "aclImdb.tar.gz"
    with pytest.raises(StageError, match="cannot download .*data.local_copy"):
        fetch((tmp_path / "missing.tar.gz").as_uri(), destination, "0" * 64)
    assert list(destination.parent.iterdir()) == []


def test_an_earlier_good_file_survives_a_failed_download(tiny_archive, tmp_path):
    archive, sha256 = tiny_archive
    destination = tmp_path / "aclImdb.tar.gz"
    fetch(archive.as_uri(), destination, sha256)
    with pytest.raises(StageError):
        fetch(archive.as_uri(), destination, "0" * 64)
    assert hashlib.sha256(destination.read_bytes()).hexdigest() == sha256


def test_paths_and_file_urls_name_the_same_file(tmp_path):
    assert local_path("data/a.tar.gz", tmp_path) == tmp_path / "data/a.tar.gz"
    assert local_path((tmp_path / "a b.tar.gz").as_uri(), tmp_path) == tmp_path / "a b.tar.gz"
    assert as_url("https://example.org/a.tar.gz", tmp_path) == "https://example.org/a.tar.gz"
    assert as_url("a.tar.gz", tmp_path) == (tmp_path / "a.tar.gz").as_uri()


class _ArchiveServer(http.server.BaseHTTPRequestHandler):
    """Serves ``body`` at /ok, and the ways a download goes wrong at other paths."""

    body = b""
    requests: ClassVar[list[str]] = []
    failures_before_success = 2

    def do_GET(self):
        self.requests.append(self.path)
        if self.path == "/missing":
            self.send_error(404, "Not Found")
        elif (
            self.path == "/flaky" and self.requests.count("/flaky") <= self.failures_before_success
        ):
            self.send_error(503, "Service Unavailable")
        elif self.path == "/error500" and self.requests.count("/error500") == 1:
            self.send_error(500, "Internal Server Error")
        elif self.path in ("/ok", "/flaky", "/error500"):
            self._send(self.body)
        elif self.path == "/cut":
            self._send(self.body[: len(self.body) // 2], length=len(self.body))
        elif self.path == "/slow":
            self._send_slowly(self.body * 10)

    def _send(self, data: bytes, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(length or len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_slowly(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for start in range(0, len(data), 1024):
            self.wfile.write(data[start : start + 1024])
            self.wfile.flush()
            time.sleep(0.05)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tiny_archive):
    archive, _ = tiny_archive
    _ArchiveServer.body = archive.read_bytes()
    _ArchiveServer.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ArchiveServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_an_http_download_is_verified_and_written(server, tiny_archive, tmp_path):
    fetch(f"{server}/ok", tmp_path / "out" / "a.tar.gz", tiny_archive[1], retry_delays=())
    assert (tmp_path / "out" / "a.tar.gz").read_bytes() == tiny_archive[0].read_bytes()


def test_server_errors_are_retried_until_the_download_succeeds(server, tiny_archive, tmp_path):
    fetch(f"{server}/flaky", tmp_path / "out" / "a.tar.gz", tiny_archive[1], retry_delays=(0, 0, 0))
    assert _ArchiveServer.requests == ["/flaky"] * 3
    assert (tmp_path / "out" / "a.tar.gz").is_file()


def test_a_missing_file_is_not_retried_and_its_status_is_named(server, tmp_path):
    with pytest.raises(StageError, match=r"answered HTTP 404 Not Found: check data.url"):
        fetch(f"{server}/missing", tmp_path / "out" / "a.tar.gz", "0" * 64, retry_delays=(0, 0))
    assert _ArchiveServer.requests == ["/missing"]
    assert list((tmp_path / "out").iterdir()) == []


def test_a_cut_short_transfer_is_retried_then_reported_and_leaves_no_file(server, tmp_path):
    with pytest.raises(StageError, match=r"cannot download .*/cut: .*cut short"):
        fetch(f"{server}/cut", tmp_path / "out" / "a.tar.gz", "0" * 64, retry_delays=(0, 0))
    assert _ArchiveServer.requests == ["/cut"] * 3
    assert list((tmp_path / "out").iterdir()) == []


def test_an_unreachable_host_is_retried_a_bounded_number_of_times(tmp_path):
    with socket.socket() as probe:  # A port that nothing listens on.
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/aclImdb_v1.tar.gz"
    started = time.monotonic()
    with pytest.raises(StageError, match=rf"cannot download {url}: .*data.local_copy"):
        fetch(url, tmp_path / "out" / "a.tar.gz", "0" * 64, retry_delays=(0.1, 0.1))
    assert time.monotonic() - started < 10
    assert list((tmp_path / "out").iterdir()) == []


def test_too_little_disk_space_for_the_run_is_an_error_before_downloading(
    server, tiny_archive, tmp_path, monkeypatch
):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=50_000_000))
    archive_bytes = tiny_archive[0].stat().st_size
    # What the run writes after the archive decides, not a fixed margin.
    fetch(f"{server}/ok", tmp_path / "ok" / "a.tar.gz", tiny_archive[1], retry_delays=(),
          bytes_after=lambda size: 49_000_000 - size)  # fmt: skip
    with pytest.raises(
        StageError,
        match=r"not enough disk space in .*: this run \(the archive, the prepared data, every "
        r"model of params.yaml and the copies DVC and MLflow keep\) needs about 51 MB, but only "
        r"50 MB are free",
    ):
        fetch(f"{server}/ok", tmp_path / "out" / "a.tar.gz", tiny_archive[1], retry_delays=(),
              bytes_after=lambda size: 51_000_000 - size)  # fmt: skip
    assert list((tmp_path / "out").iterdir()) == []
    assert archive_bytes < 1_000_000


def test_an_interrupted_download_leaves_no_partial_file(server, tiny_archive, tmp_path):
    destination = tmp_path / "out" / "a.tar.gz"
    code = (
        "import sys; from pathlib import Path; from imdb_sentiment.fetch import fetch; "
        "fetch(sys.argv[1], Path(sys.argv[2]), sys.argv[3])"
    )
    downloader = subprocess.Popen(
        [sys.executable, "-c", code, f"{server}/slow", str(destination), tiny_archive[1]],
        cwd=Path(__file__).resolve().parents[1],
        stderr=subprocess.PIPE,
        # CI may start tests with SIGINT ignored; a terminal's Ctrl-C is not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while not any(path.stat().st_size for path in destination.parent.glob("*")):
        assert time.monotonic() < deadline, "the download did not start"
        time.sleep(0.05)
    downloader.send_signal(signal.SIGINT)  # What Ctrl-C sends.
    assert downloader.wait(timeout=30) != 0
    assert b"KeyboardInterrupt" in downloader.stderr.read()
    assert list(destination.parent.iterdir()) == []


def test_a_relative_local_copy_is_found_from_a_dvc_experiment_copy(
    tiny_archive, tmp_path, monkeypatch
):
    # `dvc exp run --queue` runs the stages in .dvc/tmp/exps/…: a path relative to the project
    # (as ../shared/data/… in params.yaml) must still name the file beside the user's project.
    from imdb_sentiment import paths
    from stages import download

    archive, sha256 = tiny_archive
    shared = tmp_path / "shared"
    shared.mkdir()
    shutil.copy(archive, shared / "archive.tar.gz")
    copy = tmp_path / "project" / ".dvc" / "tmp" / "exps" / "run" / "tmpabc123"
    copy.mkdir(parents=True)
    params = tiny_params(Path("../shared/archive.tar.gz"), sha256)
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(paths, "this_project", lambda: paths.ProjectFiles(copy))
    download.main([])
    assert hashlib.sha256(paths.this_project().archive.read_bytes()).hexdigest() == sha256


def test_each_retry_is_logged_with_its_reason_and_wait(server, tiny_archive, tmp_path, caplog):
    fetch(f"{server}/flaky", tmp_path / "a.tar.gz", tiny_archive[1], retry_delays=(0, 0.01, 0))
    assert [record.getMessage() for record in caplog.records if record.levelname == "WARNING"] == [
        "Download attempt 1 of 4 failed (Service Unavailable); retrying in 0 s",
        "Download attempt 2 of 4 failed (Service Unavailable); retrying in 0.01 s",
    ]


def test_an_internal_server_error_is_retried(server, tiny_archive, tmp_path):
    fetch(f"{server}/error500", tmp_path / "a.tar.gz", tiny_archive[1], retry_delays=(0,))
    assert _ArchiveServer.requests == ["/error500"] * 2


def test_the_messages_of_a_failed_download_name_the_url_and_the_fix(server, tmp_path):
    missing = f"{server}/missing"
    with pytest.raises(StageError) as raised:
        fetch(missing, tmp_path / "a.tar.gz", "0" * 64, retry_delays=())
    assert str(raised.value) == (
        f"{missing} answered HTTP 404 Not Found: check data.url in params.yaml, or point "
        "data.local_copy (with data.local_copy_sha256) at a copy on disk."
    )
    cut = f"{server}/cut"
    with pytest.raises(StageError) as raised:
        fetch(cut, tmp_path / "a.tar.gz", "0" * 64, retry_delays=())
    assert re.fullmatch(
        rf"cannot download {cut}: the transfer was cut short(: \d+ of \d+ bytes| after \d+ "
        r"bytes)\. Offline\? Put a copy of the archive on disk and point data\.local_copy \(with "
        r"data\.local_copy_sha256\) at it in params\.yaml\.",
        str(raised.value),
    )
