"""Training one model: seeding, the input pipeline, early stopping on the validation split."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from imdb_sentiment.dataset import EncodedSplit
from imdb_sentiment.distribution import make_strategy
from imdb_sentiment.errors import StageError
from imdb_sentiment.params import ModelParams

if TYPE_CHECKING:  # Importing Keras here would load TensorFlow with every import of this.
    import keras


@dataclass(frozen=True)
class TrainingResult:
    model: keras.Model
    history: pd.DataFrame
    # The best epoch, its validation scores and the model's size: the same on every rerun.
    summary: dict
    # Seconds and throughput: different on every rerun.
    timing: dict


def seed_everything(seed: int, op_determinism: bool = True) -> None:
    """Seeds every generator. With ``op_determinism`` a rerun with the same params on the same
    machine gives the same metrics to the last digit; without it, ops may pick faster kernels
    whose summation order varies from run to run."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    keras.utils.set_random_seed(seed)
    if op_determinism:
        tf.config.experimental.enable_op_determinism()
    else:
        # The switch is process-wide; TensorFlow exports only the way on.
        tf_config.disable_op_determinism()


def _stop_on_non_finite_loss():
    """A callback that fails the stage as soon as an epoch's loss is NaN or infinite.

    Checked per epoch, not per batch: a NaN stays NaN in the epoch's mean, and a per-batch hook
    would make Keras fetch the loss from the device after every step.
    """
    import keras

    class StopOnNonFiniteLoss(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for name in ("loss", "val_loss"):
                value = float((logs or {}).get(name, 0.0))
                if not math.isfinite(value):
                    raise StageError(
                        f"training diverged: {name} became {value} in epoch {epoch + 1}. "
                        "Lower train.learning_rate (or the model's own) in params.yaml and "
                        "run again; no model was saved."
                    )

    return StopOnNonFiniteLoss()


def _first_step_timer():
    """A callback that notes, in ``seconds``, how long the process took from its start to the
    end of its first training step: imports, data loading, model building and graph tracing,
    the wait a user sees before training runs."""
    import keras
    import psutil

    class FirstStepTimer(keras.callbacks.Callback):
        seconds = None

        def on_train_batch_end(self, batch, logs=None):
            if self.seconds is None:
                self.seconds = time.time() - psutil.Process().create_time()

    return FirstStepTimer()


def batches(split: EncodedSplit, batch_size: int, shuffle_seed: int | None = None):
    """A split as a tf.data pipeline: reshuffled every epoch (seeded) when ``shuffle_seed`` is
    given, batched, two batches prefetched.

    tf.data's autotuning is off: with it on, about half of the epochs here left every thread of
    the process waiting for about 2 s (an LSTM epoch took 5.1 s instead of 3.0 s); with it off,
    none did (docs/performance.md). The batches, and so every result, are the same either way.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((split.reviews, split.labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(split.labels), seed=shuffle_seed)
    options = tf.data.Options()
    options.autotune.enabled = False
    # Every worker of a cluster holds the whole split: each takes its share of every batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.batch(batch_size).prefetch(2).with_options(options)


def train_model(
    params: ModelParams,
    train: EncodedSplit,
    val: EncodedSplit,
    vocabulary_size: int,
    callbacks: list,
) -> TrainingResult:
    """Builds, compiles and fits one model; keeps the weights of its best validation epoch."""
    import keras

    from imdb_sentiment.modeling import build_model, compile_model

    strategy = make_strategy(params.distribution)
    seed_everything(params.seed, params.op_determinism)
    with strategy.scope():
        model = build_model(params, vocabulary_size, sequence_length=train.reviews.shape[1])
        compile_model(
            model,
            params.learning_rate,
            params.steps_per_execution,
            params.recurrent_implementation,
        )
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=params.early_stopping_patience, restore_best_weights=True
    )
    first_step = _first_step_timer()
    started = time.perf_counter()
    fit = model.fit(
        batches(train, params.batch_size, shuffle_seed=params.seed),
        validation_data=batches(val, params.batch_size),
        epochs=params.epochs,
        # The divergence check goes first: no later callback sees a non-finite epoch.
        callbacks=[_stop_on_non_finite_loss(), early_stopping, first_step, *callbacks],
        # The batches are reshuffled every epoch already; Keras warns when it is asked to.
        shuffle=False,
        # One line per epoch where no person watches a progress bar (logs, CI).
        verbose=1 if sys.stdout.isatty() else 2,
    )
    seconds = time.perf_counter() - started
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", range(1, len(history) + 1))
    best = history.loc[history["val_loss"].idxmin()]
    summary = {
        "epochs_run": len(history),
        "best_epoch": int(best["epoch"]),
        "best_val_loss": round(float(best["val_loss"]), 5),
        "best_val_accuracy": round(float(best["val_accuracy"]), 5),
        "trainable_params": int(sum(w.numpy().size for w in model.trainable_weights)),
    }
    timing = {
        "training_seconds": round(seconds, 2),
        "samples_per_second": round(len(train.labels) * len(history) / seconds, 1),
        "seconds_to_first_step": round(first_step.seconds, 2),
    }
    return TrainingResult(model, history, summary, timing)
