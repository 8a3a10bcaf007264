"""Training ahead: while DVC runs one training stage, the next one it will run trains beside it.

DVC runs one stage at a time, and one training keeps only part of a 2-core machine busy: two
trainings at once finished 1.2-1.3x sooner than one after the other, over ten seeds of every
model (docs/performance.md). So a training stage that DVC runs starts, as a worker process of
its own, the next training stage that DVC will run (dvc.yaml's order: models, then seeds; among
the stages whose inputs differ from what dvc.lock records or whose outputs are missing, and
that DVC's run-cache cannot restore). When DVC reaches that stage, the stage finds its training
done or under way: it starts the next one in turn, waits for its own, and moves its outputs
into place. So two trainings run at any time,
each with TensorFlow's default threads (two at once took about 5% longer than with one thread
each, and the last one runs alone at full speed), and every stage still writes its own outputs.

What keeps DVC's semantics and the results:
- A stage takes a worker's outputs only if the worker trained with exactly the inputs the stage
  has: the md5 of every file it depends on and the value of every param it reads, as dvc.yaml
  declares them. Otherwise it trains itself.
- The worker records the training in an MLflow run as the stage would (the stage's tags, its
  per-epoch metrics, system metrics, the model), tagged ``trained_ahead``, and holds the run
  open until its stage takes the outputs. If DVC ends first (Ctrl-C, a failure), the worker
  ends with it, its run KILLED, and nothing of it reaches the project.
- A training's results do not depend on what runs beside it (tests/test_reproducibility.py);
  its time does, and ``trained_beside_another`` in its time's record says so.

Only when DVC runs every stage that changed, in the project: ``dvc repro`` or ``dvc exp run``
with no targets, no ``-s`` and no queue (:func:`dvc_run`). Under any other command
DVC may not reach the stage trained ahead, which would then train for nothing beside the stages
DVC does run. A stage that DVC will restore from its run-cache is not trained ahead either.
Only from a warm fork (a stage that starts cold is starting the warm interpreter, and a worker
beside it would start cold too), on one machine, with op determinism and the fused kernels.
``TRAIN_AHEAD=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

import prefork
from imdb_sentiment.params import ModelParams, Params
from imdb_sentiment.paths import ProjectFiles

logger = logging.getLogger(__name__)

# The command-line flag that makes ``python -m stages.train`` a worker, with the pid of the
# process whose end ends it (DVC's).
WORKER_FLAG = "--ahead-of"
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh"})
# The flags of `dvc repro` and `dvc exp run` that keep a run of every stage that changed; any
# other word (a target, -s, --queue, --dry, ...) may leave some out.
_WHOLE_RUN_FLAGS = frozenset(
    {
        "-f", "--force", "--pull", "--allow-missing", "-k", "--keep-going", "--ignore-errors",
        "--no-run-cache", "--no-commit", "-q", "--quiet", "-v", "-vv", "--verbose",
    }
)  # fmt: skip
_EXP_RUN_VALUED_FLAGS = frozenset({"-S", "--set-param", "-n", "--name", "-m", "--message"})
_FORCE_FLAGS = frozenset({"-f", "--force"})
# Flags under which DVC does not restore a stage from its run-cache.
_NO_RUN_CACHE_FLAGS = _FORCE_FLAGS | {"--no-run-cache"}
_POLL_SECONDS = 0.2
# After a stage takes the outputs, how long the worker may take to end its MLflow run.
_END_SECONDS = 120

_INPUTS = "inputs.json"
_PID = "worker.pid"
_TRAINED = "trained"
_CLAIMED = "claimed"
_LOG = "log.txt"
_OUTPUTS = "outputs"


def stage_name(name: str, seed: int) -> str:
    """DVC's name for the training of model ``name`` with ``seed`` (dvc.yaml's matrix)."""
    return f"train@{name}-{seed}"


def worker_arguments(argv: list[str]) -> tuple[list[str], int | None]:
    """``argv`` without the worker flag, and the pid it names (None for DVC's own stage)."""
    if WORKER_FLAG not in argv:
        return argv, None
    at = argv.index(WORKER_FLAG)
    return argv[:at] + argv[at + 2 :], int(argv[at + 1])


def _may_train_beside(params: ModelParams) -> bool:
    return (
        params.distribution == "none"
        and params.op_determinism
        and params.recurrent_implementation == "fused"
    )


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _dvc_pid() -> int:
    """The process that ran this command, past any shell: DVC under ``dvc repro``."""
    process = psutil.Process(prefork.caller_pid()).parent()
    while process is not None and process.name() in _SHELLS and process.parent() is not None:
        process = process.parent()
    return process.pid if process is not None else os.getppid()


@dataclass(frozen=True)
class DvcRun:
    """What DVC's command line says about the training stages it will run."""

    # Every stage whose inputs changed, in the project (not some stages, not a queue's copy).
    whole_pipeline: bool = False
    # ``-f``: every stage, changed or not, and none restored from the run-cache.
    forced: bool = False
    restores_from_run_cache: bool = True


def dvc_run(command_line: list[str]) -> DvcRun:
    """What DVC's ``command_line`` will run (:class:`DvcRun`)."""
    at = next((i for i, word in enumerate(command_line) if Path(word).name == "dvc"), None)
    if at is None:
        return DvcRun()
    words = command_line[at + 1 :]
    if words[:1] == ["repro"]:
        words, valued = words[1:], frozenset[str]()
    elif words[:2] == ["exp", "run"]:
        words, valued = words[2:], _EXP_RUN_VALUED_FLAGS
    else:
        return DvcRun()
    flags: set[str] = set()
    skip_value = False
    for word in words:
        flag, equals, _ = word.partition("=")
        if skip_value:
            skip_value = False
        elif flag in valued:
            skip_value = not equals
        elif flag in _WHOLE_RUN_FLAGS:
            flags.add(flag)
        else:
            return DvcRun()
    return DvcRun(
        whole_pipeline=True,
        forced=bool(flags & _FORCE_FLAGS),
        restores_from_run_cache=not flags & _NO_RUN_CACHE_FLAGS,
    )


def _interpolate(text: str, name: str, seed: int | None = None) -> str:
    """``text`` of dvc.yaml's train stage for model ``name`` (and ``seed``)."""
    text = text.replace("${item.model}", name)
    return text if seed is None else text.replace("${item.seed}", str(seed))


def _lookup(tree: dict, dotted_key: str):
    for part in dotted_key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


class _Inputs:
    """Every training stage's inputs now, and as dvc.lock recorded them."""

    def __init__(self, project: ProjectFiles) -> None:
        self.project = project
        self.declared = yaml.safe_load(project.pipeline_file.read_text())["stages"]["train"]
        self.params = yaml.safe_load(project.params_file.read_text())
        lock = project.lock_file
        self.lock = (yaml.safe_load(lock.read_text()) if lock.exists() else None) or {}
        self.digests: dict[str, str | None] = {}

    def _md5(self, relative: str) -> str | None:
        if relative not in self.digests:
            path = self.project.root / relative
            self.digests[relative] = None
            if path.is_file():
                with path.open("rb") as file:
                    self.digests[relative] = hashlib.file_digest(file, "md5").hexdigest()
        return self.digests[relative]

    def now(self, name: str) -> dict:
        """What DVC would record for model ``name``'s training stage if it ran now."""
        keys = [_interpolate(key, name) for key in self.declared["params"]]
        return {
            "deps": {path: self._md5(path) for path in self.declared["deps"]},
            "params": {key: _lookup(self.params, key) for key in keys},
        }

    def will_run(self, name: str, seed: int, dvc: DvcRun) -> bool:
        """Whether ``dvc`` will run this training stage: it is forced, or its inputs differ
        from what dvc.lock records or an output is missing (a fresh clone, `dvc remove`), and
        DVC's run-cache holds no run with these inputs that DVC would restore instead."""
        if dvc.forced:
            return True
        changed = self.recorded(name, seed) != self.now(name) or not all(
            (self.project.root / path).exists() for path in self._outputs(name, seed)
        )
        return changed and not (dvc.restores_from_run_cache and self._in_run_cache(name, seed))

    def _outputs(self, name: str, seed: int) -> list[str]:
        return [
            _interpolate(next(iter(entry)) if isinstance(entry, dict) else entry, name, seed)
            for kind in ("outs", "metrics", "plots")
            for entry in self.declared.get(kind, [])
        ]

    def _in_run_cache(self, name: str, seed: int) -> bool:
        """Whether DVC's run-cache holds a run of this stage with its inputs now. Its key is
        DVC's (dvc/stage/cache.py): the sha256 of the stage's dvc.lock entry, outputs by path
        only, which tests/test_pipeline.py checks against DVC's own run-cache."""
        from dvc.utils import dict_sha256

        now = self.now(name)
        if None in now["deps"].values():
            return False  # DVC runs a stage whose dependency is missing (and fails).
        entry = {
            "cmd": _interpolate(self.declared["cmd"], name, seed),
            "deps": [
                {"path": path, "hash": "md5", "md5": now["deps"][path]}
                for path in sorted(now["deps"])
            ],
            "params": {"params.yaml": now["params"]},
            "outs": sorted(self._outputs(name, seed)),
        }
        key = dict_sha256(entry)
        return (self._run_cache_dir / key[:2] / key).is_dir()

    @functools.cached_property
    def _run_cache_dir(self) -> Path:
        """Where DVC keeps its run-cache: its cache folder's ``runs``, as DVC's config says."""
        from dvc.config import Config
        from dvc.repo import Repo

        dvc_dir = Repo.find_dvc_dir(str(self.project.root))
        cache_dir = Config(dvc_dir=dvc_dir)["cache"].get("dir")
        return Path(cache_dir or Path(dvc_dir) / "cache") / "runs"

    def recorded(self, name: str, seed: int) -> dict | None:
        entry = self.lock.get("stages", {}).get(stage_name(name, seed))
        if entry is None:
            return None
        return {
            "deps": {dep["path"]: dep.get("md5") for dep in entry.get("deps", [])},
            "params": entry.get("params", {}).get("params.yaml", {}),
        }


@dataclass
class _Stash:
    """A training ahead's folder: its inputs, worker, log and outputs."""

    folder: Path

    def inputs(self) -> dict | None:
        with contextlib.suppress(OSError, ValueError):
            return json.loads((self.folder / _INPUTS).read_text())
        return None

    def worker(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.folder / _PID).read_text())
        return None

    def in_flight_with(self, inputs: dict) -> bool:
        return self.inputs() == inputs and _alive(self.worker())

    def discard(self) -> None:
        worker = self.worker()
        if worker is not None and _alive(worker):
            with contextlib.suppress(OSError):
                os.kill(worker, signal.SIGTERM)
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Turn:
    """What a training stage does this time: take a training done ahead, or train (beside
    another or alone), writing its outputs under ``outputs``."""

    outputs: ProjectFiles
    trained_ahead: bool = False
    beside: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    _stash: _Stash | None = None

    def hand_over(self) -> None:
        """In a worker, inside its MLflow run, once every output is written: waits until the
        stage takes them (or DVC ends, which ends this process). Nothing for a stage."""
        if self._stash is None:
            return
        (self._stash.folder / _TRAINED).touch()
        while not (self._stash.folder / _CLAIMED).exists():
            time.sleep(_POLL_SECONDS)


