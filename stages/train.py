"""Stage 3: train one model, ``python -m stages.train <name>`` for ``models.<name>``.

Selects the best epoch on the validation split (early stopping, best weights restored), saves
the model, its per-epoch history and its training time and throughput, and records all of it in
an MLflow run that the evaluate stage later adds the test metrics to.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stages import native, paths, plots, tracking
from stages.cli import StageError, run_stage
from stages.distribution import cluster, cluster_task, is_chief
from stages.files import atomic_path, write_json, write_text
from stages.params import ModelParams, load_params
from stages.prepare import SHAPING_DATA_PARAMS, EncodedSplit, load_split
from stages.text import load_encoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingResult:
    model: object  # keras.Model; not annotated as such, to keep Keras out of this import.
    history: pd.DataFrame
    summary: dict


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


def _batches(split: EncodedSplit, batch_size: int, shuffle_seed: int | None = None):
    """A split as a tf.data pipeline: reshuffled every epoch (seeded) when ``shuffle_seed`` is
    given, batched, prefetched."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((split.reviews, split.labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(split.labels), seed=shuffle_seed)
    # Every worker of a cluster holds the whole split: each takes its share of every batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)


def train_model(
    params: ModelParams,
    train: EncodedSplit,
    val: EncodedSplit,
    vocabulary_size: int,
    callbacks: list,
) -> TrainingResult:
    """Builds, compiles and fits one model; keeps the weights of its best validation epoch."""
    import keras

    from stages.distribution import make_strategy
    from stages.modeling import build_model, compile_model

    strategy = make_strategy(params.distribution)
    seed_everything(params.seed, params.op_determinism)
    with strategy.scope():
        model = build_model(
            params.cell,
            vocabulary_size=vocabulary_size,
            sequence_length=train.reviews.shape[1],
            embedding_dim=params.embedding_dim,
            recurrent_layers=params.layers,
            units=params.units,
            dropout=params.dropout,
            dense_units=params.dense_units,
            dense_dropout=params.dense_dropout,
            recurrent_implementation=params.recurrent_implementation,
        )
        compile_model(model, params.learning_rate, params.steps_per_execution)
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=params.early_stopping_patience, restore_best_weights=True
    )
    first_step = _first_step_timer()
    started = time.perf_counter()
    fit = model.fit(
        _batches(train, params.batch_size, shuffle_seed=params.seed),
        validation_data=_batches(val, params.batch_size),
        epochs=params.epochs,
        # The divergence check goes first: no later callback sees a non-finite epoch.
        callbacks=[_stop_on_non_finite_loss(), early_stopping, first_step, *callbacks],
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
        "training_seconds": round(seconds, 2),
        "samples_per_second": round(len(train.labels) * len(history) / seconds, 1),
        "seconds_to_first_step": round(first_step.seconds, 2),
    }
    return TrainingResult(model, history, summary)


def _log_model(model_file: Path) -> str:
    """Logs the model with its preprocessing as an MLflow pyfunc model taking raw text.

    Returns:
        The logged model's URI (``models:/m-…``).
    """
    import keras
    import mlflow
    import pandas as pd
    import sklearn
    import tensorflow as tf
    from mlflow.models import infer_signature

    from stages.review_classifier import EXAMPLE_REVIEWS, ReviewClassifier

    artifacts = {
        "keras_model": str(model_file),
        "vocabulary": str(paths.VOCABULARY),
        "encoding": str(paths.ENCODING_SETTINGS),
    }
    example = pd.DataFrame({"text": EXAMPLE_REVIEWS})
    classifier = ReviewClassifier.from_files(*map(Path, artifacts.values()))
    model_info = mlflow.pyfunc.log_model(
        name="model",
        python_model=ReviewClassifier(),
        artifacts=artifacts,
        # The classifier's code (stages/), so that the model loads outside this project too.
        code_paths=[str(paths.PROJECT_ROOT / "stages")],
        signature=infer_signature(example, classifier.predict(None, example)),
        input_example=example,
        # Listed, not inferred: inference reloads the model in a subprocess, for minutes.
        pip_requirements=[
            f"tensorflow-cpu=={tf.__version__}",
            f"keras=={keras.__version__}",
            f"mlflow=={mlflow.__version__}",
            f"pandas=={pd.__version__}",
            f"scikit-learn=={sklearn.__version__}",
        ],
    )
    return model_info.model_uri


def _log_inputs(params: ModelParams, data_params: dict, train, val) -> None:
    import mlflow

    mlflow.log_params({**params.model_dump(), **{f"data_{k}": v for k, v in data_params.items()}})
    for split, context in ((train, "training"), (val, "validation")):
        dataset = mlflow.data.from_numpy(
            split.reviews,
            targets=split.labels,
            source=str(paths.PREPARED_DIR),
            name=f"imdb-{context}",
        )
        mlflow.log_input(dataset, context=context)


def _train_as_worker(name: str, params: ModelParams) -> None:
    """A worker of a multi-worker cluster other than the chief: trains its share of every
    batch, and writes and logs nothing (the chief saves the model and records the run)."""
    task_type, index = cluster_task()
    logger.info(
        "Training %s as %s %d of the TF_CONFIG cluster; the chief writes", name, task_type, index
    )
    train, val = load_split(paths.TRAIN_SPLIT), load_split(paths.VALIDATION_SPLIT)
    vocabulary = load_encoder(paths.VOCABULARY, paths.ENCODING_SETTINGS).vocabulary
    train_model(params, train, val, len(vocabulary), callbacks=[])


def _build_kernels() -> None:
    """Compiles the C++ kernels now, if they are not built yet: a failure stops the stage
    before any run starts."""
    try:
        native.recurrent_ops()
    except native.KernelBuildError as error:
        raise StageError(str(error)) from error


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise StageError("usage: python -m stages.train <model name from params.yaml's models>")
    name = argv[0]
    all_params = load_params(paths.PARAMS_FILE)
    params = all_params.model(name)
    data_params = all_params.data.model_dump(include=set(SHAPING_DATA_PARAMS))
    if params.recurrent_implementation == "fused":
        _build_kernels()
    if not is_chief():
        _train_as_worker(name, params)
        return
    tags = {"model_name": name, "cell": params.cell, "pipeline_stage": "train"}
    if params.distribution == "multi_worker":
        tags["tf_config_cluster"] = json.dumps(cluster())
    with tracking.run(all_params.mlflow.experiment_name, run_name=name, tags=tags) as run:
        import mlflow

        train, val = load_split(paths.TRAIN_SPLIT), load_split(paths.VALIDATION_SPLIT)
        _log_inputs(params, data_params, train, val)
        result = train_model(
            params,
            train,
            val,
            len(load_encoder(paths.VOCABULARY, paths.ENCODING_SETTINGS).vocabulary),
            callbacks=[tracking.epoch_metrics_callback()],
        )
        logger.info("Trained %s: %s", name, result.summary)
        with atomic_path(paths.model_file(name)) as temporary:
            result.model.save(temporary)
        write_text(paths.training_history(name), result.history.to_csv(index=False))
        write_json(paths.training_summary(name), result.summary)
        mlflow.log_metrics(result.summary)
        mlflow.log_artifact(str(paths.training_history(name)))
        mlflow.log_figure(plots.learning_curves({name: result.history}), "learning_curves.png")
        model_uri = _log_model(paths.model_file(name))
        write_json(
            paths.run_id_file(name),
            {
                "run_id": run.info.run_id,
                "experiment_id": run.info.experiment_id,
                "model_uri": model_uri,
            },
        )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
