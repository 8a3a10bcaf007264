"""A trained model together with its preprocessing: raw review text in, probability out.

Each training run logs one as an MLflow pyfunc model, so that
``mlflow.pyfunc.load_model(...).predict(pd.DataFrame({"text": [...]}))`` and
``mlflow models serve`` take raw reviews; ``python -m stages.predict`` uses the same class on
the pipeline's local outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from stages.text import ReviewEncoder, load_encoder

TEXT_COLUMN = "text"
# A label's index is the 0/1 class it names.
LABELS = np.array(["negative", "positive"])
ARTIFACTS = ("keras_model", "vocabulary", "encoding")
# What a served or loaded model is shown when it is logged: real text, not token ids.
EXAMPLE_REVIEWS = [
    "A moving, beautifully acted film. I loved every minute of it.",
    "Not good at all: a dull plot, wooden acting and an ending that made no sense.",
]


class ReviewError(MlflowException):
    """Some input cannot be classified; the message names the rows and the problem.

    An MlflowException, so that ``mlflow models serve`` answers it with HTTP 400 and the
    message, not a 500 with a traceback.
    """

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def check_reviews(reviews: pd.DataFrame) -> list[str]:
    """The reviews of a ``text`` column, or a :class:`ReviewError` naming what is wrong."""
    if not isinstance(reviews, pd.DataFrame) or TEXT_COLUMN not in reviews.columns:
        columns = list(reviews.columns) if isinstance(reviews, pd.DataFrame) else []
        raise ReviewError(
            f"expected a table with a {TEXT_COLUMN!r} column of review texts, got columns {columns}"
        )
    texts = reviews[TEXT_COLUMN].tolist()
    not_text = [row for row, text in enumerate(texts) if not isinstance(text, str)]
    if not_text:
        raise ReviewError(f"rows {not_text} of {TEXT_COLUMN!r} are not strings")
    empty = [row for row, text in enumerate(texts) if not text.strip()]
    if empty:
        raise ReviewError(
            f"rows {empty} of {TEXT_COLUMN!r} are empty: there is nothing to classify"
        )
    return texts


def classify(probabilities: np.ndarray, threshold: float = 0.5) -> pd.DataFrame:
    """Positive-class probabilities to a table of ``probability`` and ``label``."""
    return pd.DataFrame(
        {
            "probability": probabilities.astype(float),
            "label": LABELS[(probabilities >= threshold).astype(int)],
        }
    )


class ReviewClassifier(PythonModel):
    """An MLflow pyfunc model: a Keras model, the vocabulary and the encoding settings."""

    def __init__(self, keras_model=None, encoder: ReviewEncoder | None = None):
        self.keras_model = keras_model
        self.encoder = encoder

    @classmethod
    def from_files(cls, keras_model: Path, vocabulary: Path, encoding: Path) -> ReviewClassifier:
        from stages.modeling import load_model

        return cls(load_model(keras_model), load_encoder(vocabulary, encoding))

    def load_context(self, context) -> None:
        loaded = self.from_files(*(Path(context.artifacts[name]) for name in ARTIFACTS))
        self.keras_model, self.encoder = loaded.keras_model, loaded.encoder

    def __getstate__(self) -> dict:
        # Logging pickles this object; the model and vocabulary travel as artifacts instead.
        return {}

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Probability that each review of the ``text`` column is positive, and its label."""
        token_ids = self.encoder.encode(check_reviews(model_input))
        probabilities = self.keras_model.predict(token_ids, batch_size=1024, verbose=0)
        return classify(probabilities.ravel())
