"""Where the time of a multi-seed run goes: N seeds of every model, from the prepared data, in
a scratch copy of the project, run one way or several, one after the other in the same
invocation, so that their times compare. Not a test: it prints numbers.

    python bench/seeds.py --seeds 2                          # make run's runner (dask_repro)
    python bench/seeds.py --seeds 2 --ways runner,dvc        # and plain `dvc exp run`
    python bench/seeds.py --seeds 2 --ways 33263ea,runner    # a commit's code, with DVC

The ways, each with params.yaml's networks set to N seeds of every model: ``runner`` is
`python -m dask_repro` (what `make run` runs, one stage per core at a time); ``dvc`` is
`dvc repro` (one stage at a time); a git commit is that commit's code under `dvc repro` (or,
for code before params.yaml named its networks, `dvc exp run -S train.seeds=[...]`). A way may
end with ``+NAME=VALUE``, an environment variable for that way's run alone
(``runner+PREFORK=0``). Every copy is made before the first way runs: an edit to the working
tree meanwhile changes none of them. Needs the prepared data
(`dvc repro prepare`). Each copy gets the project's files (the working tree's, or a commit's),
the prepared data, its own git repository, DVC cache and MLflow store, so nothing is restored
from the project's run-cache and nothing is logged to its store. Prints, per stage, its wall
time (under DVC, from its "Running stage" line to the next one, so DVC's own work between
stages counts with the stage before; under the runner, its task's, which run side by side), for
training stages the seconds inside Keras' fit and the training's throughput against the
machine's float32 matmul peak; then the totals by kind, and whether every way gave every model
and seed the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from imdb_sentiment import networks, paths  # noqa: E402
from imdb_sentiment.files import read_json  # noqa: E402
from imdb_sentiment.params import load_params  # noqa: E402

GATES = {"simplernn": 1, "lstm": 4, "gru": 3}
RUNNING_STAGE = re.compile(r"Running stage '([^']+)'")
# The runner's line when a task ends: its stages (a training and its evaluation are one task).
TASK_DONE = re.compile(r"^\S+ (\S+(?:, \S+)*): done in ([0-9.]+) s")
# The seeds a run of N seeds uses: the default one first, as params.yaml's comment suggests.
SEED_ORDER = [42, *range(1, 40)]

MATMUL_PEAK = """
import time, tensorflow as tf
a = tf.random.normal([4096, 4096]); b = tf.random.normal([4096, 4096])
tf.matmul(a, b).numpy()
best = float("inf")
for _ in range(5):
    started = time.perf_counter(); tf.matmul(a, b).numpy()
    best = min(best, time.perf_counter() - started)
print(2 * 4096 ** 3 / best / 1e9)
"""


@dataclass
class Stage:
    name: str
    wall: float
    fit: float | None = None
    first_step: float | None = None
    gflop: float | None = None


@dataclass
class PipelineRun:
    label: str
    wall: float
    stages: list[Stage] = field(default_factory=list)
    # What each model and seed gave (history, metrics, predictions), by path: sha256.
    results: dict[str, str] = field(default_factory=dict)


# The files that must come out byte for byte the same from any version of the code that
# claims to compute the same thing (tests/test_reproducibility.py).
RESULT_FILES = [
    "reports/train/*/seed-*/history.csv",
    "reports/train/*/seed-*/metrics.json",
    "reports/evaluate/*/seed-*/metrics.json",
    "reports/evaluate/*/seed-*/roc.csv",
    "reports/evaluate/*/seed-*/predictions.csv",
]


def matmul_peak_gflops() -> float:
    """TensorFlow's float32 matmul of two 4096 x 4096 matrices, best of five, in GFLOP/s: the
    most this machine's cores do through TensorFlow."""
    output = subprocess.run(
        [sys.executable, "-c", MATMUL_PEAK],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return float(output.stdout.split()[-1])


def forward_flops_per_review(params, sequence_length: int) -> float:
    """Multiply-adds x 2 of one review's forward pass through the recurrent and dense layers
    (the embedding is a lookup)."""
    directions = 2 if params.bidirectional else 1
    gates = GATES[params.cell]
    width, flops = params.embedding_dim, 0.0
    for _ in range(params.layers):
        flops += 2 * sequence_length * (width + params.units) * gates * params.units * directions
        width = params.units * directions
    return flops + 2 * (width * params.dense_units + params.dense_units)


def training_gflop(project: paths.ProjectFiles, name: str, seed: int) -> float:
    """The training stage's arithmetic: forward, backward and weight gradients (3x the forward)
    for every training review of every epoch run, and the validation pass after each."""
    import numpy as np

    from imdb_sentiment.params import model_from_arguments

    all_params = load_params(project.params_file)
    params = model_from_arguments(all_params, [name, str(seed)], "bench")
    epochs = read_json(project.training_summary(name, seed))["epochs_run"]
    with np.load(project.train_split) as train, np.load(project.validation_split) as val:
        train_reviews, sequence_length = train["reviews"].shape
        val_reviews = val["reviews"].shape[0]
    forward = forward_flops_per_review(params, sequence_length)
    return epochs * (3 * train_reviews + val_reviews) * forward / 1e9


def scratch_copy(against: str | None) -> Path:
    """A new folder holding the project's files (the working tree's, or commit ``against``'s),
    the prepared data and a git repository of its own with them committed."""
    root = Path(tempfile.mkdtemp(prefix="imdb-bench-"))
    if against:
        archive = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "archive", against],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    else:
        listed = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        for relative in filter(None, listed.split("\0")):
            source = PROJECT_ROOT / relative
            if source.is_file():
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, root / relative)
    quiet = {"capture_output": True, "check": True, "cwd": root}
    subprocess.run(["git", "init", "-q"], **quiet)
    subprocess.run(["git", "add", "-A"], **quiet)
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "x"],
        **quiet,
    )
    # The data after the commit: DVC's, not git's.
    project = paths.this_project()
    for source in (project.archive, project.data_stats, *project.prepared_dir.iterdir()):
        target = root / source.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    # The data stages as they are: their outputs committed to this copy's cache.
    subprocess.run(["dvc", "commit", "--force", "download", "prepare"], **quiet)
    return root


