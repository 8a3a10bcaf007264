"""A trained model together with its preprocessing: raw review text in, probability out.

``python -m imdb_sentiment.predict`` uses it on the pipeline's outputs, and every training run
logs it to MLflow as a pyfunc model (``tracking.py``), so that ``mlflow.pyfunc.load_model`` and
``mlflow models serve`` take raw reviews too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imdb_sentiment.text import ReviewEncoder, load_encoder

TEXT_COLUMN = "text"
# A label's index is the 0/1 class it names.
LABELS = np.array(["negative", "positive"])
# What a served or loaded model is shown when it is logged: real text, not token ids.
EXAMPLE_REVIEWS = [
    "A moving, beautifully acted film. I loved every minute of it.",
    "Not good at all: a dull plot, wooden acting and an ending that made no sense.",
]


class ReviewError(ValueError):
    """Some input cannot be classified; the message names the rows and the problem."""


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


@dataclass(frozen=True)
class ReviewClassifier:
    """A Keras model and the encoder its training data went through."""

    keras_model: object  # keras.Model; not annotated as such, to keep Keras out of this import.
    encoder: ReviewEncoder

    @classmethod
    def from_files(cls, keras_model: Path, vocabulary: Path, encoding: Path) -> ReviewClassifier:
        from imdb_sentiment.modeling import load_model

        return cls(load_model(keras_model), load_encoder(vocabulary, encoding))

    def predict(self, reviews: pd.DataFrame) -> pd.DataFrame:
        """Probability that each review of the ``text`` column is positive, and its label.

        Raises:
            ReviewError: There is no ``text`` column, or a review is empty or not a string.
        """
        token_ids = self.encoder.encode(check_reviews(reviews))
        probabilities = self.keras_model.predict(token_ids, batch_size=1024, verbose=0)
        return classify(probabilities.ravel())
