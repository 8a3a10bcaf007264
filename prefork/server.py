"""The warm interpreter: ``python -m prefork.server <socket> <idle seconds> <module>...``
imports the modules, then forks once per command that connects (see the package's docstring).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import gc
import importlib
import io
import json
import os
import runpy
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path

import prefork

# prctl(2)'s option that sets the calling thread's name.
_PR_SET_NAME = 15


def _receive(connection: socket.socket) -> tuple[dict, list[int]]:
    """One command's request and its three standard streams."""
    data, descriptors, _, _ = socket.recv_fds(connection, 1 << 16, 3)
    while len(data) < prefork.HEADER_BYTES:
        data += connection.recv(1 << 16)
    size = int.from_bytes(data[: prefork.HEADER_BYTES], "big")
    while len(data) < prefork.HEADER_BYTES + size:
        chunk = connection.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the request was cut short")
        data += chunk
    return json.loads(data[prefork.HEADER_BYTES : prefork.HEADER_BYTES + size]), descriptors


def _name_process(module: str, argv: list[str]) -> None:
    """Names this fork after its command ("train lstm 42") where `top`, `ps -e` and
    /proc/<pid>/comm show it (the kernel keeps 15 bytes): its command line stays the server's."""
    name = " ".join([module.rpartition(".")[2], *argv]).encode()[:15]
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_NAME, name, 0, 0, 0)


def _run_command(connection: socket.socket, request: dict, descriptors: list[int]) -> None:
    """In the fork: becomes the command, runs it, reports its status at exit. Never returns."""
    # The signals as the command's own interpreter would have set them up: ignored where its
    # caller ignored them, else Ctrl-C raising KeyboardInterrupt and the others ending it.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signum in request["ignored"]:
            signal.signal(signum, signal.SIG_IGN)
        elif signum == signal.SIGINT:
            signal.signal(signum, signal.default_int_handler)
        else:
            signal.signal(signum, signal.SIG_DFL)
    for target, descriptor in enumerate(descriptors):
        os.dup2(descriptor, target)
        os.close(descriptor)
    # Line-buffered on a terminal, as the command's own interpreter would have chosen; the
    # server's streams were not terminals.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=os.isatty(1))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["environ"])
    sys.path[:] = request["path"]
    sys.argv = [request["orig_argv"][0], *request["argv"]]
    _name_process(request["module"], request["argv"])
    sys.orig_argv = request["orig_argv"]
    prefork._in_fork = True
    prefork._caller = request["caller"]
    status = {"code": 1}

    def report() -> None:
        # Registered first, so it runs last: after the command's own exit handlers.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(OSError):
            connection.sendall(f"exit {status['code']}\n".encode())

    atexit.register(report)

    def end_with_the_command() -> None:
        # The process that handed the command over is gone (killed): so is the command.
        with contextlib.suppress(OSError):
            connection.recv(1)
        os.kill(os.getpid(), signal.SIGKILL)

    connection.sendall(f"pid {os.getpid()}\n".encode())
    threading.Thread(target=end_with_the_command, daemon=True).start()
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        status["code"] = 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            status["code"] = exit_.code or 0
        else:
            sys.stderr.write(f"{exit_.code}\n")
    except KeyboardInterrupt:
        status["code"] = 130
    except BaseException:
        traceback.print_exc()
    sys.exit(status["code"])


def serve(path: Path, idle_seconds: float, preload: list[str]) -> None:
    # One server per socket: every command that finds none starts one, and commands that come
    # while it imports (8-10 s for TensorFlow) found none too. The first holds the lock; the
    # others leave before importing anything (each would hold 700 MB until idle).
    lock = path.with_name(f"{path.name}.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return
    # Who serves this socket, for prefork.stop.
    lock.write(str(os.getpid()))
    lock.flush()
    for name in preload:
        importlib.import_module(name)
    # What the imports made lives as long as the server: frozen, the forks' garbage collections
    # skip it (TensorFlow's half a million objects: 0.6 s less of collections in a training
    # stage here), and do not write to pages the forks share with the server.
    gc.collect()
    gc.freeze()
    # Forks report their status over their connection: none is waited for.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    server_pid = os.getpid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bound under a name of its own, then moved into place: a command never finds a socket
    # whose server is still importing, and a stale socket is replaced.
    temporary = path.with_name(f"{path.name}.{server_pid}")
    listener.bind(str(temporary))
    listener.listen(16)
    os.replace(temporary, path)
    bound = os.stat(path).st_ino
    listener.settimeout(idle_seconds)
    # prefork.stop's SIGTERM ends the server through its clean-up; the forks reset it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        while True:
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                return
            connection.settimeout(None)
            try:
                request, descriptors = _receive(connection)
            except (OSError, ValueError):
                connection.close()
                continue
            if os.fork() == 0:
                listener.close()
                lock.close()  # The lock stays the server's, however long the command runs.
                _run_command(connection, request, descriptors)
            connection.close()
            for descriptor in descriptors:
                os.close(descriptor)
    finally:
        if os.getpid() == server_pid:
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == bound:
                    path.unlink()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:])
