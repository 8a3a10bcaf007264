"""Which ``tf.distribute`` strategy trains the model: the ``train.distribution`` param.

- ``none``: TensorFlow's default strategy, one device.
- ``mirrored``: one replica per local device (several GPUs, or the CPU alone), gradients
  all-reduced; ``batch_size`` is the global batch, split across replicas.
- ``multi_worker``: one process per machine, as ``TF_CONFIG`` describes the cluster; every
  worker runs ``python -m stages.train <name>`` with its own ``TF_CONFIG``, each takes its
  share of every batch, and only the chief writes outputs and logs to MLflow.

The same training code runs under each: the model is built and compiled in the strategy's scope.
"""

from __future__ import annotations

import json
import os
from typing import Literal

from imdb_sentiment.errors import StageError

Distribution = Literal["none", "mirrored", "multi_worker"]


def cluster_task(environ=os.environ) -> tuple[str, int] | None:
    """This process's ``(task type, index)`` from ``TF_CONFIG``, or None without one."""
    raw = environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        task = json.loads(raw)["task"]
        return str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise StageError(
            f"TF_CONFIG is not valid ({error!r}): it must be JSON with a 'cluster' of host:port "
            'lists and this process\'s "task", e.g. {"type": "worker", "index": 0}'
        ) from None


def cluster(environ=os.environ) -> dict:
    """The ``cluster`` of ``TF_CONFIG`` (empty without one)."""
    return json.loads(environ["TF_CONFIG"]).get("cluster", {}) if cluster_task(environ) else {}


def is_chief(environ=os.environ) -> bool:
    """Whether this process writes outputs: no cluster, the ``chief`` task, or worker 0 of a
    cluster without a chief (TensorFlow's own rule)."""
    task = cluster_task(environ)
    if task is None:
        return True
    task_type, index = task
    return task_type == "chief" or (
        task_type == "worker" and index == 0 and "chief" not in cluster(environ)
    )


def make_strategy(distribution: Distribution, environ=os.environ):
    """The strategy for ``distribution``; create it before any other TensorFlow work."""
    import tensorflow as tf

    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if cluster_task(environ) is None:
        raise StageError(
            "train.distribution is multi_worker but TF_CONFIG is not set: start one "
            "`python -m stages.train <name>` per worker, each with TF_CONFIG naming the cluster "
            "and its own task (docs/team.md: Training on several machines), or set "
            "train.distribution to none"
        )
    _let_keras_fit_run_on_several_workers()
    return tf.distribute.MultiWorkerMirroredStrategy()


def _let_keras_fit_run_on_several_workers() -> None:
    """Two fixes to Keras 3.15's TensorFlow trainer, without which ``fit`` fails under
    ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585, open):

    - before the first step it builds the model from a sample batch that it first averages
      across workers eagerly, which the collective ops cannot do ("Attempt to convert a value
      (PerReplica...)"): build from this worker's own sample instead (only shapes matter);
    - after every step it averages each logged value across workers along axis 0, which
      scalars (loss, metrics) do not have: average them as they are.

    Private Keras API: ``tests/test_distribution.py`` trains two real workers and fails if a
    Keras upgrade moves it.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_patched_for_multi_worker", False):
        return
    reduce_per_replica = trainer.reduce_per_replica

    def reduce_scalars_across_workers(values, strategy, reduction="auto"):
        if trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    def build_from_local_batch(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return  # Keras builds when it traces the step, as without a strategy.
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0],
                    next(batches),
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_scalars_across_workers
    trainer.TensorFlowTrainer._maybe_symbolic_build = build_from_local_batch
    trainer._patched_for_multi_worker = True
