"""What the pipeline will write, estimated from params before the download; and a full disk
recognised wherever it is met."""

import errno

import pytest
from sqlalchemy.exc import OperationalError

from imdb_sentiment import disk
from imdb_sentiment.modeling import build_model
from imdb_sentiment.params import load_params, parse_params
from imdb_sentiment.paths import this_project
from tests.conftest import networks, tiny_params


@pytest.mark.parametrize("cell", ["simplernn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_weight_count_is_the_models_own(cell, bidirectional):
    raw = tiny_params()
    raw["train"]["bidirectional"] = bidirectional
    params = parse_params(raw)
    model = build_model(params.model(cell), params.data.num_words, params.data.maxlen)
    assert disk.model_weights(params, cell) == model.count_params()


def test_what_a_run_writes_scales_with_its_params():
    tiny = parse_params(tiny_params())
    real = load_params(this_project().params_file)
    # The tiny project: an archive of 40 kB, models of a few thousand weights.
    assert disk.bytes_after_download(tiny, 40_000) < 40 * disk.MB
    # The real archive (28.6 MB) and three models of about a million weights: 100-400 MB.
    one_seed = disk.bytes_after_download(real, 28_570_663)
    assert 100 * disk.MB < one_seed < 400 * disk.MB
    raw = real.model_dump()
    raw["networks"] = networks(raw["models"], [1, 2, 3, 4, 5])
    five_seeds = disk.bytes_after_download(parse_params(raw), 28_570_663)
    assert five_seeds > one_seed + 4 * 3 * 3 * 10 * disk.MB  # Each model file kept 3 times.


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (
            OperationalError("INSERT", {}, Exception("database or disk is full")),
            True,
        ),
        (OperationalError("SELECT", {}, Exception("database is locked")), False),
        (ValueError("3 is not 4"), False),
    ],
)
def test_a_full_disk_is_recognised_also_inside_other_errors(error, full):
    assert disk.is_disk_full(error) == full
    try:
        try:
            raise error
        except Exception as inner:
            raise RuntimeError("MLflow failed") from inner
    except RuntimeError as outer:
        assert disk.is_disk_full(outer) == full


def test_the_message_names_the_file_what_was_needed_and_what_to_free(tmp_path):
    error = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "model.keras"))
    message = str(disk.disk_full_from(error))
    assert message.startswith(f"no space left on the disk of {tmp_path / 'model.keras'}: ")
    assert "MB are free; free space there (`dvc gc --workspace`" in message
    needed = str(disk.disk_full(tmp_path / "x.csv", needed_bytes=2_500_000))
    assert ": about 2.5 MB more were needed, " in needed
