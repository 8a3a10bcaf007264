"""Classify raw reviews with the trained models: ``python -m imdb_sentiment.predict``.

    python -m imdb_sentiment.predict "A moving, beautifully acted film."  # every trained model
    python -m imdb_sentiment.predict --model lstm "Dull." "Great fun!"     # one; repeatable
    python -m imdb_sentiment.predict --file reviews.txt    # one review a line; - is stdin
    python -m imdb_sentiment.predict --file reviews.jsonl  # JSON lines with a "text" key
    python -m imdb_sentiment.predict --json ...            # JSON lines out
    python -m imdb_sentiment.predict --seed 7 ...          # the models trained with seed 7

It uses the pipeline's current outputs (models/<name>/seed-<seed>/model.keras, by default of
each model's first network in params.yaml, and the vocabulary in data/prepared/), through the
same preprocessing as training. A review that cannot be classified
(empty, not UTF-8, not JSON) is reported by its line and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from imdb_sentiment import paths
from imdb_sentiment.cli import import_tensorflow, run_stage
from imdb_sentiment.errors import StageError
from imdb_sentiment.params import load_params

logger = logging.getLogger(__name__)

_PREVIEW_CHARACTERS = 60


@dataclass(frozen=True)
class Review:
    """A review to classify, or why it cannot be: ``source`` says where it came from."""

    source: str
    text: str | None = None
    error: str | None = None


def parse_lines(data: bytes, jsonl: bool, name: str) -> list[Review]:
    """Reviews from a file's bytes: one a line, or JSON lines with a ``text`` key.

    Blank lines separate nothing and are skipped.
    """
    reviews = []
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        source = f"{name}:{number}"
        try:
            line = raw_line.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            reviews.append(
                Review(
                    source,
                    error=f"not valid UTF-8 ({error.reason} at byte "
                    f"{error.start}, 0x{raw_line[error.start]:02x})",
                )
            )
            continue
        if not line:
            continue
        if not jsonl:
            reviews.append(Review(source, text=line))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            reviews.append(Review(source, error=f"not valid JSON ({error.msg})"))
            continue
        text = record.get("text") if isinstance(record, dict) else None
        if isinstance(text, str):
            reviews.append(Review(source, text=text))
        else:
            reviews.append(Review(source, error='expected a JSON object with a "text" string'))
    return reviews


def check_texts(reviews: list[Review]) -> list[Review]:
    """Marks reviews with no text to classify (empty or whitespace only) as errors."""
    return [
        Review(review.source, error="empty review: there is nothing to classify")
        if review.text is not None and not review.text.strip()
        else review
        for review in reviews
    ]


def predictions_table(texts: list[str], predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per review: a preview of its text, then each model's probability and label."""
    table = pd.DataFrame({"review": [_preview(text) for text in texts]})
    for name, prediction in predictions.items():
        table[name] = [
            f"{probability:.3f} {label}"
            for probability, label in zip(
                prediction["probability"], prediction["label"], strict=True
            )
        ]
    return table


def _preview(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _PREVIEW_CHARACTERS else text[: _PREVIEW_CHARACTERS - 1] + "…"


def _parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m imdb_sentiment.predict",
        description="Classify movie reviews with the pipeline's trained models.",
    )
    parser.add_argument("reviews", nargs="*", help="review texts (or use --file)")
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="a model of params.yaml's models (repeatable; default: all trained)",
    )
    parser.add_argument(
        "--file",
        help="one review a line, or JSON lines if it ends in .jsonl; - reads standard input",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="the seed of the networks to use (default: each model's first in params.yaml's "
        "networks)",
    )
    parser.add_argument("--jsonl", action="store_true", help="read --file as JSON lines")
    parser.add_argument("--json", action="store_true", help="write JSON lines")
    arguments = parser.parse_args(argv)
    if bool(arguments.reviews) == bool(arguments.file):
        parser.error("give review texts or --file, not both or neither")
    return arguments


