"""The model every training run logs to MLflow, as MLflow loads it: a pyfunc model taking raw
review text. MLflow runs this file to build the model wherever it is loaded ("models from
code"), instead of unpickling an object; :mod:`~imdb_sentiment.tracking.packaging` logs it with
its artifacts (the Keras model, the vocabulary, the encoding settings) and with this package and
``fast_rnn`` as code.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from imdb_sentiment.classifier import (
    CLASSIFIER_FILES,
    MAX_REVIEWS_PER_REQUEST,
    ReviewClassifier,
    ReviewError,
)


class PyfuncReviewClassifier(PythonModel):
    """A :class:`~imdb_sentiment.classifier.ReviewClassifier` as an MLflow pyfunc model."""

    def load_context(self, context) -> None:
        self.classifier = ReviewClassifier.from_files(
            *(Path(context.artifacts[name]) for name in CLASSIFIER_FILES)
        )

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Probability that each review of the ``text`` column is positive, and its label."""
        try:
            return self.classifier.predict(model_input, MAX_REVIEWS_PER_REQUEST)
        except ReviewError as error:
            # An MlflowException: `mlflow models serve` answers HTTP 400 with the message.
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None


mlflow.models.set_model(PyfuncReviewClassifier())
