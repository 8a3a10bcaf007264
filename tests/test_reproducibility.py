"""Reruns are exact: the same model and seed trained twice, in two processes, gives the same
bytes; another seed gives another model (so that the first test can fail)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_project, run, set_params

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A tiny project with two seeds, its data prepared."""
    project = make_project(tmp_path_factory.mktemp("reproducibility"))
    set_params(project, {"train": {"seeds": [42, 7]}})
    run(["dvc", "repro", "prepare"], project)
    return project


def train_and_evaluate(project: Path, seed: int) -> dict[str, bytes]:
    """Runs gru's training and evaluation stages, each in a process of its own; returns what
    they wrote that a rerun must reproduce."""
    run(["python", "-m", "stages.train", "gru", str(seed)], project)
    run(["python", "-m", "stages.evaluate", "gru", str(seed)], project)
    outputs = [
        f"reports/train/gru/seed-{seed}/history.csv",
        f"reports/train/gru/seed-{seed}/metrics.json",
        f"reports/evaluate/gru/seed-{seed}/metrics.json",
        f"reports/evaluate/gru/seed-{seed}/predictions.csv",
    ]
    return {output: (project / output).read_bytes() for output in outputs}


def test_a_rerun_in_another_process_writes_the_same_bytes(project):
    first = train_and_evaluate(project, 42)
    second = train_and_evaluate(project, 42)
    for output, content in first.items():
        assert second[output] == content, f"{output} differs between two runs"


def test_another_seed_trains_another_model(project):
    histories = {}
    for seed in (42, 7):
        history = project / f"reports/train/gru/seed-{seed}/history.csv"
        if not history.exists():  # Seed 42 ran in the test above, unless it ran alone.
            train_and_evaluate(project, seed)
        histories[seed] = history.read_bytes()
    assert histories[42] != histories[7]
