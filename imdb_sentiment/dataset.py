"""The IMDB reviews: read from the archive, split, encoded, and kept as arrays.

The reviews are streamed out of the compressed archive (no extraction of 50,000 small files).
The validation split is carved from the training reviews, seeded and stratified by label, and
the vocabulary is built from what remains for training: neither validation nor test reviews
influence it.
"""

from __future__ import annotations

import logging
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from imdb_sentiment.errors import StageError
from imdb_sentiment.files import atomic_path
from imdb_sentiment.params import DataParams
from imdb_sentiment.text import OUT_OF_VOCABULARY_ID, ReviewEncoder, build_vocabulary, tokenize

logger = logging.getLogger(__name__)

# aclImdb/<split>/<pos|neg>/<review id>_<rating>.txt; train/unsup holds unlabeled reviews.
_REVIEW_MEMBER = re.compile(r"^aclImdb/(train|test)/(pos|neg)/(\d+_\d+)\.txt$")
LENGTH_PERCENTILES = (50, 90, 95, 99)
# The data params that shape the prepared splits: prepare's params in dvc.yaml, and logged
# with every training run.
SHAPING_DATA_PARAMS = (
    "drop_stop_words",
    "num_words",
    "maxlen",
    "padding",
    "truncating",
    "val_fraction",
    "seed",
)


@dataclass(frozen=True)
class RawSplit:
    """Labeled raw reviews: ``ids`` like ``train/pos/0_9``, labels 1 for positive."""

    ids: list[str]
    texts: list[str]
    labels: np.ndarray


@dataclass(frozen=True)
class EncodedSplit:
    ids: np.ndarray
    reviews: np.ndarray
    labels: np.ndarray


def _escapes(name: str) -> bool:
    """Whether a member's path would land outside the folder it is extracted to."""
    return name.startswith("/") or ".." in PurePosixPath(name).parts


def read_archive(archive: Path) -> tuple[dict[str, RawSplit], dict[str, int]]:
    """Reads the labeled train and test reviews from the aclImdb tarball, in a stable order.

    Nothing is extracted. Reviews that are not valid UTF-8 are kept, with the bad bytes
    replaced; empty reviews, and members whose path would escape the archive's folder, are
    skipped. Each is counted.

    Returns:
        The ``train`` and ``test`` reviews, and the counts of what was replaced or skipped.

    Raises:
        StageError: The file is not a gzipped tar, is cut short, or lacks a label folder.
    """
    found: dict[tuple[str, str], list[tuple[str, str, int]]] = {
        (split, label): [] for split in ("train", "test") for label in ("pos", "neg")
    }
    counts = {"reviews_not_utf8": 0, "empty_reviews_skipped": 0, "unsafe_members_skipped": 0}
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                if _escapes(member.name):
                    counts["unsafe_members_skipped"] += 1
                    continue
                match = _REVIEW_MEMBER.match(member.name)
                if not (match and member.isfile()):
                    continue
                split, label, review_id = match.groups()
                file = tar.extractfile(member)
                assert file is not None  # member.isfile() was checked above.
                data = file.read()
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    text = data.decode("utf-8", errors="replace")
                    counts["reviews_not_utf8"] += 1
                if not text.strip():
                    counts["empty_reviews_skipped"] += 1
                    continue
                found[split, label].append(
                    (f"{split}/{label}/{review_id}", text, int(label == "pos"))
                )
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise StageError(
            f"{archive} is not a readable gzipped tar archive ({error}): it is corrupt, cut "
            "short or another kind of file. Delete it and run `dvc repro` to download it again."
        ) from None
    missing = [
        f"aclImdb/{split}/{label}/" for (split, label), reviews in found.items() if not reviews
    ]
    if missing:
        raise StageError(
            f"{archive} has no reviews in {', '.join(missing)}: is it the IMDB archive? "
            "Check data.url and data.sha256 (or data.local_copy) in params.yaml."
        )
    for name, count in counts.items():
        if count:
            logger.warning("%s: %d %s", archive.name, count, name.replace("_", " "))
    splits = {
        split: _as_raw_split(sorted(found[split, "neg"] + found[split, "pos"]))
        for split in ("train", "test")
    }
    return splits, counts


