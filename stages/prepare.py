"""Stage 2: reviews in the archive to padded token-id arrays, split into train, validation, test.

    python -m stages.prepare

Reads data/raw/aclImdb.tar.gz; writes data/prepared/ (the three splits, the vocabulary and the
encoding settings) and reports/data/stats.json (counts, label balance, OOV rate, lengths).
"""

from __future__ import annotations

import logging

from imdb_sentiment import paths
from imdb_sentiment.cli import run_stage
from imdb_sentiment.dataset import prepare_splits, read_archive, save_split
from imdb_sentiment.files import write_json
from imdb_sentiment.params import load_params
from imdb_sentiment.text import save_encoder

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    project = paths.this_project()
    params = load_params(project.params_file).data
    raw_splits, archive_counts = read_archive(project.archive)
    logger.info(
        "Read %d train and %d test reviews from %s",
        len(raw_splits["train"].texts),
        len(raw_splits["test"].texts),
        project.archive.name,
    )
    splits, encoder, stats = prepare_splits(raw_splits, params)
    for name, path in (
        ("train", project.train_split),
        ("val", project.validation_split),
        ("test", project.test_split),
    ):
        save_split(path, splits[name])
        logger.info("Wrote %s: %s reviews of %d tokens", path.name, *splits[name].reviews.shape)
    save_encoder(encoder, project.vocabulary, project.encoding_settings)
    write_json(project.data_stats, {**stats, "archive": archive_counts})


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
