"""prefork runs a ``python -m`` command in a warm fork as if it ran on its own: the caller's
arguments, working directory, environment, streams and exit status, its signals passed on, its
code read afresh, and a plain cold run where no server answers or PREFORK=0."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

COMMAND = """
import json, os, sys, time
import prefork
if sys.argv[1:2] == ["sleep"]:
    try:
        print("sleeping", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        raise SystemExit(130)
if sys.argv[1:2] == ["buffering"]:
    print(json.dumps({"warm": prefork._in_fork, "line_buffering": sys.stdout.line_buffering}))
    sys.exit(0)
if sys.argv[1:2] == ["fail"]:
    raise RuntimeError("the command failed")
print(json.dumps({
    "warm": prefork._in_fork,
    "pid": os.getpid(),
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "variable": os.environ.get("PREFORK_TEST_VARIABLE"),
    "version": VERSION,
    "process_name": open("/proc/self/comm").read().strip(),
}))
sys.exit(int(os.environ.get("PREFORK_TEST_EXIT", "0")))
"""


@pytest.fixture
def command(tmp_path):
    """``run(*args)``: ``python -m commands.show *args`` in a folder of its own, with a server
    folder of its own (a short path: a Unix socket's is limited)."""
    package = tmp_path / "commands"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import prefork\nprefork.delegate(('json', 'decimal'), idle_seconds=20)\n"
    )
    write_version(package, 1)
    sockets = Path(tempfile.mkdtemp(prefix="pf", dir="/tmp"))
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(tmp_path)]),
        "TMPDIR": str(sockets),
    }
    environment.pop("PREFORK", None)

    def run(*args, check=True, **variables):
        result = subprocess.run(
            [sys.executable, "-m", "commands.show", *args],
            cwd=tmp_path,
            env={**environment, **variables},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert result.returncode == int(variables.get("PREFORK_TEST_EXIT", 0)), result.stderr
        return result

    run.package, run.sockets, run.environment, run.cwd = package, sockets, environment, tmp_path
    yield run
    for server_socket in sockets.glob("*/*.sock"):
        # Ends the server: it exits when idle, but not before the next test starts.
        subprocess.run(["pkill", "-f", str(server_socket)], check=False)


def write_version(package: Path, version: int) -> None:
    (package / "show.py").write_text(f"VERSION = {version}\n" + textwrap.dedent(COMMAND))


def wait_for_server(sockets: Path) -> None:
    deadline = time.monotonic() + 30
    while not list(sockets.glob("*/*.sock")):
        assert time.monotonic() < deadline, "no server started"
        time.sleep(0.1)


def shown(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_first_command_runs_cold_and_starts_a_server_that_runs_the_next(command):
    first = shown(command("a"))
    assert first["warm"] is False
    wait_for_server(command.sockets)
    second = command("b", "c d", PREFORK_TEST_VARIABLE="x")
    assert shown(second) == {
        **shown(second),
        "warm": True,
        "argv": ["b", "c d"],
        "cwd": str(command.cwd),
        "variable": "x",
        # Named after its command in `top`, not one more copy of the server.
        "process_name": "show b c d",
    }


def test_a_warm_command_gives_its_exit_status_and_its_errors(command):
    command()
    wait_for_server(command.sockets)
    assert shown(command(PREFORK_TEST_EXIT="3"))["warm"] is True
    failed = command("fail", check=False)
    assert failed.returncode == 1
    assert "RuntimeError: the command failed" in failed.stderr


def test_a_warm_command_runs_the_code_as_it_is_now(command):
    command()
    wait_for_server(command.sockets)
    write_version(command.package, 2)
    now = shown(command())
    assert (now["warm"], now["version"]) == (True, 2)


def test_a_warm_command_writes_line_by_line_to_a_terminal(command):
    command()
    wait_for_server(command.sockets)
    controller, terminal = os.openpty()
    subprocess.run(
        [sys.executable, "-m", "commands.show", "buffering"],
        cwd=command.cwd,
        env=command.environment,
        stdout=terminal,
        timeout=60,
        check=True,
    )
    os.close(terminal)
    written = os.read(controller, 4096).decode()
    os.close(controller)
    assert json.loads(written) == {"warm": True, "line_buffering": True}


def sleeper(command, sigint) -> subprocess.Popen:
    """A caller whose warm command sleeps, started with SIGINT as given (a test may run where
    it is ignored: in a shell's background job)."""
    caller = subprocess.Popen(
        [sys.executable, "-m", "commands.show", "sleep"],
        cwd=command.cwd,
        env=command.environment,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )
    assert caller.stdout.readline().strip() == "sleeping"
    return caller


def test_interrupting_the_caller_interrupts_the_warm_command(command):
    command()
    wait_for_server(command.sockets)
    caller = sleeper(command, signal.SIG_DFL)
    caller.send_signal(signal.SIGINT)
    assert caller.wait(timeout=30) == 130
    assert caller.stdout.read().strip() == "interrupted"


def test_a_signal_the_caller_ignores_the_warm_command_ignores(command):
    command()
    wait_for_server(command.sockets)
    caller = sleeper(command, signal.SIG_IGN)
    caller.send_signal(signal.SIGINT)
    with pytest.raises(subprocess.TimeoutExpired):
        caller.wait(timeout=2)
    caller.send_signal(signal.SIGTERM)
    assert caller.wait(timeout=30) != 0


def test_killing_the_caller_ends_the_warm_command(command):
    command()
    wait_for_server(command.sockets)
    caller = sleeper(command, signal.SIG_DFL)
    assert len(serving(command.sockets)) == 2
    caller.kill()
    caller.wait()
    # The server and its forks share the server's command line, which names the socket.
    deadline = time.monotonic() + 10
    while len(serving(command.sockets)) > 1:
        assert time.monotonic() < deadline, "the warm command outlived its caller"
        time.sleep(0.1)


def serving(sockets: Path) -> list[str]:
    """The server's process and its forks'."""
    found = subprocess.run(["pgrep", "-f", str(sockets)], capture_output=True, text=True)
    return found.stdout.split()


def test_with_prefork_off_every_command_runs_cold(command):
    for _ in range(2):
        assert shown(command(PREFORK="0"))["warm"] is False
    assert not list(command.sockets.glob("*/*.sock"))


def test_prefork_imports_only_the_standard_library_and_itself():
    import ast

    for source in (PROJECT_ROOT / "prefork").glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                names.add(node.module.split(".")[0])
        foreign = names - {"prefork"} - set(sys.stdlib_module_names)
        assert not foreign, f"prefork/{source.name} imports {sorted(foreign)}"
        assert "imdb" not in source.read_text().lower()


def test_another_version_of_prefork_gets_a_server_of_its_own(command):
    command()
    wait_for_server(command.sockets)
    other = command.cwd / "other_version"
    shutil.copytree(PROJECT_ROOT / "prefork", other / "prefork")
    with (other / "prefork" / "__init__.py").open("a") as source:
        source.write("# another version\n")
    other_path = os.pathsep.join([str(other), str(command.cwd)])
    assert shown(command(PYTHONPATH=other_path))["warm"] is False
    assert shown(command())["warm"] is True


def test_a_second_server_for_the_same_socket_leaves_before_importing(command):
    # Commands that find no server while the first one still imports each start one.
    path = command.sockets / "server.sock"
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "prefork.server", str(path), "120", "json"],
            env=command.environment,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 15  # Well before either is idle for long enough to leave.
        while all(server.poll() is None for server in servers):
            assert time.monotonic() < deadline, "both servers stayed"
            time.sleep(0.1)
        [left] = [server for server in servers if server.poll() is not None]
        assert left.returncode == 0
        [stayed] = [server for server in servers if server is not left]
        while not path.exists():
            assert time.monotonic() < deadline, "the server that stayed does not serve"
            time.sleep(0.1)
        assert stayed.poll() is None
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()


def test_an_upgraded_distribution_gets_a_server_of_its_own(command):
    # `pip install -U numpy` under a warm server that imported the old numpy: the next command
    # must not run on it. A new distribution's metadata folder stands in for the upgrade.
    command()
    wait_for_server(command.sockets)
    assert shown(command())["warm"] is True
    (command.cwd / "numpy-9.9.9.dist-info").mkdir()
    assert shown(command())["warm"] is False


def test_a_socket_folder_that_is_not_this_users_alone_is_refused(command):
    folder = command.sockets / f"prefork-{os.getuid()}"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)  # As another user could have left it, writable by all.
    result = command()
    assert shown(result)["warm"] is False
    assert f"prefork: running cold: {folder} is not a folder of this user's alone" in result.stderr
    assert not list(folder.iterdir())  # No server was started there.


def test_stop_ends_the_server_of_these_libraries_and_no_other(command):
    stop = [sys.executable, "-c", "import prefork; print(prefork.stop(('json', 'decimal')))"]
    # As the commands run: the same environment and folder make the same key.
    settings = {"env": command.environment, "cwd": command.cwd}
    none = subprocess.run(stop, **settings, capture_output=True, text=True, check=True)
    assert none.stdout.strip() == "None"
    command()
    wait_for_server(command.sockets)
    other = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefork.server",
            str(next(command.sockets.glob("*")) / "x.sock"),
            "60",
            "decimal",
        ],
        env=command.environment,
    )
    stopped = subprocess.run(stop, **settings, capture_output=True, text=True, check=True)
    assert stopped.stdout.strip().isdigit()
    deadline = time.monotonic() + 15
    while list(command.sockets.glob("*/[!x]*.sock")):
        assert time.monotonic() < deadline, "the server did not stop"
        time.sleep(0.1)
    assert other.poll() is None  # Another list of libraries: another server, left alone.
    other.kill()
    assert shown(command())["warm"] is False  # And the next command starts one again.
