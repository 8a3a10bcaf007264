"""fast_rnn's layers against Keras' own, alone: forward and backward time of one layer on one
batch, on the CPU. Not a test: it prints numbers.

    python bench/layers.py                    # the pipeline's shapes: [128, 80, 100] inputs
    python bench/layers.py --units 32 --repeats 30

Both layers get the same weights and the same inputs; each timing is one training step of the
layer alone (outputs, a loss, gradients of the inputs and every weight) in a compiled
``tf.function``, after a warm-up. The two ways alternate, so that machine noise hits both alike;
the table shows medians and quartiles in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _step(layer, inputs):
    import tensorflow as tf

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(tf.square(layer(inputs, training=True)))
        return tape.gradient(loss, [inputs, *layer.trainable_weights])

    return step


def time_layers(cell: str, units: int, shape: tuple[int, int, int], repeats: int) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    import fast_rnn.layers

    keras_layer = {
        "simplernn": keras.layers.SimpleRNN,
        "lstm": keras.layers.LSTM,
        "gru": keras.layers.GRU,
    }[cell]
    inputs = tf.constant(np.random.default_rng(0).normal(size=shape).astype("float32"))
    steps = {}
    for way, layer_class in (("keras", keras_layer), ("fast_rnn", fast_rnn.layers.LAYERS[cell])):
        keras.utils.set_random_seed(0)
        layer = layer_class(units, dropout=0.5)
        layer.build(shape)
        steps[way] = _step(layer, inputs)
        for _ in range(3):  # Tracing, and the first calls' allocations.
            steps[way]()
    seconds = {way: [] for way in steps}
    for _ in range(repeats):
        for way, step in steps.items():
            started = time.perf_counter()
            step()
            seconds[way].append(time.perf_counter() - started)
    return seconds


def _quartiles(seconds: list[float]) -> str:
    low, median, high = statistics.quantiles([1000 * s for s in seconds], n=4)
    return f"{median:6.2f} ({low:.2f}-{high:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="simplernn,lstm,gru")
    parser.add_argument("--units", type=int, help="default: 64 (SimpleRNN, GRU), 32 (LSTM)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=80, help="time steps per sequence")
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=20)
    arguments = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    shape = (arguments.batch, arguments.steps, arguments.features)
    sys.stdout.write(
        f"One layer, forward and backward, inputs {list(shape)}, {arguments.repeats} timings "
        "each: median (quartiles) ms\n"
        f"{'cell':10s} {'units':>5s} {'keras':>20s} {'fast_rnn':>20s} {'speed-up':>9s}\n"
    )
    for cell in arguments.cells.split(","):
        units = arguments.units or (32 if cell == "lstm" else 64)
        seconds = time_layers(cell, units, shape, arguments.repeats)
        ratio = statistics.median(seconds["keras"]) / statistics.median(seconds["fast_rnn"])
        sys.stdout.write(
            f"{cell:10s} {units:5d} {_quartiles(seconds['keras']):>20s} "
            f"{_quartiles(seconds['fast_rnn']):>20s} {ratio:8.2f}x\n"
        )


if __name__ == "__main__":
    main()
