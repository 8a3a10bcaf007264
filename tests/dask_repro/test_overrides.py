"""-S key=value, as dvc exp run takes it: the params file keeps its comments."""

from pathlib import Path

import pytest

from dask_repro import overrides

PARAMS = """\
# The models.
train:
  seeds: [42, 1]  # two seeds
  units: 64
"""


def test_an_override_sets_a_yaml_value_and_keeps_the_comments(tmp_path: Path):
    (tmp_path / "params.yaml").write_text(PARAMS)
    overrides.apply(tmp_path, ["train.seeds=[42,1,2]", "train.units=128"])
    text = (tmp_path / "params.yaml").read_text()
    assert "# The models." in text and "# two seeds" in text
    assert "seeds: [42, 1, 2]" in text and "units: 128" in text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.unit=3", "params.yaml has no key train.unit"),
        ("nope.units=3", "params.yaml has no key nope"),
        ("train.units", "expected [file:]key=value"),
        ("train.units=[1,", "the value is not YAML"),
        ("other.yaml:train.units=3", "cannot read other.yaml"),
    ],
)
def test_a_bad_override_is_named_and_changes_nothing(tmp_path: Path, override, message):
    (tmp_path / "params.yaml").write_text(PARAMS)
    with pytest.raises(overrides.OverrideError, match=message.replace("[", r"\[")):
        overrides.apply(tmp_path, ["train.units=1", override])
    assert (tmp_path / "params.yaml").read_text() == PARAMS
