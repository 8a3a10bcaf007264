"""Turns raw reviews into padded token-id arrays: cleaning, vocabulary, encoding, padding.

The prepare stage and prediction use these same functions, so that a review is encoded the
same way at training time and at prediction time.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from imdb_sentiment.files import read_json, write_json, write_text

PADDING_TOKEN = ""
OUT_OF_VOCABULARY_TOKEN = "[UNK]"
PADDING_ID = 0
OUT_OF_VOCABULARY_ID = 1

_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# Letters, digits and inner apostrophes make words ("don't"); everything else separates them.
_WORD = re.compile(r"[\w']+")

# Words that carry a verdict's direction or strength ("not good", "too long", "very good") stay,
# though scikit-learn lists them as stop words.
SENTIMENT_STOP_WORDS = frozenset(
    {
        "against",
        "although",
        "but",
        "cannot",
        "enough",
        "even",
        "ever",
        "few",
        "however",
        "least",
        "less",
        "more",
        "most",
        "much",
        "never",
        "no",
        "nobody",
        "none",
        "noone",
        "nor",
        "not",
        "nothing",
        "only",
        "though",
        "too",
        "very",
        "well",
        "without",
    }
)
# With reviews cut to a few dozen tokens, function words ("the", "of", "this") would take half
# of them; dropping them lets the same length cover twice as much of a review.
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) - SENTIMENT_STOP_WORDS


def tokenize(review: str, drop_stop_words: bool = False) -> list[str]:
    """Lower-cases a review, drops HTML line breaks and punctuation, and splits it into words.

    Args:
        drop_stop_words: Also drop the words of ``STOP_WORDS``.
    """
    words = _WORD.findall(_LINE_BREAK.sub(" ", review.lower()))
    stripped = (word.strip("'_") for word in words)
    if drop_stop_words:
        return [word for word in stripped if word and word not in STOP_WORDS]
    return [word for word in stripped if word]


def build_vocabulary(tokenized_reviews: Iterable[Sequence[str]], num_words: int) -> list[str]:
    """The ``num_words`` tokens of the vocabulary, in id order, as Keras' TextVectorization
    lays them out: padding, out-of-vocabulary, then the most frequent words.

    Ties in frequency are broken alphabetically, so the vocabulary does not depend on the order
    of the reviews.
    """
    counts = Counter(word for review in tokenized_reviews for word in review)
    by_frequency = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    words = [word for word, _ in by_frequency[: num_words - 2]]
    return [PADDING_TOKEN, OUT_OF_VOCABULARY_TOKEN, *words]


def word_ids(vocabulary: Sequence[str]) -> dict[str, int]:
    """Each word of ``vocabulary`` (but the padding and OOV tokens) and its id."""
    return {word: index for index, word in enumerate(vocabulary) if index > OUT_OF_VOCABULARY_ID}


def encode(tokenized_reviews: Iterable[Sequence[str]], ids: Mapping[str, int]) -> list[list[int]]:
    """Replaces each word with its id in ``ids`` (see :func:`word_ids`), unknown words with the
    OOV id."""
    return [
        [ids.get(word, OUT_OF_VOCABULARY_ID) for word in review] for review in tokenized_reviews
    ]


def pad(
    sequences: Sequence[Sequence[int]], maxlen: int, padding: str, truncating: str
) -> np.ndarray:
    """Pads or truncates every sequence to ``maxlen`` ids, as Keras' ``pad_sequences`` does
    (tests/test_text.py checks that it gives the same array).

    Args:
        padding: "pre" puts the padding before a shorter sequence, "post" after it.
        truncating: "pre" drops a longer sequence's first ids (keeps its end), "post" its last.
    """
    # Not Keras' own function: importing Keras loads TensorFlow, 5-6 s of the prepare stage,
    # which otherwise needs neither.
    padded = np.full((len(sequences), maxlen), PADDING_ID, dtype=np.int32)
    for row, sequence in zip(padded, sequences, strict=True):
        kept = sequence[-maxlen:] if truncating == "pre" else sequence[:maxlen]
        if padding == "pre":
            row[maxlen - len(kept) :] = kept
        else:
            row[: len(kept)] = kept
    return padded


@dataclass(frozen=True)
class ReviewEncoder:
    """Turns reviews into model input exactly as the prepare stage did: the one preprocessing
    path of training data, of ``python -m imdb_sentiment.predict`` and of the logged model."""

    vocabulary: tuple[str, ...]
    maxlen: int
    padding: str
    truncating: str
    drop_stop_words: bool

    def tokenize(self, reviews: Iterable[str]) -> list[list[str]]:
        return [tokenize(review, self.drop_stop_words) for review in reviews]

    @functools.cached_property
    def word_ids(self) -> dict[str, int]:
        # Built once per encoder: a request of one review would otherwise spend most of its
        # encoding time on the 10,000-word dictionary.
        return word_ids(self.vocabulary)

    def encode_tokenized(self, tokenized_reviews: Sequence[Sequence[str]]) -> np.ndarray:
        return pad(
            encode(tokenized_reviews, self.word_ids), self.maxlen, self.padding, self.truncating
        )

    def encode(self, reviews: Iterable[str]) -> np.ndarray:
        """Raw reviews to the ``[n, maxlen]`` int32 array a model takes."""
        return self.encode_tokenized(self.tokenize(reviews))

    def settings(self) -> dict:
        """Everything but the vocabulary, as saved beside it."""
        return {name: value for name, value in asdict(self).items() if name != "vocabulary"}


def save_encoder(encoder: ReviewEncoder, vocabulary_path: Path, settings_path: Path) -> None:
    """Writes the vocabulary, one token a line (a token's id is its line number), and the
    remaining settings as JSON."""
    write_text(vocabulary_path, "".join(f"{token}\n" for token in encoder.vocabulary))
    write_json(settings_path, encoder.settings())


def load_encoder(vocabulary_path: Path, settings_path: Path) -> ReviewEncoder:
    with open(vocabulary_path, encoding="utf-8") as file:
        vocabulary = tuple(file.read().split("\n")[:-1])
    return ReviewEncoder(vocabulary=vocabulary, **read_json(settings_path))
