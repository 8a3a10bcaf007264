"""The guard ends its command as Ctrl-C would, once, when it is stopped or its parent dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.dask_repro.conftest import environment

# Counts the SIGINTs it gets in a file, printing a line every 50 ms as a training does; the
# first starts a 2-second clean-up, after which it exits 130, as a stage that ends its MLflow
# run does.
COUNTING_COMMAND = """\
import pathlib, signal, sys, time
log = pathlib.Path(sys.argv[1])
def count(signum, frame):
    log.write_text(log.read_text() + "INT\\n")
signal.signal(signal.SIGINT, count)
log.write_text("started\\n")
while "INT" not in log.read_text():
    print("epoch", flush=True)
    time.sleep(0.05)
time.sleep(2)
log.write_text(log.read_text() + "cleaned up\\n")
sys.exit(130)
"""


def _guard(log: Path, via_parent: bool = False) -> subprocess.Popen:
    command = [sys.executable, "-m", "dask_repro.guard", sys.executable, "-c", COUNTING_COMMAND,
               str(log)]  # fmt: skip
    if via_parent:  # A stand-in for a Dask worker: it starts the guard and reads its output.
        command = [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:], "
                   "stdout=subprocess.PIPE)", *command]  # fmt: skip
    process = subprocess.Popen(
        command, env=environment(), start_new_session=True, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while not log.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return process


def test_the_guard_passes_on_the_exit_status(tmp_path: Path):
    status = subprocess.run(
        [sys.executable, "-m", "dask_repro.guard", sys.executable, "-c", "raise SystemExit(7)"],
        env=environment(),
    ).returncode
    assert status == 7


def test_a_stopped_guard_interrupts_its_command_once(tmp_path: Path):
    log = tmp_path / "log"
    guard = _guard(log)
    for _ in range(3):  # The runner, then an impatient user: one interrupt reaches the command.
        guard.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    assert guard.wait(timeout=30) == 130
    assert log.read_text().count("INT") == 1


def test_the_command_is_interrupted_when_the_guards_parent_dies(tmp_path: Path):
    # And it cleans up while it goes on printing, its reader gone with the worker.
    log = tmp_path / "log"
    worker = _guard(log, via_parent=True)
    time.sleep(0.5)
    os.kill(worker.pid, signal.SIGKILL)  # kill -9 of the worker
    worker.wait()
    deadline = time.monotonic() + 30
    while "cleaned up" not in log.read_text():
        assert time.monotonic() < deadline, f"the command did not clean up: {log.read_text()}"
        time.sleep(0.1)
    assert log.read_text().count("INT") == 1
