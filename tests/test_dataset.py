import tarfile

import numpy as np
import pytest

from imdb_sentiment.dataset import RawSplit, prepare_splits, read_archive, split_validation
from imdb_sentiment.errors import StageError
from imdb_sentiment.params import parse_params
from imdb_sentiment.text import load_encoder, save_encoder, tokenize
from tests.conftest import REAL_ARCHIVE, tiny_params, write_archive


@pytest.fixture
def data_params():
    params = parse_params(tiny_params()).data
    return params.model_copy(update={"num_words": 50, "maxlen": 12, "val_fraction": 0.25})


def test_read_archive_reads_labeled_reviews_and_skips_unlabeled_ones(tiny_archive):
    splits, counts = read_archive(tiny_archive[0])
    assert counts == {
        "reviews_not_utf8": 0,
        "empty_reviews_skipped": 0,
        "unsafe_members_skipped": 0,
    }
    assert sorted(splits) == ["test", "train"]
    for split in splits.values():
        assert len(split.texts) == len(split.ids) == 120
        assert split.labels.sum() == 60
    assert all("unsup" not in review_id for review_id in splits["train"].ids)
    # A review's label is its folder's: 1 positive, 0 negative, kept small.
    for split in splits.values():
        assert split.labels.dtype == np.int8
        assert [int(review_id.split("/")[1] == "pos") for review_id in split.ids] == list(
            split.labels
        )
    assert splits["train"].ids[0].startswith("train/neg/")


def test_read_archive_without_a_test_split_says_what_is_missing(tmp_path):
    archive = tmp_path / "no_test.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(__file__, arcname="aclImdb/train/pos/0_9.txt")
    with pytest.raises(StageError) as raised:
        read_archive(archive)
    assert str(raised.value) == (
        f"{archive} has no reviews in aclImdb/train/neg/, aclImdb/test/pos/, aclImdb/test/neg/: "
        "is it the IMDB archive? Check data.url and data.sha256 (or data.local_copy) in "
        "params.yaml."
    )


def test_validation_split_is_stratified_and_seeded():
    labels = np.array([0] * 80 + [1] * 20)
    train, val = split_validation(labels, 0.3, seed=1)
    assert len(val) == 30 and len(set(train) | set(val)) == 100
    assert labels[val].sum() == 6  # The 20% positive share of the whole.
    np.testing.assert_array_equal(val, split_validation(labels, 0.3, seed=1)[1])
    assert set(val) != set(split_validation(labels, 0.3, seed=2)[1])


def test_prepare_builds_the_vocabulary_from_training_reviews_only(data_params):
    raw = {
        "train": RawSplit(
            ids=[f"train/x/{i}" for i in range(8)],
            texts=["good film"] * 4 + ["bad film"] * 3 + ["validationword"],
            labels=np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=np.int8),
        ),
        "test": RawSplit(
            ["test/pos/0", "test/neg/0"], ["testword good", "bad"], np.array([1, 0], dtype=np.int8)
        ),
    }
    splits, encoder, stats = prepare_splits(raw, data_params)
    vocabulary = encoder.vocabulary
    assert "testword" not in vocabulary
    val_words = {
        word
        for i in splits["val"].ids
        for word in tokenize(raw["train"].texts[int(i.rsplit("/", 1)[1])])
    }
    train_only_vocabulary = set(vocabulary) - {"", "[UNK]"}
    assert not (val_words - {"good", "bad", "film"}) & train_only_vocabulary
    assert [len(splits[name].labels) for name in ("train", "val", "test")] == [6, 2, 2]
    assert splits["test"].reviews.shape == (2, 12)
    assert stats["test"]["out_of_vocabulary_rate"] == 0.3333  # "testword" of 3 tokens.


def test_prepare_pads_every_split_to_maxlen_and_reports_truncation(tiny_archive, data_params):
    data_params = data_params.model_copy(update={"num_words": 10})
    splits, encoder, stats = prepare_splits(read_archive(tiny_archive[0])[0], data_params)
    assert len(encoder.vocabulary) == 10
    for name, split in splits.items():
        assert split.reviews.shape == (len(split.labels), 12)
        assert split.reviews.dtype == np.int32
        assert split.reviews.max() == 9
        assert 0 < stats[name]["truncated_share"] <= 1
    assert stats["train"]["positive_share"] == stats["val"]["positive_share"] == 0.5


@pytest.mark.real_data
@pytest.mark.skipif(not REAL_ARCHIVE.is_file(), reason=f"{REAL_ARCHIVE} is not on this machine")
def test_real_archive_has_25000_balanced_reviews_per_split():
    splits, counts = read_archive(REAL_ARCHIVE)
    assert counts == dict.fromkeys(counts, 0)
    for split in splits.values():
        assert len(split.texts) == 25_000
        assert split.labels.sum() == 12_500


def test_a_review_encoded_at_predict_time_equals_its_prepared_encoding(
    tiny_archive, data_params, tmp_path
):
    raw, _ = read_archive(tiny_archive[0])
    splits, encoder, _ = prepare_splits(raw, data_params)
    save_encoder(encoder, tmp_path / "vocabulary.txt", tmp_path / "encoding.json")
    reloaded = load_encoder(tmp_path / "vocabulary.txt", tmp_path / "encoding.json")
    texts_by_id = {
        review_id: text
        for split in raw.values()
        for review_id, text in zip(split.ids, split.texts, strict=True)
    }
    for name in ("val", "test"):
        texts = [texts_by_id[review_id] for review_id in splits[name].ids]
        np.testing.assert_array_equal(reloaded.encode(texts), splits[name].reviews)


