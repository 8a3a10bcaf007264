"""Shared fixtures: a tiny IMDB-like archive with learnable synthetic reviews."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
from pathlib import Path

import pytest

REAL_ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared/data/aclImdb_v1_labeled.tar.gz"

POSITIVE_WORDS = ["great", "wonderful", "superb", "moving", "brilliant", "loved", "beautiful"]
NEGATIVE_WORDS = ["awful", "boring", "terrible", "waste", "dull", "hated", "worst"]
NEUTRAL_WORDS = [
    "the",
    "film",
    "movie",
    "a",
    "plot",
    "actor",
    "scene",
    "story",
    "and",
    "it",
    "was",
    "of",
    "this",
    "director",
    "camera",
    "ending",
    "music",
    "character",
]


def synthetic_review(rng: random.Random, positive: bool, length: int = 40) -> str:
    """A review of neutral words sprinkled with words of its sentiment, with HTML breaks."""
    sentiment_words = POSITIVE_WORDS if positive else NEGATIVE_WORDS
    words = [
        rng.choice(sentiment_words) if rng.random() < 0.2 else rng.choice(NEUTRAL_WORDS)
        for _ in range(length)
    ]
    words[rng.randrange(length)] += "!<br /><br />"
    return " ".join(words).capitalize() + "."


def write_archive(path: Path, reviews_per_label: int, seed: int = 0, extra: dict | None = None):
    """Writes an aclImdb-layout tarball; returns its sha256.

    ``extra`` maps more member names to their text or bytes (an unlabeled review, say).
    """
    rng = random.Random(seed)
    members = {"aclImdb/README": "synthetic", "aclImdb/imdb.vocab": "the\nfilm\n"}
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            for index in range(reviews_per_label):
                rating = rng.randint(7, 10) if label == "pos" else rng.randint(1, 4)
                name = f"aclImdb/{split}/{label}/{index}_{rating}.txt"
                members[name] = synthetic_review(rng, label == "pos", rng.randint(20, 120))
    members.update(extra or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text if isinstance(text, bytes) else text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny_archive(tmp_path: Path) -> tuple[Path, str]:
    """A tarball with 60 reviews per label and split, plus an unlabeled one to be ignored."""
    path = tmp_path / "aclImdb_tiny.tar.gz"
    sha256 = write_archive(
        path, reviews_per_label=60, extra={"aclImdb/train/unsup/0_0.txt": "unlabeled words"}
    )
    return path, sha256
