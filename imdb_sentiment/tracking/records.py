"""What each stage records in its MLflow run: params, datasets, per-epoch and test metrics,
figures and the report's files; and the finished training runs, read back for a sweep.

Only records: nothing here changes what a stage computes or writes, so dvc.yaml leaves this
module out of the stages' dependencies (a change to what is logged retrains nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.data.dataset_source_registry import get_dataset_source_from_json
from mlflow.data.numpy_dataset import NumpyDataset, from_numpy
from mlflow.exceptions import MlflowException

from imdb_sentiment import plots
from imdb_sentiment.dataset import EncodedSplit
from imdb_sentiment.tracking.provenance import data_tags
from imdb_sentiment.tracking.store import tracking_uri


def training_run_params(params: dict, data_params: dict) -> dict[str, str]:
    """A training run's params as MLflow stores them: every effective hyperparameter, and the
    data params prefixed ``data_``, each as a string."""
    logged = {**params, **{f"data_{key}": value for key, value in data_params.items()}}
    return {key: str(value) for key, value in logged.items()}


def log_training_inputs(params: dict, data_params: dict, splits: dict) -> None:
    """A training run's params (:func:`training_run_params`) and its datasets: ``splits`` by
    context (``training``, ``validation``), each an encoded split and the file it was read
    from."""
    mlflow.log_params(training_run_params(params, data_params))
    for context, (split, path) in splits.items():
        log_dataset(split, path, context)


def log_dataset(split: EncodedSplit, path: Path, context: str) -> NumpyDataset:
    """An encoded split (its reviews and labels, with MLflow's digest) as an input of the run,
    tagged with the DVC hash and git commit that fetch its file again
    (:func:`~imdb_sentiment.tracking.provenance.data_tags`)."""
    dataset = from_numpy(
        split.reviews, targets=split.labels, source=_local_source(path), name=f"imdb-{context}"
    )
    tags = data_tags(path)
    try:
        mlflow.log_input(dataset, context=context, tags=tags)
    except MlflowException as error:
        # MLflow's SQL store looks the dataset up, then inserts it: two runs that log the same
        # dataset at once (two trainings, parallel experiments) may both insert it, and the
        # second breaks the datasets' unique key. The dataset is there by then; once more
        # takes it.
        if not _is_duplicate_key(error):
            raise
        mlflow.log_input(dataset, context=context, tags=tags)
    return dataset


def _is_duplicate_key(error: MlflowException) -> bool:
    message = str(error).lower()
    return "unique" in message or "duplicate" in message


def _local_source(path: Path):
    # Given as a plain path, MLflow finds two equal sources for it (its local artifact
    # repository is registered for both "" and "file") and warns; naming the type does not.
    return get_dataset_source_from_json(json.dumps({"uri": path.as_uri()}), source_type="local")


def epoch_metrics_callback():
    """MLflow's Keras callback, logging every epoch's metrics with the epoch as their step."""
    from mlflow.keras import MlflowCallback  # Imports Keras, hence TensorFlow: only when training.

    callback = MlflowCallback()
    # Its end-of-validation hook would log the val_* metrics a second time, as validation_*
    # and without a step.
    callback.on_test_end = lambda logs=None: None
    return callback


def log_training_outputs(
    name: str, summary: dict, history: pd.DataFrame, history_file: Path
) -> None:
    """A training run's summary metrics and its history (file and learning curves)."""
    mlflow.log_metrics(summary)
    mlflow.log_artifact(str(history_file))
    mlflow.log_figure(plots.learning_curves({name: history}), "learning_curves.png")


def log_evaluation(
    name: str, threshold: float, result: dict, model_uri: str, test_set: NumpyDataset
) -> None:
    """The test metrics, confusion matrix and ROC curve, into the run that trained the model;
    the metrics are also linked to the model it logged (``model_uri``, ``models:/m-…``) and to
    the test set, so that MLflow's page of that model shows them."""
    mlflow.log_params({"evaluate_threshold": threshold})
    mlflow.log_metrics(
        {f"test_{metric}": value for metric, value in result["metrics"].items()},
        model_id=model_uri.removeprefix("models:/"),
        dataset=test_set,
    )
    mlflow.log_dict({"confusion_matrix": result["confusion_matrix"]}, "test_confusion.json")
    mlflow.log_figure(
        plots.confusion_matrix(result["confusion_matrix"], f"{name} on the test set"),
        "test_confusion_matrix.png",
    )
    mlflow.log_figure(
        plots.roc_curves({name: result["roc"]}, {name: result["metrics"]["roc_auc"]}),
        "test_roc.png",
    )


# The artifact of a training run that holds its network's validation predictions.
VALIDATION_PREDICTIONS = "val_predictions.csv"


def log_validation_predictions(path: Path) -> None:
    """The network's probability of every validation review, kept with its run: the report
    tests a later candidate against the champion on them, paired review by review."""
    mlflow.log_artifact(str(path))


def log_comparison(table: pd.DataFrame, files: list[Path]) -> None:
    """The report's run: the runs it compares, every model's test accuracy with its interval
    (when its seeds give one; the tag ``interval_about`` says of what), and the report's
    files."""
    mlflow.log_params({f"run_ids_{row.model}": row.mlflow_run_ids for row in table.itertuples()})
    mlflow.set_tag("interval_about", str(table["interval_about"].iloc[0]))
    for row in table.itertuples():
        metrics = {
            f"{row.model}_test_accuracy": row.test_accuracy,
            f"{row.model}_test_accuracy_low": row.test_accuracy_low,
            f"{row.model}_test_accuracy_high": row.test_accuracy_high,
        }
        mlflow.log_metrics({key: value for key, value in metrics.items() if not pd.isna(value)})
    for path in files:
        mlflow.log_artifact(str(path))


def finished_training_runs(experiment_name: str) -> pd.DataFrame:
    """Every training run of the experiment that ended FINISHED, newest first: one row each,
    with columns ``run_id``, ``start_time``, ``params.<key>``, ``metrics.<key>``, ``tags.<key>``
    (empty when the experiment does not exist yet)."""
    mlflow.set_tracking_uri(tracking_uri())
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        return pd.DataFrame()
    return mlflow.search_runs(
        [experiment.experiment_id],
        filter_string="tags.pipeline_stage = 'train' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
