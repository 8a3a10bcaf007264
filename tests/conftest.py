"""Shared fixtures: a tiny IMDB-like archive with learnable synthetic reviews."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_ARCHIVE = PROJECT_ROOT.parent / "shared/data/aclImdb_v1_labeled.tar.gz"
# The tests' own params: small enough to train in seconds, large enough to learn the synthetic
# reviews, and fixed, whatever the project's params.yaml holds. A key they leave out (a new
# hyperparameter, say) takes the project's value.
TEST_PARAMS_FILE = PROJECT_ROOT / "tests" / "data" / "params.yaml"


def tiny_params(local_copy: Path | None = None, sha256: str | None = None) -> dict:
    """A fresh copy of the tests' params, reading the archive ``local_copy`` if given."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    for section, values in yaml.safe_load(TEST_PARAMS_FILE.read_text()).items():
        # The tests' models and networks replace the project's; other sections change key by
        # key.
        params[section] = (
            values if section in ("models", "networks") else {**params[section], **values}
        )
    params["data"].update(local_copy=local_copy and str(local_copy), local_copy_sha256=sha256)
    return params


def networks(models, seeds: list[int]) -> dict:
    """params.yaml's networks: each of ``models`` with each of ``seeds``."""
    return {f"{model}-{seed}": {"model": model, "seed": seed} for model in models for seed in seeds}


def model_params(cell: str = "gru", **hyperparameters):
    """The tests' params of the model of ``cell``, with ``hyperparameters`` changed: for
    building a model by keyword (``build_model(model_params("lstm", units=4), 100, 12)``)."""
    from imdb_sentiment.params import ModelParams, parse_params

    tests_model = parse_params(tiny_params()).model(cell)
    return ModelParams.model_validate({**tests_model.model_dump(), **hyperparameters})


POSITIVE_WORDS = ["great", "wonderful", "superb", "moving", "brilliant", "loved", "beautiful"]
NEGATIVE_WORDS = ["awful", "boring", "terrible", "waste", "dull", "hated", "worst"]
NEUTRAL_WORDS = [
    "the",
    "film",
    "movie",
    "a",
    "plot",
    "actor",
    "scene",
    "story",
    "and",
    "it",
    "was",
    "of",
    "this",
    "director",
    "camera",
    "ending",
    "music",
    "character",
]


def synthetic_review(rng: random.Random, positive: bool, length: int = 40) -> str:
    """A review of neutral words sprinkled with words of its sentiment, with HTML breaks."""
    sentiment_words = POSITIVE_WORDS if positive else NEGATIVE_WORDS
    words = [
        rng.choice(sentiment_words) if rng.random() < 0.2 else rng.choice(NEUTRAL_WORDS)
        for _ in range(length)
    ]
    words[rng.randrange(length)] += "!<br /><br />"
    return " ".join(words).capitalize() + "."


