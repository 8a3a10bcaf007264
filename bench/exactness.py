"""Which parts of a training change with the processor: the same short training under every
setting this machine can emulate, and where the numbers part. Not a test: it prints a table.

    python bench/exactness.py                         # every setting, every cell
    python bench/exactness.py --cells gru --threads 1,2

Each setting runs in a process of its own: the kernels built for an x86-64 level
(``FAST_RNN_MARCH``), oneDNN capped at an instruction set (``ONEDNN_MAX_CPU_ISA``), and a number
of TensorFlow threads (``TF_NUM_INTRAOP_THREADS``). There the default recipe of each cell
(``params.yaml``'s model, the project's ``build_model`` and ``compile_model``, op determinism
on) is probed at its initial weights on one batch of random token sequences: each layer's
output, the loss, and each variable's gradient; then trained for one epoch of 1,024 sequences,
after which its weights and its predictions on 256 more are taken. Each of those is reduced to a
hash of its bytes. The table gives, per cell and per probe, how many different results the
settings gave: 1 is exact across them; the first probe with more is where the numbers part.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

LEVELS = ("x86-64-v4", "x86-64-v3", "x86-64-v2")
ISAS = ("AVX512_CORE", "AVX2", "SSE41")
VOCABULARY, LENGTH, BATCH, SEQUENCES = 10_000, 80, 128, 1_024


def _digest(array) -> str:
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]


def probe(cell: str) -> dict[str, str]:
    """The hashes of one cell's probes, in this process's setting."""
    import keras
    import numpy as np
    import tensorflow as tf

    from imdb_sentiment.modeling import build_model, compile_model
    from imdb_sentiment.params import load_params
    from imdb_sentiment.training import seed_everything

    params = load_params(PROJECT / "params.yaml")
    model_params = params.model(cell)
    seed_everything(42)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, VOCABULARY, size=(SEQUENCES + 256, LENGTH), dtype=np.int32)
    labels = rng.integers(0, 2, size=(SEQUENCES, 1)).astype("float32")
    model = compile_model(build_model(model_params, VOCABULARY, LENGTH), model_params.learning_rate)

    found: dict[str, str] = {}
    batch, batch_labels = tokens[:BATCH], labels[:BATCH]
    # Each layer's output at the initial weights (no dropout: inference), in the model's order.
    x = tf.constant(batch)
    for layer in model.layers[1:]:
        x = layer(x)
        found[f"forward {layer.name}"] = _digest(x.numpy())
    with tf.GradientTape() as tape:
        loss = model.compiled_loss(batch_labels, model(batch, training=True))
    found["loss"] = _digest(loss.numpy())
    for variable, gradient in zip(
        model.trainable_variables, tape.gradient(loss, model.trainable_variables), strict=True
    ):
        found[f"gradient {variable.path}"] = _digest(tf.convert_to_tensor(gradient).numpy())
    model.fit(tokens[:SEQUENCES], labels, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    for variable in model.variables:
        found[f"after an epoch: {variable.path}"] = _digest(variable.numpy())
    found["predictions"] = _digest(model.predict(tokens[SEQUENCES:], verbose=0))
    keras.backend.clear_session()
    return found


def _run_setting(cells: list[str], level: str, isa: str, threads: int) -> dict:
    environment = {
        **os.environ,
        "FAST_RNN_MARCH": level,
        "ONEDNN_MAX_CPU_ISA": isa,
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PREFORK": "0",
    }
    result = subprocess.run(
        [sys.executable, __file__, "--probe", ",".join(cells)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{level} {isa} {threads} threads failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="simplernn,lstm,gru")
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--isas", default=",".join(ISAS))
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.probe:
        sys.stdout.write(json.dumps({c: probe(c) for c in arguments.probe.split(",")}) + "\n")
        return
    cells = arguments.cells.split(",")
    settings = list(
        itertools.product(
            arguments.levels.split(","),
            arguments.isas.split(","),
            [int(t) for t in arguments.threads.split(",")],
        )
    )
    results = {}
    for setting in settings:
        results[setting] = _run_setting(cells, *setting)
        sys.stdout.write(f"done: kernels {setting[0]}, oneDNN {setting[1]}, {setting[2]} threads\n")
        sys.stdout.flush()
    for cell in cells:
        sys.stdout.write(f"\n{cell}: different results over {len(settings)} settings, per probe\n")
        for name in results[settings[0]][cell]:
            groups: dict[str, list] = {}
            for setting in settings:
                groups.setdefault(results[setting][cell][name], []).append(setting)
            line = f"  {len(groups)}  {name}"
            if 1 < len(groups) <= 4:  # Which settings agree, when that is readable.
                line += "   " + " | ".join(
                    ", ".join(f"{lv[-2:]}/{isa}/{t}" for lv, isa, t in members)
                    for members in groups.values()
                )
            sys.stdout.write(line + "\n")


if __name__ == "__main__":
    main()
