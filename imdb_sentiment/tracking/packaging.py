"""Packages a trained classifier as the MLflow model its training run logs: the served model's
code, its artifacts, its signature and example, the code it imports and its pip requirements.

A dependency of the training stage in dvc.yaml, with the classifier and the served model's code
(``served_model.py``, which this module names but does not import): a fix to what is served
reaches the next logged model.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd

import fast_rnn
import imdb_sentiment
from imdb_sentiment.classifier import (
    CLASSIFIER_FILES,
    EXAMPLE_REVIEWS,
    TEXT_COLUMN,
    ReviewClassifier,
)

# MLflow runs this file to build the model wherever it is loaded (its "models from code").
SERVED_MODEL_CODE = Path(__file__).with_name("served_model.py")


def pip_requirements() -> list[str]:
    """What the served model needs installed, at this environment's versions. Listed, not
    inferred: MLflow's inference reloads the model in a subprocess, for minutes."""
    import keras
    import sklearn
    import tensorflow as tf

    return [
        f"tensorflow-cpu=={tf.__version__}",
        f"keras=={keras.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"pandas=={pd.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"filelock=={version('filelock')}",
    ]


def log_classifier(files: dict[str, Path]) -> str:
    """Logs the classifier made of ``files`` (by :data:`CLASSIFIER_FILES` name) as the active
    run's pyfunc model, which takes raw review text.

    Returns:
        The logged model's URI (``models:/m-…``).
    """
    from mlflow.models import infer_signature

    example = pd.DataFrame({TEXT_COLUMN: EXAMPLE_REVIEWS})
    classifier = ReviewClassifier.from_files(*(files[name] for name in CLASSIFIER_FILES))
    model_info = mlflow.pyfunc.log_model(
        name="model",
        python_model=SERVED_MODEL_CODE,
        artifacts={name: str(path) for name, path in files.items()},
        # The classifier and the recurrent layers, so that the model loads outside this project.
        code_paths=[str(Path(package.__path__[0])) for package in (imdb_sentiment, fast_rnn)],
        signature=infer_signature(example, classifier.predict(example)),
        input_example=example,
        pip_requirements=pip_requirements(),
    )
    return model_info.model_uri