def _as_raw_split(reviews: list[tuple[str, str, int]]) -> RawSplit:
    ids, texts, labels = zip(*reviews, strict=True)
    return RawSplit(list(ids), list(texts), np.array(labels, dtype=np.int8))


def split_validation(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Indices of the training and validation reviews: seeded, and stratified by label."""
    from sklearn.model_selection import train_test_split

    return train_test_split(
        np.arange(len(labels)), test_size=val_fraction, random_state=seed, stratify=labels
    )


def _split_stats(tokenized: list[list[str]], vocabulary: frozenset, labels, maxlen) -> dict:
    lengths = np.array([len(review) for review in tokenized])
    total_tokens = max(int(lengths.sum()), 1)
    out_of_vocabulary = sum(word not in vocabulary for review in tokenized for word in review)
    return {
        "reviews": len(labels),
        "positive_share": round(float(np.mean(labels)), 4),
        "out_of_vocabulary_rate": round(out_of_vocabulary / total_tokens, 4),
        "truncated_share": round(float(np.mean(lengths > maxlen)), 4),
        "length": {
            **{f"p{p}": int(np.percentile(lengths, p)) for p in LENGTH_PERCENTILES},
            "max": int(lengths.max()),
        },
    }


def prepare_splits(
    raw_splits: dict[str, RawSplit], params: DataParams
) -> tuple[dict[str, EncodedSplit], ReviewEncoder, dict]:
    """Splits, tokenizes, builds the vocabulary from training reviews only, encodes and pads.

    Returns:
        The ``train``, ``val`` and ``test`` splits, the encoder that made them (vocabulary
        included), and statistics per split.
    """
    train_index, val_index = split_validation(
        raw_splits["train"].labels, params.val_fraction, params.seed
    )
    selections = {
        "train": (raw_splits["train"], np.sort(train_index)),
        "val": (raw_splits["train"], np.sort(val_index)),
        "test": (raw_splits["test"], np.arange(len(raw_splits["test"].labels))),
    }
    tokenized = {
        name: [tokenize(split.texts[i], params.drop_stop_words) for i in index]
        for name, (split, index) in selections.items()
    }
    encoder = ReviewEncoder(
        vocabulary=tuple(build_vocabulary(tokenized["train"], params.num_words)),
        maxlen=params.maxlen,
        padding=params.padding,
        truncating=params.truncating,
        drop_stop_words=params.drop_stop_words,
    )
    known_words = frozenset(encoder.vocabulary[OUT_OF_VOCABULARY_ID + 1 :])
    encoded_splits: dict[str, EncodedSplit] = {}
    stats: dict[str, Any] = {"vocabulary_size": len(encoder.vocabulary)}
    for name, (split, index) in selections.items():
        labels = split.labels[index]
        encoded_splits[name] = EncodedSplit(
            ids=np.array([split.ids[i] for i in index]),
            reviews=encoder.encode_tokenized(tokenized[name]),
            labels=labels,
        )
        stats[name] = _split_stats(tokenized[name], known_words, labels, params.maxlen)
    return encoded_splits, encoder, stats


def save_split(path: Path, split: EncodedSplit) -> None:
    arrays_bytes = split.ids.nbytes + split.reviews.nbytes + split.labels.nbytes
    with atomic_path(path, arrays_bytes) as temporary:
        np.savez(temporary, ids=split.ids, reviews=split.reviews, labels=split.labels)


def load_split(path: Path) -> EncodedSplit:
    with np.load(path) as arrays:
        return EncodedSplit(arrays["ids"], arrays["reviews"], arrays["labels"])
