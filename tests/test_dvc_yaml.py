"""dvc.yaml and stages/paths.py must name the same files: DVC caches and tracks what dvc.yaml
says, while the code writes where paths.py says."""

from pathlib import Path

import pytest
import yaml

from stages import paths
from stages.prepare import SHAPING_DATA_PARAMS

DVC_YAML = yaml.safe_load((paths.PROJECT_ROOT / "dvc.yaml").read_text())


def declared_outputs(stage: str, model: str = "") -> set[Path]:
    definition = DVC_YAML["stages"][stage]
    definition = definition.get("do", definition)
    declared = set()
    for kind in ("outs", "metrics", "plots"):
        for entry in definition.get(kind, []):
            name = next(iter(entry)) if isinstance(entry, dict) else entry
            declared.add(paths.PROJECT_ROOT / name.replace("${key}", model))
    return declared


def test_download_and_prepare_outputs_match_paths():
    assert declared_outputs("download") == {paths.ARCHIVE}
    assert declared_outputs("prepare") == {
        paths.TRAIN_SPLIT,
        paths.VALIDATION_SPLIT,
        paths.TEST_SPLIT,
        paths.VOCABULARY,
        paths.ENCODING_SETTINGS,
        paths.DATA_STATS,
    }


@pytest.mark.parametrize("model", ["lstm", "gru128"])
def test_per_model_outputs_match_paths(model):
    assert declared_outputs("train", model) == {
        paths.model_file(model),
        paths.run_id_file(model),
        paths.training_summary(model),
        paths.training_history(model),
    }
    assert declared_outputs("evaluate", model) == {
        paths.evaluation_metrics(model),
        paths.roc_points(model),
        paths.evaluation_predictions(model),
    }


def test_report_outputs_match_paths():
    assert declared_outputs("report") == {
        paths.COMPARISON_TABLE,
        paths.COMPARISON_CSV,
        paths.LEARNING_CURVES_PLOT,
        paths.ROC_CURVES_PLOT,
        paths.TEST_ACCURACY_PLOT,
    }


def test_each_stage_depends_on_its_own_module_and_runs_it():
    for name, definition in DVC_YAML["stages"].items():
        definition = definition.get("do", definition)
        assert f"stages/{name}.py" in definition["deps"]
        assert definition["cmd"].startswith(f"python -m stages.{name}")


def test_per_model_stages_run_once_per_model_and_declare_that_models_params():
    for name in ("train", "evaluate"):
        assert DVC_YAML["stages"][name]["foreach"] == "${models}"
    assert {"train", "models.${key}"} <= set(DVC_YAML["stages"]["train"]["do"]["params"])


def test_prepare_declares_exactly_the_data_params_that_shape_its_outputs():
    declared = DVC_YAML["stages"]["prepare"]["params"]
    assert sorted(declared) == sorted(f"data.{name}" for name in SHAPING_DATA_PARAMS)
    assert set(declared) <= set(DVC_YAML["stages"]["train"]["do"]["params"])
