"""The layout's promises, checked on the source: stages are entry points that import no other
stage, the library imports no stage, and MLflow is behind one module."""

import ast

import pytest

from tests.imports import PROJECT_ROOT, imported_names

STAGES = sorted((PROJECT_ROOT / "stages").glob("[!_]*.py"))
LIBRARY = sorted((PROJECT_ROOT / "imdb_sentiment").glob("**/*.py"))


@pytest.mark.parametrize("stage", STAGES, ids=lambda path: path.stem)
def test_a_stage_imports_no_other_stage(stage):
    imported_stages = {name for name in imported_names(stage) if name.startswith("stages")}
    assert not imported_stages, f"stages/{stage.name} imports {sorted(imported_stages)}"


def test_the_library_imports_no_stage():
    for module in LIBRARY:
        assert not [name for name in imported_names(module) if name.split(".")[0] == "stages"]


def test_only_the_tracking_package_imports_mlflow():
    importers = {
        module.relative_to(PROJECT_ROOT).as_posix()
        for module in [*STAGES, *LIBRARY]
        if any(name.split(".")[0] == "mlflow" for name in imported_names(module))
    }
    assert importers and all(name.startswith("imdb_sentiment/tracking/") for name in importers)


def test_each_tracking_module_says_its_one_job_first():
    for module in (PROJECT_ROOT / "imdb_sentiment" / "tracking").glob("*.py"):
        first_line = (ast.get_docstring(ast.parse(module.read_text())) or "").split("\n")[0]
        assert len(first_line) > 20, f"{module.name} has no first line saying what it does"


@pytest.mark.parametrize("stage", STAGES, ids=lambda path: path.stem)
def test_a_stage_stays_thin(stage):
    # Read params, call the library, write, log: the work itself lives in imdb_sentiment/.
    assert len(stage.read_text().splitlines()) <= 110


ALL_CODE = sorted(
    path
    for folder in ("stages", "imdb_sentiment", "fast_rnn", "prefork", "dask_repro", "bench")
    for path in (PROJECT_ROOT / folder).glob("**/*.py")
)


@pytest.mark.parametrize("module", ALL_CODE, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_no_module_imports_dvc(module):
    # DVC is used through its command line and documented files: its modules are private, and
    # change with its releases.
    assert not [name for name in imported_names(module) if name.split(".")[0] == "dvc"]


def test_the_runner_imports_nothing_of_the_project():
    for module in (PROJECT_ROOT / "dask_repro").glob("*.py"):
        project = {"stages", "imdb_sentiment", "fast_rnn", "prefork"}
        assert not [name for name in imported_names(module) if name.split(".")[0] in project]


def test_a_task_workspace_of_the_runner_is_a_copy_of_the_users_project():
    # Its stages log to the user's store and read what lives beside the user's project.
    from dask_repro.workspace import WORKSPACES
    from imdb_sentiment.paths import PROJECT_COPIES, users_project

    assert WORKSPACES in PROJECT_COPIES
    assert users_project(PROJECT_ROOT / WORKSPACES / "run" / "train@gru-42") == PROJECT_ROOT
