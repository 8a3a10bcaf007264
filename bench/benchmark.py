"""Training throughput of the pipeline against the reference notebook's plain Keras recipe, and the
pipeline's own overhead. Not a test: it prints numbers, on the real prepared data.

    python bench/benchmark.py                  # 3 repeats, 3 epochs each
    python bench/benchmark.py --repeats 5 --epochs 3
    python bench/benchmark.py --overhead       # also rerun every stage (forced), timed

Needs the prepared data (`dvc repro prepare`). Both ways train the same model on the same
splits with the same batch size, optimizer and epochs, interleaved in one process so that
machine noise hits both alike; the table shows medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from imdb_sentiment import paths  # noqa: E402
from imdb_sentiment.dataset import EncodedSplit, load_split  # noqa: E402
from imdb_sentiment.files import read_json  # noqa: E402
from imdb_sentiment.params import load_params  # noqa: E402
from imdb_sentiment.tracking import records  # noqa: E402
from imdb_sentiment.training import seed_everything, train_model  # noqa: E402

SHUFFLE_BUFFER = 1000  # The reference notebook's Dataset.shuffle(1000).


def epoch_timer():
    """A Keras callback timing the training part of every epoch, validation excluded.

    The first epoch includes building the training graph (tracing and optimizing it), paid once
    per fit; later epochs are the steady state that a longer run spends most of its time in."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self._started = None

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_test_begin(self, logs=None):
            # fit validates at the end of each epoch, after its last training step.
            if self._started is not None:
                self.seconds.append(time.perf_counter() - self._started)
                self._started = None

    return EpochTimer()


def measurement(samples: int, fit_seconds: float, timer, val_accuracy: float) -> dict:
    """What one fit measured: samples/s over the whole fit (first-epoch graph building and
    validation included) and in the steady state (median of the later epochs' training parts),
    the first epoch's training seconds, and the last validation accuracy."""
    epochs = len(timer.seconds)
    return {
        "fit": samples * epochs / fit_seconds,
        "steady": statistics.median(samples / s for s in timer.seconds[1:]),
        "first epoch s": timer.seconds[0],
        "val acc": val_accuracy,
    }


def plain_recipe(params, num_words: int, epochs: int, train, val) -> dict:
    """The reference notebook's recipe: a subclassed model fed by tf.data, one model.fit."""
    import keras
    import tensorflow as tf
    from keras import layers

    recurrent = {"simplernn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}[params.cell]
    units = params.units

    class NotebookModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.embedding = layers.Embedding(num_words, params.embedding_dim)
            self.rnn = keras.Sequential(
                [
                    recurrent(units, dropout=params.dropout, return_sequences=True),
                    recurrent(units, dropout=params.dropout),
                ]
            )
            self.fc1 = layers.Dense(params.dense_units)
            self.dropout = layers.Dropout(params.dense_dropout)
            self.fc2 = layers.Dense(1)

        def call(self, inputs, training=None):
            x = self.rnn(self.embedding(inputs), training=training)
            x = tf.nn.relu(self.dropout(self.fc1(x), training=training))
            return tf.sigmoid(self.fc2(x))

    # As the notebook ran, without op determinism (this process's pipeline runs switch it on).
    seed_everything(params.seed, op_determinism=False)
    model = NotebookModel()
    model.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=["accuracy"],
    )
    train_data = (
        tf.data.Dataset.from_tensor_slices((train.reviews, train.labels))
        .shuffle(SHUFFLE_BUFFER)
        .batch(params.batch_size)
    )
    val_data = tf.data.Dataset.from_tensor_slices((val.reviews, val.labels)).batch(
        params.batch_size
    )
    timer = epoch_timer()
    started = time.perf_counter()
    history = model.fit(
        train_data, epochs=epochs, validation_data=val_data, callbacks=[timer], verbose=0
    )
    seconds = time.perf_counter() - started
    return measurement(len(train.labels), seconds, timer, history.history["val_accuracy"][-1])


