"""Real servers for the tests, on loopback: a free port, waiting for a server to answer, an
`mlflow server`, and a PostgreSQL cluster of the test's own (Debian's `postgresql` package;
`.ci/run` installs it)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout_seconds: float) -> None:
    """Returns once ``url`` answers; fails the test if ``server`` exits or time runs out (and
    stops it then)."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stderr.read().decode()[-3000:] if server.stderr else ""
            pytest.fail(f"{server.args[0]} exited with {server.returncode}: {output}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    stop_server(server)
    pytest.fail(f"{url} did not answer within {timeout_seconds} s")


def start_mlflow_server(folder: Path, port: int, backend_store_uri: str | None = None):
    """A real `mlflow server` on loopback, artifacts in ``folder``; its store is
    ``backend_store_uri``, or SQLite in ``folder``."""
    server = subprocess.Popen(
        [
            Path(sys.executable).parent / "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            backend_store_uri or f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_until_up(f"http://127.0.0.1:{port}/health", server, timeout_seconds=90)
    return server


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, 15)
    server.wait(timeout=30)


def _postgres_bin() -> Path | None:
    # Debian keeps the server's programs off PATH, one folder per major version.
    installed = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    found = installed[0] if installed else shutil.which("initdb")
    return Path(found).parent if found else None


@contextlib.contextmanager
def postgres_database(user: str, password: str, database: str) -> Iterator[str]:
    """A fresh PostgreSQL cluster on a loopback port with one password-protected user and
    database; yields ``postgresql://user:password@127.0.0.1:port/database``, stops it after."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server not installed (initdb not found): apt-get install postgresql"
        )
    # PostgreSQL refuses to run as root: as root, run it as Debian's postgres user, in a folder
    # that user owns (pytest's own tmp folders are private to root).
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="imdb-rnn-postgres-"))
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
    data, password_file = folder / "data", folder / "password"
    password_file.write_text(password)
    if as_postgres:
        shutil.chown(password_file, "postgres", "postgres")
    port = free_port()

    def postgres(*command: str) -> None:
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, cwd=folder)

    try:
        postgres(
            str(bin_dir / "initdb"), "-D", str(data), "-U", user,
            f"--pwfile={password_file}", "--auth=scram-sha-256",
        )  # fmt: skip
        postgres(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w",
            "-o", f"-h 127.0.0.1 -p {port} -k {folder}", "start",
        )  # fmt: skip
        try:
            subprocess.run(
                [bin_dir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
                env={**os.environ, "PGPASSWORD": password},
                check=True,
                capture_output=True,
            )
            yield f"postgresql://{user}:{password}@127.0.0.1:{port}/{database}"
        finally:
            postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
