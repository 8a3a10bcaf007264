"""Stage 3: train one model with one seed, ``python -m stages.train <name> <seed>`` for
``models.<name>`` and a seed of ``train.seeds``.

Selects the best epoch on the validation split (early stopping, best weights restored), saves
the model, its per-epoch history and its training summary, and records all of it in an MLflow
run that the evaluate stage later adds the test metrics to.
"""

from __future__ import annotations

import json
import logging

from imdb_sentiment import paths
from imdb_sentiment.cli import run_stage
from imdb_sentiment.dataset import SHAPING_DATA_PARAMS, load_split
from imdb_sentiment.disk import saved_model_bytes
from imdb_sentiment.distribution import cluster, cluster_task, is_chief
from imdb_sentiment.errors import StageError
from imdb_sentiment.files import atomic_path, write_json, write_text
from imdb_sentiment.params import load_params, model_from_arguments
from imdb_sentiment.text import load_encoder
from imdb_sentiment.tracking import lifecycle, packaging, records
from imdb_sentiment.training import train_model

logger = logging.getLogger(__name__)


def _build_kernels() -> None:
    """Compiles the C++ kernels now if they are not built yet: a machine without a compiler
    fails here, before any run starts."""
    from fast_rnn.build import KernelBuildError
    from fast_rnn.ops import load_kernels

    try:
        load_kernels()
    except KernelBuildError as error:
        raise StageError(
            f"{error}; for this pipeline: train.recurrent_implementation: keras in params.yaml"
        ) from error


def main(argv: list[str]) -> None:
    project = paths.this_project()
    all_params = load_params(project.params_file)
    params = model_from_arguments(all_params, argv, "python -m stages.train")
    name, seed = params.name, params.seed
    if params.recurrent_implementation == "fused":
        _build_kernels()
    vocabulary_size = len(load_encoder(project.vocabulary, project.encoding_settings).vocabulary)
    train, val = load_split(project.train_split), load_split(project.validation_split)
    if not is_chief():
        # Another worker of a multi-worker cluster: it trains its share of every batch; the
        # chief alone saves the model and records the run.
        logger.info("Training %s as %s %d of the TF_CONFIG cluster", name, *cluster_task())
        train_model(params, train, val, vocabulary_size, callbacks=[])
        return
    tags = {"model_name": name, "seed": str(seed), "cell": params.cell, "pipeline_stage": "train"}
    if params.distribution == "multi_worker":
        tags["tf_config_cluster"] = json.dumps(cluster())
    experiment = all_params.mlflow.experiment_name
    with lifecycle.run(experiment, f"{name}-{seed}", tags, system_metrics=True) as run:
        records.log_training_inputs(
            params.model_dump(),
            all_params.data.model_dump(include=set(SHAPING_DATA_PARAMS)),
            {
                "training": (train, project.train_split),
                "validation": (val, project.validation_split),
            },
        )
        result = train_model(
            params, train, val, vocabulary_size, callbacks=[records.epoch_metrics_callback()]
        )
        logger.info("Trained %s with seed %d: %s %s", name, seed, result.summary, result.timing)
        model_bytes = saved_model_bytes(result.model.count_params())
        with atomic_path(project.model_file(name, seed), model_bytes) as temporary:
            result.model.save(temporary)
        write_text(project.training_history(name, seed), result.history.to_csv(index=False))
        write_json(project.training_summary(name, seed), result.summary)
        write_json(project.training_time(name, seed), result.timing)
        records.log_training_outputs(
            name,
            {**result.summary, **result.timing},
            result.history,
            project.training_history(name, seed),
        )
        model_uri = packaging.log_classifier(
            {
                "keras_model": project.model_file(name, seed),
                "vocabulary": project.vocabulary,
                "encoding": project.encoding_settings,
            }
        )
        write_json(
            project.run_id_file(name, seed),
            {
                "run_id": run.info.run_id,
                "experiment_id": run.info.experiment_id,
                "model_uri": model_uri,
            },
        )


if __name__ == "__main__":
    raise SystemExit(run_stage(main, uses_tensorflow=True))