def write_archive(path: Path, reviews_per_label: int, seed: int = 0, extra: dict | None = None):
    """Writes an aclImdb-layout tarball; returns its sha256.

    ``extra`` maps more member names to their text or bytes (an unlabeled review, say).
    """
    rng = random.Random(seed)
    members = {"aclImdb/README": "synthetic", "aclImdb/imdb.vocab": "the\nfilm\n"}
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            for index in range(reviews_per_label):
                rating = rng.randint(7, 10) if label == "pos" else rng.randint(1, 4)
                name = f"aclImdb/{split}/{label}/{index}_{rating}.txt"
                members[name] = synthetic_review(rng, label == "pos", rng.randint(20, 120))
    members.update(extra or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text if isinstance(text, bytes) else text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny_archive(tmp_path: Path) -> tuple[Path, str]:
    """A tarball with 60 reviews per label and split, plus an unlabeled one to be ignored."""
    path = tmp_path / "aclImdb_tiny.tar.gz"
    sha256 = write_archive(
        path, reviews_per_label=60, extra={"aclImdb/train/unsup/0_0.txt": "unlabeled words"}
    )
    return path, sha256


@pytest.fixture
def workspace(tmp_path, monkeypatch, tiny_archive):
    """The pipeline's files moved to a temporary folder, with tiny params and a temporary
    MLflow store, and the tiny archive downloaded and prepared: stages can run in-process."""
    from imdb_sentiment import paths
    from stages import download, prepare

    root = tmp_path / "workspace"
    root.mkdir()
    monkeypatch.setattr(paths, "this_project", lambda: paths.ProjectFiles(root))
    paths.this_project().params_file.write_text(yaml.safe_dump(tiny_params(*tiny_archive)))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    download.main([])
    prepare.main([])
    yield root
    import mlflow

    mlflow.set_tracking_uri(None)


def environment(**extra: str) -> dict[str, str]:
    """The user's environment, with the test's Python first on PATH and no MLflow settings
    but those in ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    env.update(extra)
    return env


def run(
    command: list[str], cwd: Path, expect_failure: bool = False, env: dict | None = None
) -> str:
    """Runs a command in the copy; returns its output, and checks that it succeeded (or not).
    ``env`` adds variables to :func:`environment`."""
    result = subprocess.run(
        command, cwd=cwd, env=environment(**(env or {})), capture_output=True, text=True
    )
    output = result.stdout + result.stderr
    failed = result.returncode != 0
    assert failed == expect_failure, (
        f"{' '.join(command)} exit {result.returncode}:\n{output[-6000:]}"
    )
    return output


# Runs a command and writes the peak memory of its process tree, in KB, to a file. A fresh
# interpreter in between: a child forked straight from a test process that has loaded
# TensorFlow would report that process's memory as its own (Linux carries it across the fork).
_PEAK_MEMORY = (
    "import pathlib, resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "pathlib.Path(sys.argv[1]).write_text(str(peak))\n"
    "sys.exit(code)\n"
)


def run_with_peak_memory(command: list[str], cwd: Path, env: dict) -> tuple[int, str, float]:
    """Runs ``command``; returns its exit code, its output and the peak memory, in MB, of the
    process it started (and of that process's children)."""
    with tempfile.NamedTemporaryFile() as peak:
        result = subprocess.run(
            [sys.executable, "-c", _PEAK_MEMORY, peak.name, *command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return result.returncode, result.stdout, int(Path(peak.name).read_text()) / 1024


# A stage run in a warm fork (prefork/) leaves the process DVC started far under this: it never
# loads TensorFlow; a cold one that does is far over it.
WARM_CALLER_MB = 200


def wait_for_warm_interpreter(folder: str) -> None:
    """Waits until a warm interpreter listens in the server folder ``folder`` (a TMPDIR)."""
    deadline = time.monotonic() + 120
    while not list(Path(folder).glob("*/*.sock")):
        assert time.monotonic() < deadline, "no warm interpreter started"
        time.sleep(0.5)


@contextlib.contextmanager
def warm_interpreter_folder(prefix: str) -> Iterator[str]:
    """A TMPDIR of the caller's own, for warm interpreters that only its stages use; their
    servers are stopped at the end (each holds TensorFlow, about 700 MB)."""
    folder = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    try:
        yield folder
    finally:
        subprocess.run(["pkill", "-f", folder], check=False)


def start_warm_interpreter(project: Path, env: dict[str, str]) -> None:
    """Starts the warm interpreter that stages run in ``project`` with ``env`` (which names a
    TMPDIR of the caller's own) fork from, and waits until it listens. A stage that finds none
    starts one and runs cold itself: this one fails on its model's name once its imports are
    done, and writes nothing."""
    run(
        ["python", "-m", "stages.evaluate", "no_such_model", "42"],
        project,
        expect_failure=True,
        env=env,
    )
    wait_for_warm_interpreter(env["TMPDIR"])


def set_params(project: Path, changes: dict) -> None:
    """Changes params.yaml's sections key by key; networks is replaced whole."""
    params_file = project / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    for section, values in changes.items():
        if section == "networks":
            params[section] = values
        else:
            params[section].update(values)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def start_interruptible(command: list[str], project: Path, env=None) -> subprocess.Popen:
    """Starts ``command`` in ``project``, in a process group of its own to signal as Ctrl-C or
    a job scheduler does; its output comes in ``.stdout``."""
    return subprocess.Popen(
        command,
        cwd=project,
        env=environment(**(env or {})),
        start_new_session=True,
        # A shell without job control (CI) starts background commands with SIGINT ignored,
        # and children inherit that: give the command the Ctrl-C a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def make_project(folder: Path) -> Path:
    """A git + DVC copy of the project in ``folder``, with tiny params and a tiny archive,
    committed and not yet run."""
    project = folder / "project"
    project.mkdir()
    for name in (
        "stages",
        "imdb_sentiment",
        "fast_rnn",
        "prefork",
        "dask_repro",
        "dvc.yaml",
        ".gitignore",
        ".dvcignore",
    ):
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, project / name)
    archive = project.parent / "aclImdb_tiny.tar.gz"
    sha256 = write_archive(archive, reviews_per_label=150)
    (project / "params.yaml").write_text(
        yaml.safe_dump(tiny_params(archive, sha256), sort_keys=False)
    )
    run(["git", "init", "-q"], project)
    run(["dvc", "init", "-q"], project)
    # The overlaid plots' templates (dvc.yaml's top-level plots).
    shutil.copytree(PROJECT_ROOT / ".dvc" / "plots", project / ".dvc" / "plots")
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "tiny project"], project)
    return project


def run_queued_experiments(project: Path, params_by_name: dict[str, str], env=None) -> str:
    """Queues one `dvc exp run` per name (``-S`` value), runs them with `dvc queue start -j 2`
    and waits for the queue to empty; returns the final `dvc queue status`."""
    for name, setting in params_by_name.items():
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", setting], project, env=env)
    # The workers outlive `dvc queue start` and hold on to its output: nothing may wait on it.
    subprocess.run(
        ["dvc", "queue", "start", "-j", "2"],
        cwd=project,
        env=environment(**(env or {})),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    deadline = time.monotonic() + 600
    try:
        while "Queued" in (status := run(["dvc", "queue", "status"], project)) or (
            "Running" in status
        ):
            assert time.monotonic() < deadline, status
            time.sleep(2)
    finally:
        run(["dvc", "queue", "stop"], project)
    return status