def _read_reviews(arguments: argparse.Namespace) -> list[Review]:
    if not arguments.file:
        return [Review(f"argument {i}", text=text) for i, text in enumerate(arguments.reviews, 1)]
    jsonl = arguments.jsonl or arguments.file.endswith(".jsonl")
    if arguments.file == "-":
        return parse_lines(sys.stdin.buffer.read(), jsonl, "stdin")
    try:
        return parse_lines(Path(arguments.file).read_bytes(), jsonl, arguments.file)
    except OSError as error:
        raise StageError(f"cannot read {arguments.file}: {error.strerror}") from None


def _trained_models(
    project: paths.ProjectFiles, requested: list[str] | None, seed: int | None
) -> dict[str, Path]:
    """The model file of every requested model (default: every trained one), by name."""
    params = load_params(project.params_file)
    if seed is not None and not any(seed in params.seeds(name) for name in params.models):
        raise StageError(f"--seed {seed}: no network of params.yaml's networks has this seed")
    seeds = {
        name: seed if seed is not None else params.seeds(name)[0]
        for name in params.models
        if seed is None or seed in params.seeds(name)
    }
    model_files = {name: project.model_file(name, seeds[name]) for name in seeds}
    trained = [name for name, file in model_files.items() if file.is_file()]
    for name in requested or []:
        if name not in trained:
            why = (
                "is not in params.yaml's models"
                if name not in params.models
                else f"has no network with seed {seed} in params.yaml's networks"
                if name not in model_files
                else f"is not trained with seed {seeds[name]} yet"
            )
            raise StageError(
                f"model {name!r} {why}; trained models: {', '.join(trained) or 'none'} "
                "(run `dvc repro` to train the models of params.yaml)"
            )
    if not trained:
        raise StageError("no model trained yet: run `make run` (or `dvc repro`) first")
    return {name: model_files[name] for name in requested or trained}


def main(argv: list[str]) -> None:
    arguments = _parse_arguments(argv)
    project = paths.this_project()
    reviews = check_texts(_read_reviews(arguments))
    if not reviews:
        source = "standard input" if arguments.file == "-" else arguments.file
        raise StageError(
            f"{source} has no reviews: there is nothing to classify (one review a line, "
            'or JSON lines with a "text" key)'
        )
    model_files = _trained_models(project, arguments.models, arguments.seed)
    for review in reviews:
        if review.error:
            logger.error("%s: %s", review.source, review.error)
    good = [review for review in reviews if review.error is None]
    if good:
        from imdb_sentiment.classifier import ReviewClassifier
        from imdb_sentiment.modeling import ModelFileError

        import_tensorflow()  # Seconds: only once there is something to classify.
        texts = pd.DataFrame({"text": [review.text for review in good]})
        predictions = {}
        for name, model_file in model_files.items():
            try:
                classifier = ReviewClassifier.from_files(
                    model_file, project.vocabulary, project.encoding_settings
                )
            except ModelFileError as error:
                # One bad file does not keep the other models from answering.
                logger.error("%s", error)
                continue
            predictions[name] = classifier.predict(texts)
        if predictions:
            _write(good, predictions, arguments.json)
        if len(predictions) < len(model_files):
            unloaded = sorted(set(model_files) - set(predictions))
            raise StageError(f"model {', '.join(unloaded)} could not be loaded (above)")
    if len(good) < len(reviews):
        raise StageError(f"{len(reviews) - len(good)} of {len(reviews)} reviews not classified")


def _write(reviews: list[Review], predictions: dict[str, pd.DataFrame], as_json: bool) -> None:
    if not as_json:
        texts = [review.text for review in reviews if review.text is not None]
        table = predictions_table(texts, predictions)
        sys.stdout.write(table.to_string(index=False) + "\n")
        return
    for row, review in enumerate(reviews):
        record = {
            "source": review.source,
            "text": review.text,
            "predictions": {
                name: {"probability": float(p["probability"][row]), "label": p["label"][row]}
                for name, p in predictions.items()
            },
        }
        sys.stdout.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
