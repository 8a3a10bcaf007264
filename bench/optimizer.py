"""fast_rnn's Adam against Keras' own, in the pipeline's classifiers: milliseconds per training
step on the real reviews. Not a test: it prints numbers.

    python bench/optimizer.py                  # after `dvc repro prepare`
    python bench/optimizer.py --cells lstm --repeats 10

Each classifier is built twice from params.yaml (seed 42, the fused layers), once compiled with
each Adam, and trained for one warm-up call (tracing), then for ``--steps`` batches of the
training split at a time, the two alternating so that machine noise hits both alike. The two
give the same weights to the bit (tests/fast_rnn/test_optimizers.py); only the time differs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def time_optimizers(cell: str, steps: int, repeats: int) -> dict[str, list[float]]:
    import keras

    from imdb_sentiment import paths
    from imdb_sentiment.dataset import load_split
    from imdb_sentiment.modeling import build_model, compile_model
    from imdb_sentiment.params import load_params

    project = paths.this_project()
    params = load_params(project.params_file).model(cell, 42)
    train = load_split(project.train_split)
    reviews = train.reviews[: steps * params.batch_size]
    labels = train.labels[: steps * params.batch_size]
    models = {}
    for way in ("keras", "fused"):
        keras.utils.set_random_seed(params.seed)
        model = build_model(params, _vocabulary_size(project), sequence_length=reviews.shape[1])
        compile_model(model, params.learning_rate, params.steps_per_execution, way)
        model.fit(reviews, labels, batch_size=params.batch_size, epochs=1, verbose=0)
        models[way] = model
    milliseconds: dict[str, list[float]] = {way: [] for way in models}
    for _ in range(repeats):
        for way, model in models.items():
            started = time.perf_counter()
            model.fit(reviews, labels, batch_size=params.batch_size, epochs=1, verbose=0)
            milliseconds[way].append(1000 * (time.perf_counter() - started) / steps)
    return milliseconds


def _vocabulary_size(project) -> int:
    from imdb_sentiment.text import load_encoder

    return len(load_encoder(project.vocabulary, project.encoding_settings).vocabulary)


def _quartiles(values: list[float]) -> str:
    low, median, high = statistics.quantiles(values, n=4)
    return f"{median:6.1f} ({low:.1f}-{high:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="simplernn,lstm,gru")
    parser.add_argument("--steps", type=int, default=120, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=8)
    arguments = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stdout.write(
        f"ms per training step, {arguments.repeats} timings of {arguments.steps} steps each: "
        "median (quartiles)\n"
        f"{'cell':10s} {'keras Adam':>20s} {'fast_rnn Adam':>20s} {'speed-up':>9s}\n"
    )
    for cell in arguments.cells.split(","):
        milliseconds = time_optimizers(cell, arguments.steps, arguments.repeats)
        ratio = statistics.median(milliseconds["keras"]) / statistics.median(milliseconds["fused"])
        sys.stdout.write(
            f"{cell:10s} {_quartiles(milliseconds['keras']):>20s} "
            f"{_quartiles(milliseconds['fused']):>20s} {ratio:8.2f}x\n"
        )


if __name__ == "__main__":
    main()
