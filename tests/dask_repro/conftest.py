"""A toy DVC pipeline in a git repository: stages of a line of shell each, so that the runner's
tests take seconds, not the IMDB pipeline's minutes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# a -> b@1, b@2, b@3 -> c (c's output is a plain `cache: false` one: DVC's run-cache cannot
# hold it). Each b appends to a's text; c joins two of them. `sleep` files make a stage slow.
TOY_PIPELINE = """\
stages:
  a:
    cmd: python make.py a seed.txt a.txt
    deps: [make.py, seed.txt]
    outs: [a.txt]
  b:
    matrix:
      n: [1, 2, 3]
    cmd: python make.py b${item.n} a.txt b${item.n}.txt
    deps: [make.py, a.txt]
    outs: ["b${item.n}.txt"]
  c:
    cmd: python make.py c b1.txt b2.txt c.txt
    deps: [make.py, b1.txt, b2.txt]
    outs:
      - c.txt:
          cache: false
"""
# Writes its inputs' text and its own name into its output; sleeps first if `sleep-<name>`
# holds a number of seconds; fails if `fail-<name>` exists, with that file's text. Appends its
# name to the file $TOY_RUNS names, if set: each run of a stage, counted.
TOY_COMMAND = """\
import os, pathlib, sys, time
name, *inputs, output = sys.argv[1:]
if os.environ.get("TOY_RUNS"):
    with open(os.environ["TOY_RUNS"], "a") as runs:
        runs.write(name + "\\n")
for ask in ("sleep", "fail"):
    asked = pathlib.Path(f"{ask}-{name}")
    if asked.exists() and ask == "sleep":
        time.sleep(float(asked.read_text()))
    elif asked.exists():
        sys.stderr.write(asked.read_text() + "\\n")
        sys.exit(3)
text = "".join(pathlib.Path(path).read_text() for path in inputs) + name + "\\n"
pathlib.Path(output).write_text(text)
"""


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.update(
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    env.update(extra)
    return env


def run(command: list[str], cwd: Path, expect_failure: bool = False, **env: str) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=environment(**env), capture_output=True, text=True, check=False
    )
    output = result.stdout + result.stderr
    assert (result.returncode != 0) == expect_failure, f"{command} {result.returncode}:\n{output}"
    return output


def make_toy(folder: Path) -> Path:
    """The toy pipeline, committed in a new git + DVC repository in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dvc.yaml").write_text(TOY_PIPELINE)
    (folder / "make.py").write_text(TOY_COMMAND)
    (folder / "seed.txt").write_text("seed\n")
    run(["git", "init", "-q"], folder)
    run(["dvc", "init", "-q"], folder)
    run(["git", "add", "-A"], folder)
    run(["git", "commit", "-qm", "toy"], folder)
    return folder


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return make_toy(tmp_path / "toy")
