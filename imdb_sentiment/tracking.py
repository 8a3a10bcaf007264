"""The one module that talks to MLflow: the store, runs, what each stage logs, the logged
model and the registry.

Stages open their run here, at the edge; no other module imports mlflow. A run that fails ends
FAILED, one interrupted by Ctrl-C or SIGTERM ends KILLED: none is left RUNNING.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import mlflow
import pandas as pd
from filelock import FileLock
from mlflow.data.dataset_source_registry import get_dataset_source_from_json
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

import fast_rnn
import imdb_sentiment
from imdb_sentiment import paths, plots
from imdb_sentiment.classifier import (
    EXAMPLE_REVIEWS,
    MAX_REVIEWS_PER_REQUEST,
    TEXT_COLUMN,
    ReviewClassifier,
    ReviewError,
)
from imdb_sentiment.cli import StageError, verbose

logger = logging.getLogger(__name__)


class TrackingError(StageError):
    """The tracking store cannot be used; the message says which store and what to do."""


def default_tracking_uri() -> str:
    """The SQLite store that ``mlflow ui`` opens when it is started in the project root
    (MLflow's default, resolved from the project root, not the cwd)."""
    return f"sqlite:///{paths.users_project() / 'mlflow.db'}"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else :func:`default_tracking_uri`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def _local_artifact_location(experiment_name: str) -> str | None:
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, so the variable's presence does not
    # tell whether the user chose the store: its value does.
    if tracking_uri() != default_tracking_uri():
        return None  # A server or a store the user configured knows its own artifact root.
    return (paths.users_project() / "mlartifacts" / experiment_name).as_uri()


def _experiment_id(experiment_name: str) -> str:
    """The id of ``experiment_name``, created with artifacts beside the store if it is new."""
    # Two stages starting at once (`dvc queue start -j 2`) would both create the SQLite
    # tables, or the experiment, and one would fail: the first to come does it alone.
    lock = (
        FileLock(paths.users_project() / "mlflow.db.lock")
        if tracking_uri() == default_tracking_uri()
        else nullcontext()
    )
    try:
        with lock:
            experiment = mlflow.get_experiment_by_name(experiment_name)
            if experiment is not None:
                return experiment.experiment_id
            try:
                return mlflow.create_experiment(
                    experiment_name, artifact_location=_local_artifact_location(experiment_name)
                )
            except mlflow.exceptions.MlflowException as error:
                # On a shared server another process (a parallel experiment, a teammate) may
                # have created it since we looked: no lock spans machines.
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                return mlflow.get_experiment_by_name(experiment_name).experiment_id
    except Exception as error:
        raise TrackingError(
            f"cannot use the MLflow tracking store {tracking_uri()}: {error}. "
            "Check MLFLOW_TRACKING_URI (unset it to use mlflow.db in the project root)."
        ) from error


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip()


def source_tags() -> dict[str, str]:
    """Where a run's code came from: the git commit, whether the code or params differed from
    it, the DVC stage, and the DVC experiment (under ``dvc exp run`` the commit is only the
    experiment's baseline)."""
    tags = {}
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git_commit"] = commit
        # dvc.lock and reports/ change with every run; they do not make the code differ.
        changes = _git(
            "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock", ":!reports"
        )
        tags["git_dirty"] = str(bool(changes)).lower()
    for variable in ("DVC_STAGE", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        if os.environ.get(variable):
            tags[variable.lower()] = os.environ[variable]
    return tags


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


def check_server(uri: str, timeout_seconds: float = 5.0) -> None:
    """Fails fast when a tracking server does not answer, instead of after MLflow's retries
    (minutes), and before any training."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_seconds):
            pass
    except (OSError, ValueError) as error:
        raise TrackingError(
            f"the MLflow tracking server {uri} does not answer ({getattr(error, 'reason', error)})"
            ": start it, or unset MLFLOW_TRACKING_URI to use mlflow.db in the project root."
        ) from None


def _process_tags() -> dict[str, str]:
    return {"host": socket.gethostname(), "pid": str(os.getpid())}


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_orphaned_runs(experiment_id: str) -> list[str]:
    """Marks FAILED the runs of this host left RUNNING by a process that is gone (killed by
    SIGKILL or the OOM killer, or unable to reach its server when it ended).

    Returns:
        The ids of the runs it ended.
    """
    client = mlflow.MlflowClient()
    running = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.host = '{socket.gethostname()}'",
    )
    orphans = [run for run in running if not _is_alive(int(run.data.tags.get("pid", "0")))]
    for orphan in orphans:
        client.set_tag(orphan.info.run_id, "ended_by", "cleanup: its process was gone")
        client.set_terminated(orphan.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        logger.warning("Marked MLflow run %s FAILED: its process had died", orphan.info.run_id)
    return [orphan.info.run_id for orphan in orphans]


def _end_run(run_id: str, status: str) -> None:
    try:
        mlflow.end_run(status)
    except Exception as error:
        # The server went away: the run stays RUNNING there until a later stage on this host
        # ends it (end_orphaned_runs). The error that ended the stage matters more.
        logger.error(
            "Could not mark MLflow run %s %s in %s: %s", run_id, status, tracking_uri(), error
        )
        mlflow.tracking.fluent._active_run_stack.get().clear()


# How often a training run samples CPU, memory and disk (MLflow's system metrics), unless
# MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL says otherwise: a few dozen points for a training.
SYSTEM_METRICS_SECONDS = 5


@contextmanager
def run(
    experiment_name: str,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
    system_metrics: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """Opens an MLflow run (a new one, or ``run_id`` again) and always closes it.

    The run ends FINISHED on success, KILLED on Ctrl-C or SIGTERM, FAILED on any other error.
    A new run is tagged with where its code came from; a reopened one keeps the tags it has.
    With ``system_metrics``, MLflow samples the machine's CPU and memory use while it runs.
    """
    uri = tracking_uri()
    check_server(uri)
    mlflow.set_tracking_uri(uri)
    experiment_id = _experiment_id(experiment_name)
    end_orphaned_runs(experiment_id)
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        if system_metrics and not os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
            mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_SECONDS)
        active_run = mlflow.start_run(
            run_id=run_id,
            experiment_id=None if run_id else experiment_id,
            run_name=run_name,
            tags={**({} if run_id else source_tags()), **(tags or {}), **_process_tags()},
            log_system_metrics=system_metrics,
        )
    except Exception as error:
        signal.signal(signal.SIGTERM, previous_sigterm)
        raise TrackingError(f"cannot start an MLflow run in {uri}: {error}") from error
    status = RunStatus.FAILED
    try:
        yield active_run
        status = RunStatus.FINISHED
    except KeyboardInterrupt:
        status = RunStatus.KILLED
        raise
    except MlflowException as error:
        # Mostly a server that went away mid-stage; the traceback is for LOG_LEVEL=DEBUG.
        logger.debug("MLflow error", exc_info=True)
        raise TrackingError(f"MLflow failed ({uri}): {error.message}") from error
    finally:
        _end_run(active_run.info.run_id, RunStatus.to_string(status))
        signal.signal(signal.SIGTERM, previous_sigterm)
        logger.info(
            "MLflow run %s ended %s (%s)", active_run.info.run_id, RunStatus.to_string(status), uri
        )


# What the stages log -------------------------------------------------------------------------


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


def log_dataset(split, path: Path, context: str) -> None:
    """An encoded split (its reviews and labels, with their digest) as an input of the run."""
    dataset = mlflow.data.from_numpy(
        split.reviews, targets=split.labels, source=_local_source(path), name=f"imdb-{context}"
    )
    mlflow.log_input(dataset, context=context)


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
    name: str, summary: dict, history: pd.DataFrame, history_file: Path, classifier_files: dict
) -> str:
    """A training run's summary metrics, its history (file and learning curves) and its model
    as a pyfunc model taking raw text (``classifier_files``: ``keras_model``, ``vocabulary``,
    ``encoding``).

    Returns:
        The logged model's URI (``models:/m-…``).
    """
    mlflow.log_metrics(summary)
    mlflow.log_artifact(str(history_file))
    mlflow.log_figure(plots.learning_curves({name: history}), "learning_curves.png")
    return _log_classifier(classifier_files)


def log_evaluation(name: str, threshold: float, result: dict) -> None:
    """The test metrics, confusion matrix and ROC curve, into the run that trained the model."""
    mlflow.log_params({"evaluate_threshold": threshold})
    mlflow.log_metrics({f"test_{metric}": value for metric, value in result["metrics"].items()})
    mlflow.log_dict({"confusion_matrix": result["confusion_matrix"]}, "test_confusion.json")
    mlflow.log_figure(
        plots.confusion_matrix(result["confusion_matrix"], f"{name} on the test set"),
        "test_confusion_matrix.png",
    )
    mlflow.log_figure(
        plots.roc_curves({name: result["roc"]}, {name: result["metrics"]["roc_auc"]}),
        "test_roc.png",
    )


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


# The logged model ----------------------------------------------------------------------------

# MLflow builds the logged model by running this file (its "models from code"), rather than
# unpickling an object; the packages it imports travel with the model.
LOGGED_MODEL_CODE = Path(__file__).with_name("logged_model.py")
CLASSIFIER_ARTIFACTS = ("keras_model", "vocabulary", "encoding")


class _PyfuncReviewClassifier(mlflow.pyfunc.PythonModel):
    """A :class:`ReviewClassifier` as an MLflow pyfunc model."""

    def load_context(self, context) -> None:
        self.classifier = ReviewClassifier.from_files(
            *(Path(context.artifacts[name]) for name in CLASSIFIER_ARTIFACTS)
        )

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Probability that each review of the ``text`` column is positive, and its label."""
        try:
            return self.classifier.predict(model_input, MAX_REVIEWS_PER_REQUEST)
        except ReviewError as error:
            # An MlflowException: `mlflow models serve` answers HTTP 400 with the message.
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None


def set_logged_model() -> None:
    """Called by ``logged_model.py`` when MLflow builds the model from it."""
    mlflow.models.set_model(_PyfuncReviewClassifier())


def _log_classifier(files: dict[str, Path]) -> str:
    import keras
    import sklearn
    import tensorflow as tf
    from mlflow.models import infer_signature

    example = pd.DataFrame({TEXT_COLUMN: EXAMPLE_REVIEWS})
    classifier = ReviewClassifier.from_files(*(files[name] for name in CLASSIFIER_ARTIFACTS))
    model_info = mlflow.pyfunc.log_model(
        name="model",
        python_model=LOGGED_MODEL_CODE,
        artifacts={name: str(path) for name, path in files.items()},
        # The classifier and the recurrent layers, so that the model loads outside this project.
        code_paths=[str(Path(package.__file__).parent) for package in (imdb_sentiment, fast_rnn)],
        signature=infer_signature(example, classifier.predict(example)),
        input_example=example,
        # Listed, not inferred: inference reloads the model in a subprocess, for minutes.
        pip_requirements=[
            f"tensorflow-cpu=={tf.__version__}",
            f"keras=={keras.__version__}",
            f"mlflow=={mlflow.__version__}",
            f"pandas=={pd.__version__}",
            f"scikit-learn=={sklearn.__version__}",
            f"filelock=={_version('filelock')}",
        ],
    )
    return model_info.model_uri


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


# The registry --------------------------------------------------------------------------------

CHAMPION_ALIAS = "champion"


def current_champion(registered_name: str):
    """The model version that has the champion alias, or None."""
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(registered_name, CHAMPION_ALIAS)
    except MlflowException as error:
        # No such registered model, or no version with the alias yet.
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def champion_summary(registered_name: str) -> dict | None:
    """The champion, as the report weighs it: ``name`` (model, seed and version),
    ``val_accuracy``, ``val_reviews`` (None for a version registered before it was tagged) and
    ``version``; None when there is no champion yet."""
    champion = current_champion(registered_name)
    if champion is None:
        return None
    tags = champion.tags
    reviews = tags.get("val_reviews")
    return {
        "name": f"{tags.get('pipeline_model', '?')} (seed {tags.get('seed', '?')}, "
        f"version {champion.version})",
        "val_accuracy": float(tags.get("val_accuracy", "nan")),
        "val_reviews": int(reviews) if reviews else None,
        "version": str(champion.version),
    }


def promote(registered_name: str, model_uri: str, tags: dict[str, str]) -> str:
    """Registers ``model_uri`` as a new version with ``tags`` and points the champion alias at
    it; returns the version."""
    # register_model prints what it did to stderr; the stage logs it instead.
    quiet = contextlib.nullcontext() if verbose() else contextlib.redirect_stderr(io.StringIO())
    with quiet:
        registered = mlflow.register_model(model_uri, registered_name, tags=tags)
    version = str(registered.version)
    mlflow.MlflowClient().set_registered_model_alias(registered_name, CHAMPION_ALIAS, version)
    return version


def log_champion(best_model: str, version: str | None, changed: bool, why: str) -> None:
    """Tags the report's run with its best model, what that did to the champion alias, and
    why."""
    mlflow.set_tags(
        {
            "best_model": best_model,
            "champion_version": version or "",
            "champion_changed": str(changed).lower(),
            "champion_decision": why,
        }
    )