def test_a_file_that_is_not_a_gzipped_tar_is_a_clear_error(tmp_path):
    not_an_archive = tmp_path / "aclImdb.tar.gz"
    not_an_archive.write_text("<html>Service Unavailable</html>")
    with pytest.raises(StageError) as raised:
        read_archive(not_an_archive)
    assert str(raised.value).startswith(f"{not_an_archive} is not a readable gzipped tar archive (")
    assert str(raised.value).endswith(
        "): it is corrupt, cut short or another kind of file. Delete it and run `dvc repro` to "
        "download it again."
    )


def test_an_archive_cut_short_is_a_clear_error(tiny_archive, tmp_path):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(tiny_archive[0].read_bytes()[:5000])
    with pytest.raises(StageError, match="is not a readable gzipped tar archive"):
        read_archive(cut)


def test_odd_members_are_counted_and_handled(tmp_path, caplog):
    archive = tmp_path / "odd.tar.gz"
    write_archive(
        archive,
        reviews_per_label=3,
        extra={
            "aclImdb/train/pos/100_9.txt": "  \n",
            "aclImdb/train/pos/103_9.txt": "",
            "aclImdb/train/neg/101_1.txt": b"caf\xe9 was awful",
            "aclImdb/train/neg/104_2.txt": b"na\xefve",
            "../../etc/evil.txt": "escape",
            "/etc/absolute.txt": "escape",
            "aclImdb/../../train/pos/102_8.txt": "escape",
        },
    )
    splits, counts = read_archive(archive)
    assert counts == {
        "reviews_not_utf8": 2,
        "empty_reviews_skipped": 2,
        "unsafe_members_skipped": 3,
    }
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "odd.tar.gz: 2 reviews not utf8",
        "odd.tar.gz: 2 empty reviews skipped",
        "odd.tar.gz: 3 unsafe members skipped",
    ]
    assert len(splits["train"].ids) == 8  # 6 ordinary reviews and the two not in UTF-8.
    not_utf8 = splits["train"].texts[splits["train"].ids.index("train/neg/101_1")]
    assert not_utf8 == "caf\ufffd was awful"


def test_each_splits_statistics_are_exact(data_params):
    params = data_params.model_copy(update={"maxlen": 3, "val_fraction": 0.5, "num_words": 4})
    raw = {
        "train": RawSplit(
            ids=[f"train/x/{i}" for i in range(4)],
            texts=["good good film", "good film", "bad bad film", "bad"],
            labels=np.array([1, 1, 0, 0], dtype=np.int8),
        ),
        # Lengths 4, 3 (exactly maxlen: not truncated) and 1; "plot" is not in the vocabulary.
        "test": RawSplit(
            ["test/pos/0", "test/pos/1", "test/neg/0"],
            ["good good film plot", "good film good", "bad"],
            np.array([1, 1, 0], dtype=np.int8),
        ),
    }
    splits, encoder, stats = prepare_splits(raw, params)
    assert [len(splits[name].labels) for name in ("train", "val")] == [2, 2]  # val_fraction 0.5
    assert stats["vocabulary_size"] == len(encoder.vocabulary) == 4
    known = set(encoder.vocabulary[2:])  # After padding and the unknown token.
    unknown = sum(word not in known for text in raw["test"].texts for word in tokenize(text))
    assert stats["test"] == {
        "reviews": 3,
        "positive_share": 0.6667,
        "out_of_vocabulary_rate": round(unknown / 8, 4),
        "truncated_share": 0.3333,
        "length": {"p50": 3, "p90": 3, "p95": 3, "p99": 3, "max": 4},
    }
    # Seeded: the same params pick the same validation reviews every time.
    again, _, _ = prepare_splits(raw, params)
    assert list(again["val"].ids) == list(splits["val"].ids)


def test_statistics_of_a_split_with_no_tokens_are_defined(data_params):
    texts = ["good", "bad"] * 4
    raw = {
        "train": RawSplit([f"train/x/{i}" for i in range(8)], texts, np.array([1, 0] * 4, np.int8)),
        "test": RawSplit(["test/pos/0", "test/neg/0"], ["", ""], np.array([1, 0], np.int8)),
    }
    stats = prepare_splits(raw, data_params)[2]["test"]
    assert stats["out_of_vocabulary_rate"] == 0.0 and stats["length"]["max"] == 0


def test_a_saved_split_loads_as_it_was(tmp_path):
    from imdb_sentiment.dataset import EncodedSplit, load_split, save_split

    split = EncodedSplit(
        ids=np.array(["test/pos/0", "test/neg/1"]),
        reviews=np.array([[0, 5, 6], [7, 8, 1]], dtype=np.int32),
        labels=np.array([1, 0], dtype=np.int8),
    )
    save_split(tmp_path / "test.npz", split)
    loaded = load_split(tmp_path / "test.npz")
    for name in ("ids", "reviews", "labels"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(split, name))
        assert getattr(loaded, name).dtype == getattr(split, name).dtype
    assert not list(tmp_path.glob(".*"))  # Nothing half-written left beside it.
