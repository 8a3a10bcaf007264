"""A trained model together with its preprocessing: raw review text in, probability out.

``python -m imdb_sentiment.predict`` uses it on the pipeline's outputs, and every training run
logs it to MLflow as a pyfunc model (``tracking/served_model.py``), so that
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` take raw reviews too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from imdb_sentiment.text import ReviewEncoder, load_encoder

if TYPE_CHECKING:  # Importing Keras here would load TensorFlow with every import of this.
    import keras

TEXT_COLUMN = "text"
# A label's index is the 0/1 class it names.
LABELS = np.array(["negative", "positive"])
# What a served or loaded model is shown when it is logged: real text, not token ids.
EXAMPLE_REVIEWS = [
    "A moving, beautifully acted film. I loved every minute of it.",
    "Not good at all: a dull plot, wooden acting and an ending that made no sense.",
]


# A classifier's files, by the names the logged model gives them as artifacts, in the order
# ReviewClassifier.from_files takes them.
CLASSIFIER_FILES = ("keras_model", "vocabulary", "encoding")

# A served model refuses more reviews than this in one request, so that the server's memory and
# its other clients' wait stay bounded. Larger jobs go in several requests, or through the
# predict command, which has no limit.
MAX_REVIEWS_PER_REQUEST = 10_000


class ReviewError(ValueError):
    """Some input cannot be classified; the message names the rows and the problem."""


def check_reviews(reviews: pd.DataFrame, max_reviews: int | None = None) -> list[str]:
    """The reviews of a ``text`` column, or a :class:`ReviewError` naming what is wrong."""
    if not isinstance(reviews, pd.DataFrame) or TEXT_COLUMN not in reviews.columns:
        columns = list(reviews.columns) if isinstance(reviews, pd.DataFrame) else []
        raise ReviewError(
            f"expected a table with a {TEXT_COLUMN!r} column of review texts, got columns {columns}"
        )
    if max_reviews is not None and len(reviews) > max_reviews:
        raise ReviewError(
            f"{len(reviews):,} reviews in one request; at most {max_reviews:,}: split them into "
            "several requests"
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


# Keras' predict builds a data pipeline and a step function on every call: worth it for a large
# batch, but about 40 ms of overhead for a request of a few reviews. A batch of at most this many
# reviews runs the model's compiled call directly instead, as one batch of predict would.
PREDICT_BATCH = 1024


@dataclass(frozen=True)
class ReviewClassifier:
    """A Keras model and the encoder its training data went through."""

    keras_model: keras.Model
    encoder: ReviewEncoder

    @classmethod
    def from_files(cls, keras_model: Path, vocabulary: Path, encoding: Path) -> ReviewClassifier:
        """Loads a classifier, ready for its first request (its compiled call traced)."""
        from imdb_sentiment.modeling import load_model

        classifier = cls(load_model(keras_model), load_encoder(vocabulary, encoding))
        classifier.probabilities(np.zeros((1, classifier.encoder.maxlen), np.int32))
        return classifier

    def predict(self, reviews: pd.DataFrame, max_reviews: int | None = None) -> pd.DataFrame:
        """Probability that each review of the ``text`` column is positive, and its label.

        Raises:
            ReviewError: There is no ``text`` column, a review is empty or not a string, or
                there are more than ``max_reviews``.
        """
        texts = check_reviews(reviews, max_reviews)
        return classify(self.probabilities(self.encoder.encode(texts)))

    def probabilities(self, token_ids: np.ndarray) -> np.ndarray:
        """The model's positive-class probability for each row of encoded reviews."""
        if len(token_ids) > PREDICT_BATCH:
            return self.keras_model.predict(token_ids, batch_size=PREDICT_BATCH, verbose=0).ravel()
        return self._compiled_call(token_ids).numpy().ravel()

    @functools.cached_property
    def _compiled_call(self):
        import tensorflow as tf

        model = self.keras_model
        # Any number of reviews of the encoder's length: traced once, not once per batch size.
        reviews = tf.TensorSpec([None, self.encoder.maxlen], tf.int32)
        return tf.function(lambda token_ids: model(token_ids, training=False), [reviews])
