"""Training throughput of the pipeline against the seed's plain Keras recipe, and the
pipeline's own overhead. Not a test: it prints numbers, on the real prepared data.

    python bench/benchmark.py                  # 3 repeats, 2 epochs each
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

from stages import paths, tracking  # noqa: E402
from stages.files import read_json  # noqa: E402
from stages.params import load_params  # noqa: E402
from stages.prepare import EncodedSplit, load_split  # noqa: E402
from stages.train import train_model  # noqa: E402

SHUFFLE_BUFFER = 1000  # The seed's Dataset.shuffle(1000).


def plain_recipe(params, num_words: int, epochs: int, train, val) -> tuple[float, float]:
    """The seed's recipe: a subclassed model fed by tf.data, one model.fit.

    Returns:
        Training samples per second of fit, and the last epoch's validation accuracy.
    """
    import keras
    import tensorflow as tf
    from keras import layers

    recurrent = {"simplernn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}[params.cell]
    units = params.units

    class SeedModel(keras.Model):
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

    keras.utils.set_random_seed(params.seed)
    model = SeedModel()
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
    started = time.perf_counter()
    history = model.fit(train_data, epochs=epochs, validation_data=val_data, verbose=0)
    seconds = time.perf_counter() - started
    return len(train.labels) * epochs / seconds, history.history["val_accuracy"][-1]


# The pipeline's training code under different settings: each is one column of the table, so
# that what every setting buys is measured in the same run. "pipeline" is params.yaml's own
# (projected layers, 16 steps per execution).
PIPELINE_VARIANTS = {
    "keras-loop": {"recurrent_implementation": "keras", "steps_per_execution": 1},
    "keras-spe16": {"recurrent_implementation": "keras", "steps_per_execution": 16},
    "projected": {"recurrent_implementation": "projected", "steps_per_execution": 1},
    "pipeline": {},
}


def pipeline(
    name: str, variant: dict, epochs: int, train, val, all_params, store: Path
) -> tuple[float, float]:
    """The pipeline's own training code, with its MLflow callback, in a throwaway store."""
    import mlflow

    params = all_params.model(name).model_copy(
        update={"epochs": epochs, "early_stopping_patience": epochs + 1, **variant}
    )
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    with mlflow.start_run():
        result = train_model(
            params,
            train,
            val,
            all_params.data.num_words,
            callbacks=[tracking.epoch_metrics_callback()],
        )
    return result.summary["samples_per_second"], float(result.history["val_accuracy"].iloc[-1])


def throughput_table(repeats: int, epochs: int, variants: list[str]) -> None:
    all_params = load_params(paths.PARAMS_FILE)
    train, val = load_split(paths.TRAIN_SPLIT), load_split(paths.VALIDATION_SPLIT)
    # The prepared split is ordered by review id, negatives first. The seed's data came shuffled
    # (keras.datasets.imdb), and its Dataset.shuffle(1000) cannot mix a sorted split: shuffle
    # once up front, as the seed's data was.
    order = np.random.default_rng(0).permutation(len(train.labels))
    train = EncodedSplit(train.ids[order], train.reviews[order], train.labels[order])
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats):
            for name in all_params.models:
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
                    results.setdefault((name, way), []).append(function())
                    samples, accuracy = results[name, way][-1]
                    _print(
                        f"  repeat {repeat + 1} {name:10s} {way:10s} {samples:8.0f} samples/s "
                        f"val_accuracy {accuracy:.4f}"
                    )
    names = list(all_params.models)
    _print(
        f"\nMedians of {repeats} repeats, {epochs} epochs each "
        f"({len(train.labels)} training reviews, batch {all_params.train.batch_size}):"
    )
    _print(median_table(results, names, variants))


def median_table(results: dict, names: list[str], variants: list[str]) -> str:
    """Each model's median samples/s and validation accuracy per way, and each variant's
    speed relative to the plain recipe."""
    ways = ["plain", *variants]
    table = pd.DataFrame(
        {
            **{
                f"{way}/s": [statistics.median(s for s, _ in results[n, way]) for n in names]
                for way in ways
            },
            **{
                f"{way} val acc": [statistics.median(a for _, a in results[n, way]) for n in names]
                for way in ways
            },
        },
        index=pd.Index(names, name="model"),
    )
    for position, way in enumerate(variants, start=len(ways)):
        table.insert(position, f"{way} ratio", table[f"{way}/s"] / table["plain/s"])
    formats = {"/s": "{:.0f}", "ratio": "{:.2f}", "acc": "{:.4f}"}
    return table.to_string(
        formatters={
            column: next(f for end, f in formats.items() if column.endswith(end)).format
            for column in table.columns
        }
    )


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
    training, the time from process start to the end of the first training step.

    Runs before anything here loads TensorFlow: Linux carries a parent's peak RSS into the
    children it forks, so it would read as every stage's own."""
    env_bin = Path(sys.executable).parent
    os.environ["PATH"] = f"{env_bin}{os.pathsep}{os.environ['PATH']}"
    seconds, _ = timed(["dvc", "repro"])
    _print(f"\n`dvc repro` with nothing changed: {seconds:.2f} s")
    _print(f"{'stage':20s} {'wall s':>7s} {'peak RSS MB':>12s} {'start to first step s':>22s}")
    models = list(load_params(paths.PARAMS_FILE).models)
    stages = (
        ["prepare"]
        + [f"{stage}@{name}" for stage in ("train", "evaluate") for name in models]
        + ["report"]
    )
    for stage in stages:
        seconds, peak = timed(["dvc", "repro", "--force", "--single-item", stage])
        first_step = ""
        if stage.startswith("train@"):
            summary = read_json(paths.training_summary(stage.removeprefix("train@")))
            first_step = f"{summary['seconds_to_first_step']:.1f}"
        _print(f"{stage:20s} {seconds:7.1f} {peak:12.0f} {first_step:>22s}")


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="0: skip the throughput table")
    parser.add_argument("--epochs", type=int, default=2)
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
    if not paths.TRAIN_SPLIT.is_file():
        raise SystemExit("no prepared data: run `dvc repro prepare` first")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    variants = arguments.variants.split(",")
    unknown = set(variants) - set(PIPELINE_VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {list(PIPELINE_VARIANTS)}")
    if arguments.overhead:
        overhead_table()
    if arguments.repeats > 0:
        throughput_table(arguments.repeats, arguments.epochs, variants)


if __name__ == "__main__":
    main()
