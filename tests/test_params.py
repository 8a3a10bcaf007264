import copy

import pytest
import yaml

from stages.params import ParamsError, load_params, parse_params
from stages.paths import PARAMS_FILE


@pytest.fixture
def raw_params() -> dict:
    with open(PARAMS_FILE, encoding="utf-8") as file:
        return yaml.safe_load(file)


def problems_of(raw: dict) -> str:
    with pytest.raises(ParamsError) as error:
        parse_params(raw)
    return str(error.value)


def test_the_projects_params_file_is_valid_and_has_the_seed_recipe():
    params = load_params(PARAMS_FILE)
    assert params.data.maxlen == 80
    assert params.data.num_words == 10000
    assert [params.model(name).units for name in ("simplernn", "lstm", "gru")] == [64, 32, 64]
    assert params.model("lstm").batch_size == 128


def test_a_model_entry_overrides_the_train_defaults(raw_params):
    raw_params["models"]["gru128"] = {"cell": "gru", "units": 128, "epochs": 3}
    params = parse_params(raw_params)
    gru128 = params.model("gru128")
    assert (gru128.cell, gru128.units, gru128.epochs) == ("gru", 128, 3)
    assert gru128.dropout == params.train.dropout


def test_every_problem_is_reported_at_once_by_key_path(raw_params):
    raw = copy.deepcopy(raw_params)
    raw["models"]["lstm"]["units"] = 0
    raw["data"]["maxlen"] = -1
    raw["data"]["val_fraction"] = 1.5
    raw["models"]["gru"]["cell"] = "transformer"
    raw["train"]["learning_rat"] = 0.01
    message = problems_of(raw)
    assert "models.lstm.units: Input should be greater than 0 (got 0)" in message
    assert "data.maxlen: Input should be greater than 0 (got -1)" in message
    assert "data.val_fraction: Input should be less than 1 (got 1.5)" in message
    assert "models.gru.cell: Input should be 'simplernn', 'lstm' or 'gru'" in message
    assert "train.learning_rat: unknown key" in message


def test_wrong_types_are_errors_not_coerced(raw_params):
    raw_params["train"]["batch_size"] = "128"
    raw_params["data"]["padding"] = True
    message = problems_of(raw_params)
    assert "train.batch_size: Input should be a valid integer (got '128')" in message
    assert "data.padding:" in message


def test_missing_keys_and_sections_are_named(raw_params):
    del raw_params["train"]["epochs"]
    del raw_params["evaluate"]
    message = problems_of(raw_params)
    assert "train.epochs: required key is missing" in message
    assert "evaluate: required key is missing" in message


def test_model_names_must_be_usable_as_stage_and_folder_names(raw_params):
    raw_params["models"]["My GRU"] = {"cell": "gru"}
    assert "models.My GRU: model names must match" in problems_of(raw_params)


def test_asking_for_an_unknown_model_names_the_known_ones():
    with pytest.raises(ParamsError, match="models.bert: no such model.*simplernn, lstm, gru"):
        load_params(PARAMS_FILE).model("bert")


def test_a_file_that_is_not_yaml_is_a_clear_error(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
