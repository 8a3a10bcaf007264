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
