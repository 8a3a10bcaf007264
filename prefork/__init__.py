"""Runs ``python -m <module> ...`` in a fork of a warm interpreter that has imported the heavy
libraries already, so that a short command does not pay for their import each time
(TensorFlow, Keras and MLflow: 8-10 s on a 2-core machine, for a stage that may compute for 15).

A package's ``__init__`` calls :func:`delegate` before anything else::

    import prefork
    prefork.delegate(preload=("tensorflow", "mlflow"))

When the process was started as ``python -m <that package>.<module> ...`` and a server with
those libraries imported answers, the command runs there and this process exits with its
status. Otherwise ``delegate`` returns and the command runs here as usual, cold, while a server
starts in the background for the next command.

The server (``server.py``) forks once per command; the fork takes the command's working
directory, environment, ``sys.path``, arguments and standard streams, runs the module as
``__main__`` and reports its exit status; `top` and ``/proc/<pid>/comm`` show it by its
command ("show a b" for ``python -m commands.show a b``, 15 bytes at most), its command line
staying the server's. This process stays the one its own caller waits
for: it passes SIGINT, SIGTERM and SIGHUP on (the fork ignores those this process ignored, as
the command's own interpreter would), exits with the fork's status, and the fork ends if this
process dies. Only the preloaded
libraries are shared, never the command's own code, which each fork imports afresh, so an edit
is seen by the next command. A server serves one interpreter, one list of libraries at their
installed versions, one version of this package and one set of the environment variables that
they read at import (:data:`IMPORT_TIME_VARIABLES`); anything else gets a server of its own.
It exits after ``idle_seconds`` without a command.

``PREFORK=0`` turns it off. This package imports nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# Environment variables that the preloaded libraries may read once, when they are imported,
# and the locale's, which the interpreter reads when it starts.
IMPORT_TIME_VARIABLES = (
    "TF_",
    "OMP_",
    "KMP_",
    "MKL_",
    "CUDA_",
    "KERAS_",
    "PYTHON",
    "LD_",
    "LC_",
    "LANG",
)
# A request is this many bytes of its length, big-endian, then that many of JSON.
HEADER_BYTES = 8
# Set in a fork that runs a command: its own imports must not delegate again.
_in_fork = False
# In such a fork, the process that handed the command over (see caller_pid).
_caller: int | None = None


def in_warm_fork() -> bool:
    """True in a fork of a warm interpreter: a server is there for the next command too."""
    return _in_fork


def caller_pid() -> int:
    """The process its own caller started for this command: the one that handed it over when
    it runs in a fork, else this one. Its parent is the command's caller (a shell, DVC)."""
    return _caller or os.getpid()


def _installed_distributions() -> list[str]:
    """Every distribution installed where this interpreter imports from, with its version, as
    the names of their metadata folders (``numpy-2.4.6.dist-info``): a library a preloaded one
    imports (numpy, under TensorFlow) changes the key when it is upgraded. Listing the folders
    takes a fraction of a millisecond; reading every distribution's metadata, 0.1 s."""
    found = []
    for entry in sys.path:
        with contextlib.suppress(OSError):
            found += sorted(
                name
                for name in os.listdir(entry or ".")
                if name.endswith((".dist-info", ".egg-info", ".egg-link", ".pth"))
            )
    return found


class UnsafeFolderError(OSError):
    """The folder of the servers' sockets is not this user's alone."""


def _socket_folder() -> Path:
    """This user's folder of sockets, made readable by this user alone.

    Raises:
        UnsafeFolderError: It exists and another user owns it, or others may use it: a socket
            there could be another user's server, which would run this user's commands.
    """
    folder = Path(tempfile.gettempdir()) / f"prefork-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    status = folder.lstat()
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise UnsafeFolderError(
            f"{folder} is not a folder of this user's alone (owner uid {status.st_uid}, mode "
            f"{stat.filemode(status.st_mode)}): remove it, or set TMPDIR to a folder of your own"
        )
    return folder


def socket_path(preload: tuple[str, ...]) -> Path:
    """Where the server for this interpreter, these libraries and this environment listens.

    Raises:
        UnsafeFolderError: The folder for it is not this user's alone.
    """
    installed = {}
    for name in preload:
        spec = importlib.util.find_spec(name.partition(".")[0])
        origin = spec.origin if spec and spec.origin else ""
        installed[name] = [origin, os.path.getmtime(origin) if origin else 0]
    environment = {
        name: value
        for name, value in sorted(os.environ.items())
        if name.startswith(IMPORT_TIME_VARIABLES)
    }
    # This package's own code too, by content (a DVC experiment's copy of the project shares
    # the server): a server runs the fork side of the version that started it.
    this_package = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        this_package.update(path.read_bytes())
    key = json.dumps(
        [
            sys.executable,
            sys.version,
            installed,
            _installed_distributions(),
            environment,
            this_package.hexdigest(),
        ],
        sort_keys=True,
    )
    return _socket_folder() / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.sock"


