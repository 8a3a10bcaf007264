"""dvc.yaml agrees with the code: its outputs are the files imdb_sentiment/paths.py names, and
each stage depends on every project module its command imports (DVC reruns a stage when a
dependency changes, so a missing one means stale results)."""

import ast
from pathlib import Path

import pytest
import yaml

from fast_rnn import build
from imdb_sentiment import paths
from imdb_sentiment.dataset import SHAPING_DATA_PARAMS
from imdb_sentiment.params import Hyperparameters
from imdb_sentiment.tracking import packaging
from tests.conftest import make_project, networks, run, set_params
from tests.imports import PROJECT_ROOT, closure

DVC_YAML = yaml.safe_load((paths.this_project().root / "dvc.yaml").read_text())
# Modules that only record, and what only they import: MLflow's store, runs and their clean-up,
# provenance and records (a change to what is logged must not retrain every model), and the
# console. Not the served model's packaging: what a run logs as its model is an output of
# training.
RECORDING_OR_SCHEDULING = frozenset(
    PROJECT_ROOT / "imdb_sentiment" / name
    for name in (
        "tracking/store.py",
        "tracking/lifecycle.py",
        "tracking/cleanup.py",
        "tracking/busy.py",
        "tracking/provenance.py",
        "tracking/records.py",
        "cli.py",
    )
)
# Files a module reads as code: the C++ sources that fast_rnn/build.py compiles, the served
# model's code that the packaging hands to MLflow.
DATA_OF_MODULE = {
    PROJECT_ROOT / "fast_rnn" / "build.py": list(build.SOURCES),
    PROJECT_ROOT / "imdb_sentiment" / "tracking" / "packaging.py": [packaging.SERVED_MODEL_CODE],
}


def definition(stage: str) -> dict:
    found = DVC_YAML["stages"][stage]
    return found.get("do", found)


def declared_outputs(stage: str, model: str = "", seed: int = 0) -> set[Path]:
    declared = set()
    for kind in ("outs", "metrics", "plots"):
        for entry in definition(stage).get(kind, []):
            name = next(iter(entry)) if isinstance(entry, dict) else entry
            name = name.replace("${item.model}", model).replace("${item.seed}", str(seed))
            declared.add(paths.this_project().root / name)
    return declared


def test_download_and_prepare_outputs_match_paths():
    assert declared_outputs("download") == {paths.this_project().archive}
    assert declared_outputs("prepare") == {
        paths.this_project().train_split,
        paths.this_project().validation_split,
        paths.this_project().test_split,
        paths.this_project().vocabulary,
        paths.this_project().encoding_settings,
        paths.this_project().data_stats,
    }


@pytest.mark.parametrize(("model", "seed"), [("lstm", 42), ("gru128", 7)])
def test_per_model_and_seed_outputs_match_paths(model, seed):
    assert declared_outputs("train", model, seed) == {
        paths.this_project().model_file(model, seed),
        paths.this_project().run_id_file(model, seed),
        paths.this_project().training_time(model, seed),
        paths.this_project().training_summary(model, seed),
        paths.this_project().training_history(model, seed),
    }
    assert declared_outputs("evaluate", model, seed) == {
        paths.this_project().evaluation_metrics(model, seed),
        paths.this_project().roc_points(model, seed),
        paths.this_project().evaluation_predictions(model, seed),
        paths.this_project().validation_predictions(model, seed),
    }


def test_report_outputs_match_paths():
    assert declared_outputs("report") == {
        paths.this_project().comparison_table,
        paths.this_project().comparison_csv,
        paths.this_project().pairs_csv,
        paths.this_project().runs_csv,
        paths.this_project().summary_metrics,
        paths.this_project().learning_curves_plot,
        paths.this_project().roc_curves_plot,
        paths.this_project().test_accuracy_plot,
        *(
            paths.this_project().overlay_plot_data(name)
            for name in ("learning_curves", "roc", "test_accuracy")
        ),
    }


def test_the_overlaid_plots_read_the_reports_tables():
    plotted = {next(iter(props["y"])) for plot in DVC_YAML["plots"] for props in plot.values()}
    assert plotted == {
        f"reports/plots/{name}.csv" for name in ("learning_curves", "roc", "test_accuracy")
    }


def _runs_nothing(module: Path) -> bool:
    """A package's ``__init__.py`` that holds only its docstring: importing it runs nothing."""
    body = ast.parse(module.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def code_dependencies(stage: str) -> set[str]:
    """What dvc.yaml's ``deps`` of ``stage`` should list of the project's code."""
    modules = closure(PROJECT_ROOT / "stages" / f"{stage}.py", stop_at=RECORDING_OR_SCHEDULING)
    modules = {module for module in modules if not _runs_nothing(module)}
    data = {file for module in modules for file in DATA_OF_MODULE.get(module, [])}
    return {str(path.relative_to(PROJECT_ROOT)) for path in modules | data}


@pytest.mark.parametrize("stage", list(DVC_YAML["stages"]))
def test_each_stage_depends_on_exactly_the_code_its_command_imports(stage):
    declared = {
        dependency
        for dependency in definition(stage)["deps"]
        if dependency.startswith(("stages/", "imdb_sentiment/", "fast_rnn/"))
    }
    expected = code_dependencies(stage)
    assert declared == expected, (
        f"dvc.yaml's {stage} deps: add {sorted(expected - declared)}, "
        f"remove {sorted(declared - expected)}"
    )
    assert definition(stage)["cmd"].startswith(f"python -m stages.{stage}")


def test_the_derived_dependencies_follow_imports_through_other_modules():
    # train imports modeling, which imports fast_rnn's layers, which import its ops and build.
    assert {"fast_rnn/ops.py", "fast_rnn/recurrent_sequences.cc"} <= code_dependencies("train")
    assert "imdb_sentiment/tracking/records.py" not in code_dependencies("train")


def test_a_change_to_what_is_served_reruns_the_stage_that_logs_the_model():
    served = {
        "imdb_sentiment/classifier.py",
        "imdb_sentiment/tracking/packaging.py",
        "imdb_sentiment/tracking/served_model.py",
    }
    assert served <= code_dependencies("train")
    assert set(definition("train")["deps"]) >= served


def test_per_network_stages_run_once_per_network_and_declare_their_params():
    for name in ("train", "evaluate"):
        assert DVC_YAML["stages"][name]["foreach"] == "${networks}"
    declared = set(definition("train")["params"])
    # Every shared hyperparameter, key by key, and the model's own entry: not networks, so that
    # adding a network does not retrain those trained already.
    assert {f"train.{key}" for key in Hyperparameters.model_fields} <= declared
    assert "models.${item.model}" in declared
    assert not {"train", "networks"} & declared


def test_networks_give_one_training_and_evaluation_each_and_seeds_may_differ(tmp_path):
    project = make_project(tmp_path)
    chosen = {**networks(["simplernn", "lstm", "gru"], [1, 2]), **networks(["gru"], [3])}
    set_params(project, {"networks": chosen})
    stages = {line.split()[0] for line in run(["dvc", "stage", "list"], project).splitlines()}
    assert {stage for stage in stages if stage.startswith("train@")} == {
        f"train@{name}" for name in chosen
    }
    assert {f"evaluate@{name}" for name in chosen} <= stages


def test_prepare_declares_exactly_the_data_params_that_shape_its_outputs():
    declared = definition("prepare")["params"]
    assert sorted(declared) == sorted(f"data.{name}" for name in SHAPING_DATA_PARAMS)
    assert set(declared) <= set(definition("train")["params"])
