"""The model registry's champion: who holds the alias, promoting a new version to it, and
recording on the report's run what happened to it and why (the decision itself is
``comparison.champion_decision``'s)."""

from __future__ import annotations

import contextlib
import io

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from imdb_sentiment.cli import verbose
from imdb_sentiment.tracking.records import VALIDATION_PREDICTIONS

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
    ``val_accuracy``, ``val_reviews`` (None for a version registered before it was tagged),
    ``val_split`` (the md5 of the validation split it was scored on, or None), ``version`` and
    ``source_run_id`` (the training run it came from); None when there is no champion yet."""
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
        "val_split": tags.get("val_split_md5"),
        "version": str(champion.version),
        "source_run_id": tags.get("source_run_id"),
    }


def validation_correctness(
    champion: dict | None, split: str, threshold: float
) -> np.ndarray | None:
    """Where the champion is right (1) on every review of the validation split whose md5 is
    ``split``, from the predictions its evaluation kept with its training run; None when there
    is no champion, it was scored on another split, or its run kept none (registered before
    they were kept)."""
    if champion is None or champion.get("val_split") != split or not champion["source_run_id"]:
        return None
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=champion["source_run_id"], artifact_path=VALIDATION_PREDICTIONS
        )
    except (MlflowException, OSError):
        return None
    table = pd.read_csv(path)
    return ((table["probability"] >= threshold).astype(int) == table["actual"]).to_numpy()


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
