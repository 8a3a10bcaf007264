"""`make settle` on the tiny project: looks of three seeds up to six; it stops when every pair is
closed or at the cap, the report says which look each pair closed at, with no fixed-sample
p-value; Ctrl-C in the middle of a look leaves params.yaml and the workspace consistent, and the
next `make settle` goes on from there to the same end."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from imdb_sentiment.params import load_params
from tests.conftest import make_project, run, start_interruptible

pytestmark = pytest.mark.e2e

SETTLE = ["python", "-m", "imdb_sentiment.settle"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    # The tests' params: looks of three seeds up to six (tests/data/params.yaml).
    return make_project(tmp_path_factory.mktemp("settle"))


def seeds_of(project: Path) -> dict[str, list[int]]:
    params = load_params(project / "params.yaml")
    return {name: params.seeds(name) for name in params.models}


def test_ctrl_c_during_a_look_leaves_a_state_the_next_settle_goes_on_from(project):
    settle = start_interruptible(SETTLE, project)
    deadline = time.monotonic() + 300
    output = ""
    # A training of the first look under way (with its evaluation: one task).
    while "train@gru-2, evaluate@gru-2: started" not in output:
        assert time.monotonic() < deadline and settle.poll() is None, output
        output += settle.stdout.readline()
    os.killpg(settle.pid, signal.SIGINT)
    assert settle.wait(timeout=120) != 0
    # The first look's networks are in params.yaml (written before the look ran), and the
    # workspace holds no half-made stage: DVC records the stages that finished, no others.
    assert {len(of) for of in seeds_of(project).values()} == {3}
    assert yaml.safe_load((project / "params.yaml").read_text())["settle"]["design"] == (
        "sequential"
    )
    assert len(run(["git", "worktree", "list"], project).splitlines()) == 1
    output = run(SETTLE, project)
    assert "Settled, with" in output


def test_the_settle_ends_with_every_pair_closed_or_at_the_cap(project):
    if "sequential" not in (project / "params.yaml").read_text():  # This test alone.
        run(SETTLE, project)
    pairs = pd.read_csv(project / "reports/comparison_pairs.csv")
    assert set(pairs["design"]) == {"sequential"}
    assert set(pairs["verdict"]) <= {"different", "equivalent", "open at the cap"}
    assert pairs["p_value"].isna().all()  # No fixed-sample p-value after repeated looks.
    seeds = seeds_of(project)
    for row in pairs.itertuples():
        # A pair closed at a look has that look's seeds of each; a model stops when its pairs do.
        assert row.seeds_a == 3 * row.look
        assert len(seeds[row.model_a]) >= row.seeds_a
    report = (project / "reports/comparison.md").read_text()
    assert "group-sequential design over seeds" in report
    assert "Welch p" not in report and "TOST" not in report
    assert "look 1 of at most 2" in report or "look 2 of at most 2" in report
    # Nothing left to run: DVC and the report agree with params.yaml.
    assert "up to date" in run(["dvc", "repro"], project)
