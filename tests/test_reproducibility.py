"""Reruns are exact: the same model and seed trained twice gives the same bytes, whether each
stage runs in a cold process or in a warm fork (prefork/), and whether the seed is trained alone
or in one `dvc repro` beside other seeds; another seed gives another model (so that the tests
can fail). The same bytes as an earlier commit's code, on the real data, is what
`python bench/seeds.py --against <commit>` checks (results depend on the CPU, so no bytes are
kept here to compare with)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import (
    WARM_CALLER_MB,
    environment,
    make_project,
    run,
    run_with_peak_memory,
    set_params,
    wait_for_warm_interpreter,
)

pytestmark = pytest.mark.e2e

OUTPUTS = [
    "reports/train/gru/seed-{seed}/history.csv",
    "reports/train/gru/seed-{seed}/metrics.json",
    "reports/evaluate/gru/seed-{seed}/metrics.json",
    "reports/evaluate/gru/seed-{seed}/predictions.csv",
]


@pytest.fixture(scope="module")
def servers() -> dict[str, str]:
    """The variables that give this module's stages warm interpreters of their own, stopped
    at the end (each holds TensorFlow, about 700 MB)."""
    folder = tempfile.mkdtemp(prefix="rp", dir="/tmp")
    yield {"TMPDIR": folder}
    subprocess.run(["pkill", "-f", folder], check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A tiny project with two seeds, its data prepared."""
    project = make_project(tmp_path_factory.mktemp("reproducibility"))
    set_params(project, {"train": {"seeds": [42, 7]}})
    run(["dvc", "repro", "prepare"], project)
    return project


def run_stage(project: Path, stage: str, seed: int, env: dict[str, str]) -> float:
    """Runs one stage of gru as DVC does; returns the peak memory of the process it started."""
    code, output, peak_mb = run_with_peak_memory(
        ["python", "-m", f"stages.{stage}", "gru", str(seed)], project, environment(**env)
    )
    assert code == 0, output[-4000:]
    return peak_mb


def train_and_evaluate(project: Path, seed: int, env: dict[str, str]) -> dict[str, bytes]:
    """Runs gru's training and evaluation stages; returns what they wrote that a rerun must
    reproduce. Each stage must have run the way ``env`` asks: warm, or cold (PREFORK=0)."""
    for stage in ("train", "evaluate"):
        peak_mb = run_stage(project, stage, seed, env)
        if env.get("PREFORK") == "0":
            assert peak_mb > WARM_CALLER_MB, f"{stage} ran in {peak_mb:.0f} MB: not cold"
        else:
            assert peak_mb < WARM_CALLER_MB, f"{stage} ran in {peak_mb:.0f} MB: not warm"
    return {output: (project / output.format(seed=seed)).read_bytes() for output in OUTPUTS}


def test_a_cold_rerun_and_a_warm_rerun_write_the_same_bytes(project, servers):
    cold = train_and_evaluate(project, 42, {**servers, "PREFORK": "0"})
    # A cold stage starts no server: this one does, and runs cold itself.
    run(["python", "-m", "stages.evaluate", "gru", "42"], project, env=servers)
    wait_for_warm_interpreter(servers["TMPDIR"])
    cold_again = train_and_evaluate(project, 42, {**servers, "PREFORK": "0"})
    warm = train_and_evaluate(project, 42, servers)
    for output, content in cold.items():
        assert cold_again[output] == content, f"{output} differs between two cold runs"
        assert warm[output] == content, f"{output} differs between a cold run and a warm one"


def test_a_seed_beside_other_seeds_writes_what_it_writes_alone(project, servers):
    alone = train_and_evaluate(project, 42, {**servers, "PREFORK": "0"})
    stages = ["train@gru-42", "train@gru-7", "evaluate@gru-42", "evaluate@gru-7"]
    run(["dvc", "repro", "--force", "--single-item", *stages], project, env=servers)
    for output, content in alone.items():
        beside = (project / output.format(seed=42)).read_bytes()
        assert beside == content, f"{output} differs when seed 7 is trained in the same run"


def test_another_seed_trains_another_model(project, servers):
    histories = {}
    for seed in (42, 7):
        history = project / f"reports/train/gru/seed-{seed}/history.csv"
        if not history.exists():  # The tests above ran these, unless this one runs alone.
            train_and_evaluate(project, seed, {**servers, "PREFORK": "0"})
        histories[seed] = history.read_bytes()
    assert histories[42] != histories[7]
