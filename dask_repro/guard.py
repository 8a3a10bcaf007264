"""Runs one command for a task, and ends it the way Ctrl-C would when the task is stopped:
``python -m dask_repro.guard <command> [arguments...]``.

The command runs in a process group of its own, so that a stop reaches every process under it
(DVC, the stage DVC started, whatever that one started) and nothing else. The first SIGINT,
SIGTERM or SIGHUP this process gets is passed on to that group once, as SIGINT, as a terminal's
Ctrl-C would: a second interrupt in the middle of the command's own clean-up could cut that
clean-up short. If the process that started this one dies (a Dask worker killed with
``kill -9``), the command is stopped the same way. A command that has not ended
``KILL_AFTER_SECONDS`` after the interrupt gets SIGKILL. The command's output goes through
this process, which keeps reading it when its own reader is gone: the command never writes
into a closed pipe, which would fail it before it could clean up.

This module imports only the standard library: it starts in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

# How long a stopped command may take to clean up (end its MLflow run, say) before SIGKILL.
KILL_AFTER_SECONDS = 60
_POLL_SECONDS = 0.2


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def _relay(source: int, target) -> None:
    """Copies what comes from file descriptor ``source`` to ``target`` as it comes, until the
    end; once ``target`` fails (its reader is gone), drops the rest."""
    writing = True
    while chunk := os.read(source, 1 << 16):
        if writing:
            try:
                target.write(chunk)
                target.flush()
            except (OSError, ValueError):
                writing = False


def main(command: list[str]) -> int:
    """Runs ``command`` and returns its exit status (128 + the signal if a signal ended it)."""
    parent = os.getppid()
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    child = subprocess.Popen(
        command,
        start_new_session=True,
        # A background job of a shell without job control starts with SIGINT ignored, and its
        # children inherit that: the command must take the interrupt this process passes on.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert child.stdout is not None
    output = threading.Thread(
        target=_relay, args=(child.stdout.fileno(), sys.stdout.buffer), daemon=True
    )
    output.start()
    stopped_at: float | None = None
    while (status := child.poll()) is None:
        if stopped_at is None and (stop_requested or os.getppid() != parent):
            stopped_at = time.monotonic()
            _signal_group(child.pid, signal.SIGINT)
        elif stopped_at is not None and time.monotonic() - stopped_at > KILL_AFTER_SECONDS:
            _signal_group(child.pid, signal.SIGKILL)
        time.sleep(_POLL_SECONDS)
    output.join(timeout=5)
    return 128 - status if status < 0 else status


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.stderr.write("usage: python -m dask_repro.guard <command> [arguments...]\n")
        raise SystemExit(2)
    raise SystemExit(main(sys.argv[1:]))