# The pipeline's training code under different settings: each is one column of the table, so
# that what every setting buys is measured in the same run. "pipeline" is params.yaml's own
# (fused C++ loops, 16 steps per execution, op determinism on).
PIPELINE_VARIANTS = {
    "keras-loop": {"recurrent_implementation": "keras", "steps_per_execution": 1},
    "keras-spe16": {"recurrent_implementation": "keras", "steps_per_execution": 16},
    "fused": {"steps_per_execution": 1},
    "pipeline": {},
    "pipeline-nondet": {"op_determinism": False},
}


def pipeline(name: str, variant: dict, epochs: int, train, val, all_params, store: Path) -> dict:
    """The pipeline's own training code, with its MLflow callback, in a throwaway store."""
    import mlflow

    params = all_params.model(name).model_copy(
        update={"epochs": epochs, "early_stopping_patience": epochs + 1, **variant}
    )
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    timer = epoch_timer()
    with mlflow.start_run():
        result = train_model(
            params,
            train,
            val,
            all_params.data.num_words,
            callbacks=[records.epoch_metrics_callback(), timer],
        )
    return measurement(
        len(train.labels),
        result.timing["training_seconds"],
        timer,
        float(result.history["val_accuracy"].iloc[-1]),
    )


def throughput_table(repeats: int, epochs: int, variants: list[str], models: list[str]) -> None:
    project = paths.this_project()
    all_params = load_params(project.params_file)
    train, val = load_split(project.train_split), load_split(project.validation_split)
    # The prepared split is ordered by review id, negatives first. The notebook's data came shuffled
    # (keras.datasets.imdb), and its Dataset.shuffle(1000) cannot mix a sorted split: shuffle
    # once up front, as the notebook's data was.
    order = np.random.default_rng(0).permutation(len(train.labels))
    train = EncodedSplit(train.ids[order], train.reviews[order], train.labels[order])
    records = []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats):
            for name in models:
                model = all_params.model(name)
                ways = [
                    (
                        "plain",
                        lambda m=model: plain_recipe(
                            m, all_params.data.num_words, epochs, train, val
                        ),
                    ),
                    *(
                        (
                            variant,
                            lambda n=name, v=variant: pipeline(
                                n,
                                PIPELINE_VARIANTS[v],
                                epochs,
                                train,
                                val,
                                all_params,
                                Path(scratch) / "mlflow.db",
                            ),
                        )
                        for variant in variants
                    ),
                ]
                # Rotate which goes first, so that none always runs on a warmer machine.
                shift = repeat % len(ways)
                for way, function in ways[shift:] + ways[:shift]:
                    measured = function()
                    records.append({"model": name, "way": way, **measured})
                    _print(
                        f"  repeat {repeat + 1} {name:10s} {way:11s} "
                        + " ".join(f"{key} {value:.4g}" for key, value in measured.items())
                    )
    _print(
        f"\nMedians of {repeats} repeats, {epochs} epochs each "
        f"({len(train.labels)} training reviews, batch {all_params.train.batch_size})."
    )
    _print(median_tables(pd.DataFrame(records), models, ["plain", *variants]))


def median_tables(records: pd.DataFrame, models: list[str], ways: list[str]) -> str:
    """Per model and way, the medians of every measurement, with each way's samples/s relative
    to the plain recipe's."""
    medians = records.groupby(["model", "way"]).median()
    sections = []
    for measure, title, number in (
        ("steady", "Steady-state training samples/s (epochs after the first)", "{:.0f}"),
        ("fit", "Whole-fit samples/s (graph building and validation included)", "{:.0f}"),
        ("first epoch s", "First epoch's training seconds (includes graph building)", "{:.1f}"),
        ("val acc", "Validation accuracy after the last epoch", "{:.4f}"),
    ):
        table = medians[measure].unstack("way").reindex(index=models, columns=ways)
        formats = {way: number.format for way in ways}
        if measure in ("steady", "fit"):
            for way in ways[1:]:
                table[f"{way} ratio"] = table[way] / table["plain"]
                formats[f"{way} ratio"] = "{:.2f}".format
        sections.append(f"\n{title}:\n{table.to_string(formatters=formats)}")
    return "\n".join(sections)


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``command`` and the processes it waited for."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return seconds, usage.ru_maxrss / 1024


