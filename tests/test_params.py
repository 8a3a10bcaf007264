import copy
import shlex

import pytest
import yaml

from imdb_sentiment.params import ParamsError, load_params, parse_params
from imdb_sentiment.paths import this_project
from tests.conftest import networks, tiny_params

PARAMS_FILE = this_project().params_file


@pytest.fixture
def raw_params() -> dict:
    return tiny_params()


def problems_of(raw: dict) -> str:
    with pytest.raises(ParamsError) as error:
        parse_params(raw)
    return str(error.value)


def test_the_projects_params_file_is_valid():
    # Whatever values a user chose: only that they pass validation.
    params = load_params(PARAMS_FILE)
    assert params.models
    for name in params.models:
        assert params.model(name).name == name


def test_a_model_entry_overrides_the_train_defaults(raw_params):
    raw_params["models"]["gru128"] = {"cell": "gru", "units": 128, "epochs": 3}
    raw_params["networks"]["gru128-42"] = {"model": "gru128", "seed": 42}
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
    raw["train"]["recurrent_implementation"] = "projected"
    raw["networks"]["lstm-7"] = {"model": "lstm", "seed": 8}
    raw["networks"]["cnn-1"] = {"model": "cnn", "seed": 1}
    del raw["networks"]["simplernn-42"]
    raw["settle"]["seeds_per_look"] = 2
    raw["models"]["lstm"]["seeds"] = [1]
    message = problems_of(raw)
    assert "models.lstm.units: Input should be greater than 0 (got 0)" in message
    assert "data.maxlen: Input should be greater than 0 (got -1)" in message
    assert "data.val_fraction: Input should be less than 1 (got 1.5)" in message
    assert "models.gru.cell: Input should be 'simplernn', 'lstm' or 'gru'" in message
    assert "train.learning_rat: unknown key" in message
    assert "train.recurrent_implementation: Input should be 'fused' or 'keras'" in message
    assert "settle.seeds_per_look: Input should be greater than or equal to 3 (got 2)" in message
    assert "models.lstm.seeds: unknown key" in message  # A model's seeds are its networks.


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
    raw_params["networks"]["My GRU-1"] = {"model": "My GRU", "seed": 1}
    assert "models.My GRU: model names must match" in problems_of(raw_params)


def test_a_model_is_trained_with_each_of_its_seeds_and_the_first_by_default(raw_params):
    raw_params["networks"] = networks(raw_params["models"], [5, 6])
    params = parse_params(raw_params)
    assert [params.model("gru", seed).seed for seed in (5, 6)] == [5, 6]
    assert params.model("gru").seed == 5
    with pytest.raises(ParamsError, match=r"networks: gru-7 is not one of the networks"):
        params.model("gru", 7)


def test_asking_for_an_unknown_model_names_the_known_ones(raw_params):
    with pytest.raises(ParamsError, match="models.bert: no such model.*simplernn, lstm, gru"):
        parse_params(raw_params).model("bert")