def delegate(
    preload: tuple[str, ...],
    idle_seconds: int = 300,
    prepare: Callable[[], None] | None = None,
) -> None:
    """Runs this ``python -m`` command in a warm fork and exits with its status, or returns
    (see the module's docstring). ``prepare``, if given, runs first when the command may be
    handed over: it sets the environment that a server would import the libraries in."""
    argv = sys.orig_argv
    if _in_fork or os.environ.get("PREFORK") == "0" or len(argv) < 3 or argv[1] != "-m":
        return
    try:
        for descriptor in (0, 1, 2):
            os.fstat(descriptor)
    except OSError:
        return  # A closed standard stream cannot be handed over.
    if prepare is not None:
        prepare()
    try:
        path = socket_path(preload)
    except UnsafeFolderError as error:
        sys.stderr.write(f"prefork: running cold: {error}\n")
        return
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        _start_server(path, preload, idle_seconds)
        return
    request = {
        "module": argv[2],
        "argv": argv[3:],
        "orig_argv": argv,
        "cwd": os.getcwd(),
        "caller": os.getpid(),
        "environ": dict(os.environ),
        "path": sys.path,
        # What the command's own interpreter would have kept ignoring (a background job of a
        # shell ignores SIGINT, nohup SIGHUP).
        "ignored": [
            int(signum)
            for signum in _SignalRelay.SIGNALS
            if signal.getsignal(signum) == signal.SIG_IGN
        ],
    }
    payload = json.dumps(request).encode()
    relay = _SignalRelay()
    try:
        message = len(payload).to_bytes(HEADER_BYTES, "big") + payload
        socket.send_fds(connection, [message], [0, 1, 2])
    except OSError:
        relay.restore()
        connection.close()
        return
    sys.exit(relay.wait(connection))


def stop(preload: tuple[str, ...], prepare: Callable[[], None] | None = None) -> int | None:
    """Stops the server that :func:`delegate` would hand a command over to, here, with these
    arguments (and this environment); returns its pid, or None when none runs. Servers of
    other interpreters, libraries, environments or users are left alone. Commands under way
    in its forks go on."""
    if prepare is not None:
        prepare()
    lock = socket_path(preload).with_name(f"{socket_path(preload).name}.lock")
    try:
        with open(lock, "r+") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = int(file.read() or 0)
            else:
                return None  # Nobody holds it: no server.
    except (OSError, ValueError):
        return None
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return pid or None


def _start_server(path: Path, preload: tuple[str, ...], idle_seconds: int) -> None:
    """Starts a server in the background, in a session of its own, for the next command."""
    environment = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[1])
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [package_parent, environment.get("PYTHONPATH")])
    )
    with contextlib.suppress(OSError):
        subprocess.Popen(
            [sys.executable, "-m", "prefork.server", str(path), str(idle_seconds), *preload],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            env=environment,
            start_new_session=True,
        )


class _SignalRelay:
    """Passes SIGINT, SIGTERM and SIGHUP on to the fork that runs the command. Installed before
    the command is handed over: a signal that comes before the fork is known is passed on as
    soon as it is."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.fork: int | None = None
        self.pending: list[int] = []
        self.previous = {
            signum: signal.signal(signum, self.forward)
            for signum in self.SIGNALS
            if signal.getsignal(signum) != signal.SIG_IGN
        }

    def forward(self, signum, frame=None) -> None:
        if self.fork is None:
            self.pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.fork, signum)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def wait(self, connection: socket.socket) -> int:
        """The fork's exit status, once it reports it."""
        reader = connection.makefile("r")
        first = reader.readline().split()
        if len(first) != 2 or first[0] != "pid":
            sys.stderr.write("prefork: the warm interpreter did not start the command\n")
            return 1
        self.fork = int(first[1])
        for signum in self.pending:
            self.forward(signum)
        words = reader.readline().split()
        if len(words) == 2 and words[0] == "exit":
            return int(words[1])
        sys.stderr.write("prefork: the command's process ended without an exit status\n")
        return 1
