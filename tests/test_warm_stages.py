"""Every stage runs in a warm fork once a server is up (stages/__init__.py hands it to
prefork/), and in a cold process of its own with PREFORK=0 or LOG_LEVEL=DEBUG. Told apart by
the peak memory of the process started: a warm one never loads TensorFlow."""

import subprocess
import sys

import pytest

from tests.conftest import (
    WARM_CALLER_MB,
    environment,
    run_with_peak_memory,
    wait_for_warm_interpreter,
    warm_interpreter_folder,
)
from tests.imports import PROJECT_ROOT


@pytest.fixture(scope="module")
def servers() -> dict[str, str]:
    """The environment of this module's stages, fixed now (other tests in this process may
    change os.environ meanwhile, and a server serves one environment), with a server folder
    of this module's own."""
    with warm_interpreter_folder("ws") as folder:
        yield environment(TMPDIR=folder)


def failing_stage(base: dict[str, str], **variables: str) -> float:
    """Runs `python -m stages.evaluate` for a model params.yaml does not have: it loads
    TensorFlow, then fails on the name. Returns the peak memory, in MB, of the process."""
    code, output, peak_mb = run_with_peak_memory(
        ["python", "-m", "stages.evaluate", "no_such_model", "42"],
        PROJECT_ROOT,
        {**base, **variables},
    )
    assert code == 1, output
    assert "models.no_such_model: no such model" in output
    return peak_mb


@pytest.fixture(scope="module")
def server(servers) -> dict[str, str]:
    """A warm interpreter for this module's stages, started by a first (cold) stage."""
    assert failing_stage(servers) > WARM_CALLER_MB
    wait_for_warm_interpreter(servers["TMPDIR"])
    return servers


def test_a_stage_runs_warm_once_a_server_is_up(server):
    assert failing_stage(server) < WARM_CALLER_MB


@pytest.mark.parametrize("variable", [{"PREFORK": "0"}, {"LOG_LEVEL": "DEBUG"}])
def test_a_stage_runs_cold_when_asked(server, variable):
    assert failing_stage(server, **variable) > WARM_CALLER_MB


# After the warm interpreter's imports: a stage's first use of the default MLflow store.
FIRST_STORE_USE = """
import importlib, sys
import mlflow
import stages
for name in stages.HEAVY_LIBRARIES:
    importlib.import_module(name)
before = set(sys.modules)
mlflow.set_tracking_uri(sys.argv[1])
mlflow.search_experiments()
print(" ".join(sorted(set(sys.modules) - before)))
"""


def test_a_warm_stage_finds_mlflows_sqlite_store_imported(tmp_path):
    # MLflow imports its SQLite store (and Alembic's migration machinery with it) at the first
    # call that touches a run: about 1 s of every training, evaluation and report stage, unless
    # the warm interpreter did it already.
    imported = subprocess.run(
        [sys.executable, "-c", FIRST_STORE_USE, f"sqlite:///{tmp_path / 'mlflow.db'}"],
        cwd=PROJECT_ROOT,
        env=environment(PREFORK="0"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    heavy = [
        name
        for name in imported
        if name == "mlflow.store.tracking.sqlalchemy_store"
        or name.startswith(("alembic.autogenerate", "alembic.ddl", "sqlalchemy.orm"))
    ]
    assert not heavy, (
        f"imported by the first use of the store, not by the warm interpreter: {heavy}"
    )
