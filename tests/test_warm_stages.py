"""Every stage runs in a warm fork once a server is up (stages/__init__.py hands it to
prefork/), and in a cold process of its own with PREFORK=0 or LOG_LEVEL=DEBUG. Told apart by
the peak memory of the process started: a warm one never loads TensorFlow."""

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import environment
from tests.imports import PROJECT_ROOT

# The caller of a warm stage stays far under this; a cold one that loaded TensorFlow far over.
WARM_CALLER_MB = 200


@pytest.fixture(scope="module")
def servers() -> dict[str, str]:
    """A server folder of this module's own."""
    folder = tempfile.mkdtemp(prefix="ws", dir="/tmp")
    yield {"TMPDIR": folder}
    subprocess.run(["pkill", "-f", folder], check=False)


def failing_stage(**variables: str) -> float:
    """Runs `python -m stages.evaluate` for a model params.yaml does not have: it loads
    TensorFlow, then fails on the name. Returns the peak memory, in MB, of the process."""
    process = subprocess.Popen(
        ["python", "-m", "stages.evaluate", "no_such_model", "42"],
        cwd=PROJECT_ROOT,
        env=environment(**variables),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1, output
    assert "models.no_such_model: no such model" in output
    return usage.ru_maxrss / 1024


@pytest.fixture(scope="module")
def server(servers) -> dict[str, str]:
    """A warm interpreter for this module's stages, started by a first (cold) stage."""
    assert failing_stage(**servers) > WARM_CALLER_MB
    deadline = time.monotonic() + 120
    while not list(Path(servers["TMPDIR"]).glob("*/*.sock")):
        assert time.monotonic() < deadline, "no warm interpreter started"
        time.sleep(0.5)
    return servers


def test_a_stage_runs_warm_once_a_server_is_up(server):
    assert failing_stage(**server) < WARM_CALLER_MB


@pytest.mark.parametrize("variable", [{"PREFORK": "0"}, {"LOG_LEVEL": "DEBUG"}])
def test_a_stage_runs_cold_when_asked(server, variable):
    assert failing_stage(**server, **variable) > WARM_CALLER_MB