def take_turn(
    project: ProjectFiles, all_params: Params, params: ModelParams, dvc_pid: int | None
) -> Turn:
    """The turn of the training stage for ``params``, in DVC's stage (``dvc_pid`` None) or in a
    worker started ahead of it."""
    if dvc_pid is not None:
        _end_with(dvc_pid)
        stash = _Stash(project.trained_ahead_dir(params.name, params.seed))
        return Turn(
            ProjectFiles(stash.folder / _OUTPUTS),
            beside=True,
            tags={"trained_ahead": "true"},
            _stash=stash,
        )
    if (
        not os.environ.get("DVC_STAGE")
        or os.environ.get("TRAIN_AHEAD") == "0"
        or not _may_train_beside(params)
    ):
        return Turn(project)
    inputs = _Inputs(project)
    stash = _Stash(project.trained_ahead_dir(params.name, params.seed))
    if stash.folder.exists() and not stash.in_flight_with(inputs.now(params.name)):
        stash.discard()
    beside = prefork.in_warm_fork() and _start_next(project, all_params, params, inputs)
    if stash.folder.exists() and _take(project, stash):
        return Turn(project, trained_ahead=True)
    return Turn(project, beside=beside)


def _start_next(
    project: ProjectFiles, all_params: Params, after: ModelParams, inputs: _Inputs
) -> bool:
    """Starts a worker for the first training stage after ``after`` that DVC will run, unless
    one trains already. True if a training runs beside this stage's."""
    order = [(name, seed) for name in all_params.models for seed in all_params.train.seeds]
    if (after.name, after.seed) not in order:
        return False
    dvc_pid = _dvc_pid()
    try:
        dvc = dvc_run(psutil.Process(dvc_pid).cmdline())
    except psutil.Error:
        return False
    if not dvc.whole_pipeline:
        return False
    for name, seed in order[order.index((after.name, after.seed)) + 1 :]:
        if not inputs.will_run(name, seed, dvc):
            continue
        now = inputs.now(name)
        if not _may_train_beside(all_params.model(name, seed)):
            return False
        stash = _Stash(project.trained_ahead_dir(name, seed))
        if stash.in_flight_with(now):
            return True
        stash.discard()
        _start_worker(project, stash, name, seed, now, dvc_pid)
        return True
    return False