def overhead_table() -> None:
    """`dvc repro` with nothing to do, and each stage's wall time, peak memory and, for
    training, the time from process start to the end of the first training step, each stage
    run cold (``PREFORK=0``).

    Runs before anything here loads TensorFlow: Linux carries a parent's peak RSS into the
    children it forks, so it would read as every stage's own."""
    env_bin = Path(sys.executable).parent
    os.environ["PATH"] = f"{env_bin}{os.pathsep}{os.environ['PATH']}"
    # Each stage in a cold process of its own: in a warm fork (prefork/) its memory would be
    # another process's, and its start-up would not be timed (bench/seeds.py times both ways).
    os.environ["PREFORK"] = "0"
    seconds, _ = timed(["dvc", "repro"])
    _print(f"\n`dvc repro` with nothing changed: {seconds:.2f} s")
    _print(f"{'stage':20s} {'wall s':>7s} {'peak RSS MB':>12s} {'start to first step s':>22s}")
    params = load_params(paths.this_project().params_file)
    # Each model with the first seed: the default run.
    runs = [(name, params.seeds(name)[0]) for name in params.models if params.seeds(name)]
    stages = (
        ["prepare"]
        + [f"{stage}@{name}-{seed}" for stage in ("train", "evaluate") for name, seed in runs]
        + ["report"]
    )
    for stage in stages:
        seconds, peak = timed(["dvc", "repro", "--force", "--single-item", stage])
        first_step = ""
        if stage.startswith("train@"):
            name, seed = stage.removeprefix("train@").rsplit("-", 1)
            timing = read_json(paths.this_project().training_time(name, int(seed)))
            first_step = f"{timing['seconds_to_first_step']:.1f}"
        _print(f"{stage:20s} {seconds:7.1f} {peak:12.0f} {first_step:>22s}")


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="0: skip the throughput table")
    parser.add_argument(
        "--epochs", type=int, default=3, help="per fit; at least 2 (the first builds the graph)"
    )
    parser.add_argument(
        "--models", help="comma-separated model keys of params.yaml (default: all of them)"
    )
    parser.add_argument(
        "--variants",
        default=",".join(PIPELINE_VARIANTS),
        help="pipeline settings to measure against the plain recipe, comma-separated, from: "
        + ", ".join(f"{k} {v or '(params.yaml)'}" for k, v in PIPELINE_VARIANTS.items()),
    )
    parser.add_argument(
        "--overhead",
        action="store_true",
        help="also time `dvc repro` with nothing to do, and rerun every stage (it logs MLflow "
        "runs and rewrites the outputs, as `dvc repro --force` does)",
    )
    arguments = parser.parse_args()
    if not paths.this_project().train_split.is_file():
        raise SystemExit("no prepared data: run `dvc repro prepare` first")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    variants = arguments.variants.split(",")
    unknown = set(variants) - set(PIPELINE_VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {list(PIPELINE_VARIANTS)}")
    if arguments.overhead:
        overhead_table()
    models = list(load_params(paths.this_project().params_file).models)
    if arguments.models:
        unknown = set(arguments.models.split(",")) - set(models)
        if unknown:
            raise SystemExit(f"unknown models {sorted(unknown)}; params.yaml has {models}")
        models = arguments.models.split(",")
    if arguments.epochs < 2:
        raise SystemExit("--epochs must be at least 2: the first one includes building the graph")
    if arguments.repeats > 0:
        throughput_table(arguments.repeats, arguments.epochs, variants, models)


if __name__ == "__main__":
    main()
