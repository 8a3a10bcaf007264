"""Stage 1: fetch the IMDB archive and verify its checksum.

    python -m stages.download

The archive comes from ``data.local_copy`` when that file exists (offline machines), else from
``data.url``, which may be an http(s) URL, a ``file://`` URL or a local path.
"""

from __future__ import annotations

import logging

from imdb_sentiment import paths
from imdb_sentiment.cli import run_stage
from imdb_sentiment.disk import bytes_after_download
from imdb_sentiment.fetch import as_url, fetch, local_path
from imdb_sentiment.params import load_params

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    project = paths.this_project()
    all_params = load_params(project.params_file)
    params = all_params.data

    def after(archive_bytes: int) -> int:
        return bytes_after_download(all_params, archive_bytes)

    # A relative path starts at the user's project, also from a `dvc exp run --queue` copy.
    base = project.users_project
    local_copy = params.local_copy and local_path(params.local_copy, base)
    if local_copy and local_copy.is_file():
        logger.info("Using the local copy %s instead of downloading %s", local_copy, params.url)
        fetch(local_copy.as_uri(), project.archive, params.local_copy_sha256, bytes_after=after)
    else:
        if local_copy:
            logger.info("No local copy at %s; downloading %s", local_copy, params.url)
        fetch(as_url(params.url, base), project.archive, params.sha256, bytes_after=after)
    logger.info("Wrote %s (sha256 verified)", project.archive.relative_to(project.root))


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