def test_a_file_that_is_not_yaml_is_a_clear_error(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def _make_variable(name: str) -> str:
    """A variable of the Makefile, its continuation lines joined."""
    makefile = (PARAMS_FILE.parent / "Makefile").read_text().replace("\\\n", " ")
    return next(
        line.split(":=", 1)[1] for line in makefile.splitlines() if line.startswith(f"{name} :=")
    )


def test_the_long_review_profile_is_valid_on_the_projects_params():
    # `make long-reviews` passes these -S values to dvc exp run: a misspelt key or a bad value
    # would fail there, after the user waited for it.
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    settings = shlex.split(_make_variable("LONG_REVIEWS"))  # as the shell splits them
    assert settings[::2] == ["-S"] * (len(settings) // 2)
    for setting in settings[1::2]:
        key, _, value = setting.partition("=")
        *sections, name = key.removeprefix("~").split(".")
        section = raw
        for part in sections:
            section = section[part]
        if key.startswith("~"):  # Hydra's deletion, as dvc exp run -S takes it.
            del section[name]
        else:
            section[name] = yaml.safe_load(value)
    # Valid on the project's params.yaml, and the profile's shared settings applied.
    params = parse_params(raw)
    assert params.train.bidirectional and params.train.pooling == "max"
    assert {name: params.seeds(name) for name in params.models} == {
        "simplernn": [42], "lstm": [42], "gru": [42]
    }  # fmt: skip


def test_a_model_entry_may_override_exactly_the_shared_hyperparameters():
    # Derived, not written twice: a new hyperparameter is overridable with no second edit.
    from imdb_sentiment.params import Hyperparameters, ModelOverrides

    assert set(ModelOverrides.model_fields) == {"cell", *Hyperparameters.model_fields}
    assert all(
        not field.is_required()
        for name, field in ModelOverrides.model_fields.items()
        if name != "cell"
    )


def test_a_model_may_override_a_shared_value_within_its_bounds():
    raw = tiny_params()
    raw["models"]["lstm"].update(units=16, dropout=0.25, pooling="max")
    lstm = parse_params(raw).model("lstm")
    assert (lstm.units, lstm.dropout, lstm.pooling) == (16, 0.25, "max")
    assert parse_params(raw).model("gru").units == 8  # The others keep the shared value.
    raw["models"]["lstm"].update(units=0, pooling="mean")
    with pytest.raises(ParamsError) as raised:
        parse_params(raw)
    assert "models.lstm.units: Input should be greater than 0 (got 0)" in str(raised.value)
    assert "models.lstm.pooling: Input should be 'last' or 'max'" in str(raised.value)


def test_a_per_model_stage_reads_its_model_and_seed_from_its_arguments():
    from imdb_sentiment.params import model_from_arguments

    params = parse_params(tiny_params())
    lstm = model_from_arguments(params, ["lstm", "42"], "python -m stages.train")
    assert (lstm.name, lstm.seed, lstm.cell) == ("lstm", 42, "lstm")
    usage = "usage: python -m stages.evaluate <model> <seed>, a network of params.yaml's networks"
    for argv in (["lstm"], ["lstm", "42", "x"], ["lstm", "forty-two"], []):
        with pytest.raises(ParamsError) as raised:
            model_from_arguments(params, argv, "python -m stages.evaluate")
        assert str(raised.value) == usage
    with pytest.raises(ParamsError, match=r"^networks: lstm--1 is not one of the networks"):
        model_from_arguments(params, ["lstm", "-1"], "python -m stages.train")


def test_a_missing_params_file_says_where_to_run_from(tmp_path):
    with pytest.raises(ParamsError) as raised:
        load_params(tmp_path / "params.yaml")
    assert (
        str(raised.value)
        == f"{tmp_path / 'params.yaml'} not found: run the pipeline from the project root"
    )


def test_networks_are_named_after_their_model_and_seed_and_every_model_has_one(raw_params):
    raw_params["networks"]["lstm-7"] = {"model": "lstm", "seed": 8}
    raw_params["networks"]["cnn-1"] = {"model": "cnn", "seed": 1}
    del raw_params["networks"]["simplernn-42"]
    message = problems_of(raw_params)
    assert "networks.lstm-7: must be named lstm-8, after its model and seed" in message
    assert "networks.cnn-1: its model must be one of models (simplernn, lstm, gru)" in message
    assert "networks: models.simplernn has no network" in message


def test_a_models_seeds_are_its_networks_in_order(raw_params):
    raw_params["networks"] = {
        "gru-3": {"model": "gru", "seed": 3},
        "lstm-42": {"model": "lstm", "seed": 42},
        "gru-1": {"model": "gru", "seed": 1},
        "simplernn-42": {"model": "simplernn", "seed": 42},
    }
    params = parse_params(raw_params)
    assert params.seeds("gru") == [3, 1]
    assert params.model("gru").seed == 3
    with pytest.raises(ParamsError, match="networks: gru-42 is not one of the networks"):
        params.model("gru", 42)