def _start_worker(
    project: ProjectFiles, stash: _Stash, name: str, seed: int, inputs: dict, dvc_pid: int
) -> None:
    stash.folder.mkdir(parents=True)
    (stash.folder / _INPUTS).write_text(json.dumps(inputs, sort_keys=True))
    with (stash.folder / _LOG).open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "stages.train", name, str(seed), WORKER_FLAG, str(dvc_pid)],
            cwd=project.root,
            env={**os.environ, "DVC_STAGE": stage_name(name, seed)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Ctrl-C reaches DVC, whose end ends the worker (_end_with): its run ends KILLED.
            start_new_session=True,
        )
    (stash.folder / _PID).write_text(str(worker.pid))
    logger.info("Training %s ahead, beside this one", stage_name(name, seed))


def _take(project: ProjectFiles, stash: _Stash) -> bool:
    """Waits for the training ahead in ``stash`` and moves its outputs into the project. False
    if its worker ended without them (this stage then trains, and shows why it fails if it
    does)."""
    worker = stash.worker()
    while not (stash.folder / _TRAINED).exists():
        if not _alive(worker):
            failed_log = stash.folder.with_name(f"{stash.folder.name}.failed.txt")
            with contextlib.suppress(OSError):
                shutil.copy(stash.folder / _LOG, failed_log)
            logger.warning(
                "The training ahead of this stage ended without its outputs (its log: %s); "
                "training here",
                failed_log,
            )
            stash.discard()
            return False
        time.sleep(_POLL_SECONDS)
    outputs = stash.folder / _OUTPUTS
    for output in sorted(path for path in outputs.rglob("*") if path.is_file()):
        target = project.root / output.relative_to(outputs)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(output, target)
    (stash.folder / _CLAIMED).touch()
    deadline = time.monotonic() + _END_SECONDS
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
    sys.stdout.write((stash.folder / _LOG).read_text())
    sys.stdout.flush()
    shutil.rmtree(stash.folder, ignore_errors=True)
    return True


def _end_with(pid: int) -> None:
    """Ends this process (SIGTERM: an open MLflow run ends KILLED) once process ``pid`` is
    gone."""

    def watch() -> None:
        while _alive(pid):
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()