def run_pipeline(
    label: str, root: Path, seeds: list[int], runner: bool, env: dict[str, str]
) -> PipelineRun:
    """The pipeline with ``seeds`` in ``root``, by the runner or by `dvc exp run`, with ``env``
    added to the environment; each stage timed."""
    params_text = (root / "params.yaml").read_text()
    if "\nnetworks:" in params_text:
        # This code's params name their networks: every model with these seeds, in the
        # order the file lists the models' networks (the stages' order).
        models = networks.model_order(load_params(root / "params.yaml"))
        networks.write(root / "params.yaml", {name: list(seeds) for name in models})
        command = [sys.executable, "-m", "dask_repro"] if runner else ["dvc", "repro"]
    else:  # An older commit's code: one list of seeds for every model.
        setting = f"train.seeds=[{','.join(map(str, seeds))}]"
        command = (
            [sys.executable, "-m", "dask_repro", "-S", setting]
            if runner
            else ["dvc", "exp", "run", "-S", setting]
        )
    # Stops the warm interpreter (prefork/) before each way: one left by the way before, whose
    # key is the same environment's, would give this way's first stages a warm start. (On
    # 2026-12-07 both ways' first stages still reached their first step in about 5 s, as warm
    # ones do: whether this stop reaches the server the copies use is not yet checked.)
    subprocess.run(
        [sys.executable, "-c", "import stages; stages.stop_warm_interpreter()"],
        cwd=PROJECT_ROOT,
        check=False,
        capture_output=True,
    )
    time.sleep(1)
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=root,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    starts: list[tuple[str, float]] = []
    durations: dict[str, float] = {}
    log = []
    for line in process.stdout:
        log.append(line)
        if (match := RUNNING_STAGE.search(line)) and not runner:
            starts.append((match.group(1), time.perf_counter() - started))
        if match := TASK_DONE.search(line):
            durations[match.group(1)] = float(match.group(2))
    wall = time.perf_counter() - started
    if process.wait() != 0:
        sys.stdout.write("".join(log[-40:]))
        raise SystemExit(f"{label}: `{' '.join(command)}` failed in {root}")
    for index, (name, start) in enumerate(starts):
        durations[name] = (starts[index + 1][1] if index + 1 < len(starts) else wall) - start
    run = PipelineRun(label, wall)
    project = paths.ProjectFiles(root)
    for name, seconds in durations.items():
        stage = Stage(name, seconds)
        training = next((n for n in name.split(", ") if n.startswith("train@")), None)
        if training:
            model, seed = training.removeprefix("train@").rsplit("-", 1)
            timing = read_json(project.training_time(model, int(seed)))
            stage.fit = timing["training_seconds"]
            stage.first_step = timing["seconds_to_first_step"]
            stage.gflop = training_gflop(project, model, int(seed))
        run.stages.append(stage)
    for pattern in RESULT_FILES:
        for path in sorted(root.glob(pattern)):
            run.results[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return run


def compare_results(runs: list[PipelineRun]) -> str:
    """Whether every version gave every model and seed the same bytes."""
    first, *others = runs
    lines = []
    for other in others:
        differing = sorted(
            path
            for path in first.results.keys() | other.results.keys()
            if first.results.get(path) != other.results.get(path)
        )
        if differing:
            lines.append(f"{other.label} differs from {first.label} in: " + ", ".join(differing))
        else:
            lines.append(
                f"{other.label} and {first.label}: every result file byte-identical "
                f"({len(first.results)} files: histories, metrics, ROC points, predictions)"
            )
    return "\n".join(lines)


def stage_table(run: PipelineRun, peak: float) -> str:
    lines = [
        f"{run.label}: every stage",
        f"{'stage':24s} {'wall s':>7s} {'fit s':>7s} {'first step s':>13s}"
        f" {'GFLOP/s':>8s} {'of peak':>8s}",
    ]
    for stage in run.stages:
        row = f"{stage.name:24s} {stage.wall:7.1f}"
        if stage.fit is not None:
            rate = stage.gflop / stage.fit
            row += f" {stage.fit:7.1f} {stage.first_step:13.1f} {rate:8.1f} {rate / peak:8.0%}"
        lines.append(row)
    return "\n".join(lines)


def split(run: PipelineRun) -> dict[str, float]:
    """The run's seconds by kind of work, summed over its stages (under the runner, stages run
    side by side: their sum is more than the wall time; and a training's task holds its
    evaluation). The training rate is the arithmetic over the summed fit seconds."""
    trains = [stage for stage in run.stages if stage.fit is not None]
    kinds = {
        "train(+eval) stages, summed": sum(stage.wall for stage in trains),
        "fit, summed": sum(stage.fit for stage in trains),
        "evaluations, summed": sum(s.wall for s in run.stages if s.name.startswith("evaluate@")),
        "report stage": sum(stage.wall for stage in run.stages if stage.name == "report"),
        "total (wall)": run.wall,
    }
    gflop = sum(stage.gflop for stage in trains)
    kinds["training GFLOP/s, per fit"] = gflop / kinds["fit, summed"]
    kinds["training GFLOP/s, per wall s"] = gflop / run.wall
    return kinds


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1, help="seeds per model (default 1)")
    parser.add_argument(
        "--ways",
        default="runner",
        help="comma-separated, run in this order: runner, dvc, or a git commit (default runner)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies")
    arguments = parser.parse_args()
    if not 1 <= arguments.seeds <= len(SEED_ORDER):
        raise SystemExit(f"--seeds must be between 1 and {len(SEED_ORDER)}")
    if not paths.this_project().train_split.is_file():
        raise SystemExit("no prepared data: run `dvc repro prepare` first")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    seeds = SEED_ORDER[: arguments.seeds]
    ways = arguments.ways.split(",")
    peak = matmul_peak_gflops()
    _print(f"float32 matmul peak (4096 x 4096, TensorFlow): {peak:.0f} GFLOP/s")
    runs = []
    copies = []
    for way in ways:
        code, *settings = way.split("+")
        env = dict(setting.split("=", 1) for setting in settings)
        copies.append((way, code, env, scratch_copy(None if code in ("runner", "dvc") else code)))
    for way, code, env, root in copies:
        _print(f"{way}: {len(seeds)} seed(s) x every model in {root}")
        try:
            runs.append(run_pipeline(way, root, seeds, runner=code == "runner", env=env))
        finally:
            if not arguments.keep:
                shutil.rmtree(root, ignore_errors=True)
        _print(stage_table(runs[-1], peak))
    splits = [split(run) for run in runs]
    _print(f"\nWall seconds by kind of work, {len(seeds)} seed(s) of every model:")
    _print(f"{'':30s}" + "".join(f"{run.label[:14]:>15s}" for run in runs))
    for kind in splits[0]:
        cells = "".join(f"{values[kind]:15.1f}" for values in splits)
        _print(f"{kind:30s}{cells}")
    _print(
        f"{'training, share of peak':30s}"
        + "".join(f"{values['training GFLOP/s, per wall s'] / peak:15.0%}" for values in splits)
    )
    if len(runs) > 1:
        _print(compare_results(runs))


if __name__ == "__main__":
    main()
