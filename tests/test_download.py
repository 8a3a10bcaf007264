import hashlib

import pytest

from stages.cli import StageError
from stages.download import as_url, fetch, local_path


def test_fetch_copies_a_local_file_url_when_its_checksum_matches(tiny_archive, tmp_path):
    archive, sha256 = tiny_archive
    destination = tmp_path / "out" / "aclImdb.tar.gz"
    fetch(archive.as_uri(), destination, sha256)
    assert hashlib.sha256(destination.read_bytes()).hexdigest() == sha256
    assert [path.name for path in destination.parent.iterdir()] == ["aclImdb.tar.gz"]


def test_a_checksum_mismatch_is_an_error_and_leaves_no_file(tiny_archive, tmp_path):
    archive, _ = tiny_archive
    destination = tmp_path / "out" / "aclImdb.tar.gz"
    with pytest.raises(StageError, match="has sha256 .* but params.yaml expects 0000"):
        fetch(archive.as_uri(), destination, "0" * 64)
    assert list(destination.parent.iterdir()) == []


def test_an_unreadable_url_says_how_to_work_offline_and_leaves_no_file(tmp_path):
    destination = tmp_path / "out" / "aclImdb.tar.gz"
    with pytest.raises(StageError, match="cannot download .*data.local_copy"):
        fetch((tmp_path / "missing.tar.gz").as_uri(), destination, "0" * 64)
    assert list(destination.parent.iterdir()) == []


def test_an_earlier_good_file_survives_a_failed_download(tiny_archive, tmp_path):
    archive, sha256 = tiny_archive
    destination = tmp_path / "aclImdb.tar.gz"
    fetch(archive.as_uri(), destination, sha256)
    with pytest.raises(StageError):
        fetch(archive.as_uri(), destination, "0" * 64)
    assert hashlib.sha256(destination.read_bytes()).hexdigest() == sha256


def test_paths_and_file_urls_name_the_same_file(tmp_path):
    assert local_path("data/a.tar.gz", tmp_path) == tmp_path / "data/a.tar.gz"
    assert local_path((tmp_path / "a b.tar.gz").as_uri(), tmp_path) == tmp_path / "a b.tar.gz"
    assert as_url("https://example.org/a.tar.gz", tmp_path) == "https://example.org/a.tar.gz"
    assert as_url("a.tar.gz", tmp_path) == (tmp_path / "a.tar.gz").as_uri()
