"""params.yaml's networks: seeds added to some models keep the order the file lists the models'
networks in, which is the order the stages run in (the longest trainings first)."""

from pathlib import Path

import yaml

from imdb_sentiment import networks
from imdb_sentiment.params import parse_params
from tests.conftest import tiny_params


def test_added_seeds_keep_the_order_the_models_networks_are_listed_in(tmp_path: Path):
    raw = tiny_params()
    raw["networks"] = {
        "gru-42": {"model": "gru", "seed": 42},
        "lstm-42": {"model": "lstm", "seed": 42},
        "simplernn-42": {"model": "simplernn", "seed": 42},
    }
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    params = parse_params(raw)
    assert next(iter(params.models)) == "simplernn"  # models: lists them in another order

    networks.write(params_file, networks.with_seeds(params, {"simplernn": 2, "gru": 3}))

    written = yaml.safe_load(params_file.read_text())["networks"]
    assert list(written) == [
        "gru-42", "gru-1", "gru-2", "lstm-42", "simplernn-42", "simplernn-1",
    ]  # fmt: skip
