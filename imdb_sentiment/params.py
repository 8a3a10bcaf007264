"""Reads params.yaml once into frozen, validated objects.

Every problem in the file is reported at once, each by its key path (``models.lstm.units``),
so that a typo costs one run of a second, not one run per typo.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from imdb_sentiment.errors import StageError

Cell = Literal["simplernn", "lstm", "gru"]
CELL_TYPES: tuple[str, ...] = get_args(Cell)
MODEL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

PositiveInt = Annotated[int, Field(gt=0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


class ParamsError(StageError):
    """params.yaml has problems; the message lists each one by its key path."""


class _Section(BaseModel):
    # Strict: "64" is not 64, and 1 is not True. Unknown keys are typos, not extensions.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class MlflowParams(_Section):
    experiment_name: Annotated[str, Field(min_length=1)]


class DataParams(_Section):
    url: Annotated[str, Field(min_length=1)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    local_copy: str | None = None
    local_copy_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    drop_stop_words: bool
    num_words: Annotated[int, Field(ge=3)]
    maxlen: PositiveInt
    padding: Literal["pre", "post"]
    truncating: Literal["pre", "post"]
    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)]
    seed: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _local_copy_has_checksum(self) -> DataParams:
        if self.local_copy and not self.local_copy_sha256:
            raise ValueError("local_copy_sha256 is required when local_copy is set")
        return self


Seed = Annotated[int, Field(ge=0)]


class Hyperparameters(_Section):
    """How a model is built and trained: the train section's values, or a model's own."""

    embedding_dim: PositiveInt
    layers: PositiveInt
    units: PositiveInt
    dropout: Probability
    dense_units: PositiveInt
    dense_dropout: Probability
    batch_size: PositiveInt
    epochs: PositiveInt
    learning_rate: Annotated[float, Field(gt=0.0)]
    early_stopping_patience: PositiveInt
    recurrent_implementation: Literal["fused", "keras"]
    bidirectional: bool
    pooling: Literal["last", "max"]
    steps_per_execution: PositiveInt
    distribution: Literal["none", "mirrored", "multi_worker"]
    op_determinism: bool


class TrainParams(Hyperparameters):
    """The train section: the hyperparameters every model shares unless it overrides them."""


class NetworkParams(_Section):
    """A ``networks.<model>-<seed>`` entry: one training (and evaluation) of a model."""

    model: str
    seed: Seed


def _optional(field: FieldInfo) -> tuple[Any, None]:
    """A hyperparameter's type and constraints, made optional: a model may leave it out."""
    constrained: Any = field.annotation
    if field.metadata:
        constrained = Annotated[constrained, *field.metadata]
    return constrained | None, None


# A ``models.<name>`` entry: its cell type and any train defaults it changes. Derived from
# Hyperparameters, so that a new hyperparameter is written once.
if TYPE_CHECKING:  # Type checkers cannot follow create_model: to them, an entry is a section.
    ModelOverrides = _Section
else:
    ModelOverrides = create_model(
        "ModelOverrides",
        __base__=_Section,
        __doc__="A ``models.<name>`` entry: its cell type and any train defaults it changes.",
        cell=(Cell, ...),
        **{name: _optional(field) for name, field in Hyperparameters.model_fields.items()},
    )


class ModelParams(Hyperparameters):
    """One training: a named model's effective hyperparameters (train defaults plus its
    overrides), and the seed of its initialization, dropout and shuffling."""

    name: str
    cell: Cell
    seed: Seed


class EvaluateParams(_Section):
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)]


class SettleParams(_Section):
    """How the report tests pairs of models, and how `make settle` adds seeds
    (imdb_sentiment/sequential.py)."""

    design: Literal["fixed", "sequential"]
    # Three seeds at a look at least: fewer give no interval about a recipe.
    seeds_per_look: Annotated[int, Field(ge=3)]
    max_seeds: Annotated[int, Field(ge=3)]

    @model_validator(mode="after")
    def _cap_holds_a_look(self) -> SettleParams:
        if self.max_seeds < self.seeds_per_look:
            raise ValueError("max_seeds must be at least seeds_per_look")
        return self


class ReportParams(_Section):
    registered_model_name: Annotated[str, Field(min_length=1)]
    # Differences in accuracy, in [0, 1]: 0.005 is half a point.
    equivalence_margin: Annotated[float, Field(gt=0.0, lt=1.0)]
    planning_seed_sd: Annotated[float, Field(gt=0.0, lt=1.0)]


class Params(_Section):
    mlflow: MlflowParams
    data: DataParams
    train: TrainParams
    models: dict[str, ModelOverrides]
    networks: dict[str, NetworkParams]
    evaluate: EvaluateParams
    report: ReportParams
    settle: SettleParams

    def seeds(self, name: str) -> list[int]:
        """The seeds ``models.<name>`` is trained with, in ``networks``' order."""
        return [network.seed for network in self.networks.values() if network.model == name]

    def model(self, name: str, seed: int | None = None) -> ModelParams:
        """The effective hyperparameters of ``models.<name>``, trained with ``seed`` (by default
        the model's first seed in ``networks``)."""
        if name not in self.models:
            raise ParamsError(
                f"models.{name}: no such model in params.yaml; "
                f"the models are: {', '.join(self.models)}"
            )
        seeds = self.seeds(name)
        if seed is None and not seeds:
            raise ParamsError(f"networks: models.{name} has no network in params.yaml")
        if seed is None:
            seed = seeds[0]
        elif seed not in seeds:
            raise ParamsError(
                f"networks: {name}-{seed} is not one of the networks in params.yaml ({name}'s "
                f"seeds: {', '.join(map(str, seeds))})"
            )
        shared = self.train.model_dump()
        overrides = self.models[name].model_dump(exclude_none=True)
        return ModelParams(name=name, seed=seed, **{**shared, **overrides})


def model_from_arguments(params: Params, argv: list[str], command: str) -> ModelParams:
    """The model and seed a per-model stage was started for (``<name> <seed>``). Read after
    params.yaml is validated, so that a problem in the file is reported by its key first."""
    try:
        name, seed = argv
        seed_number = int(seed)
    except ValueError:
        raise ParamsError(
            f"usage: {command} <model> <seed>, a network of params.yaml's networks"
        ) from None
    return params.model(name, seed_number)


def _network_problems(params: Params) -> list[str]:
    """Each network named ``<model>-<seed>`` after a model of ``models``; each model trained."""
    problems = [
        f"networks.{name}: its model must be one of models ({', '.join(params.models)})"
        for name, network in params.networks.items()
        if network.model not in params.models
    ]
    problems += [
        f"networks.{name}: must be named {network.model}-{network.seed}, after its model and "
        "seed (it names the network's DVC stages)"
        for name, network in params.networks.items()
        if name != f"{network.model}-{network.seed}"
    ]
    problems += [
        f"networks: models.{name} has no network; add {name}-42: {{model: {name}, seed: 42}}"
        for name in params.models
        if not params.seeds(name)
    ]
    return problems


def _format_error(error: ErrorDetails) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check its spelling; see params.yaml's comments)"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    return f"{key}: {error['msg']} (got {error['input']!r})"


def parse_params(raw: Any) -> Params:
    """Validates the contents of params.yaml.

    Args:
        raw: The parsed YAML document.

    Returns:
        The validated, frozen params.

    Raises:
        ParamsError: Listing every problem found, one per line, each by its key path.
    """
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml must be a mapping of sections, got {type(raw).__name__}")
    problems: list[str] = []
    params: Params | None
    try:
        params = Params.model_validate(raw)
    except ValidationError as error:
        problems = [_format_error(detail) for detail in error.errors()]
        params = None
    models = raw.get("models")
    if isinstance(models, dict):
        if not models:
            problems.append("models: at least one model is needed")
        problems += [
            f"models.{name}: model names must match {MODEL_NAME_PATTERN.pattern} "
            "(they name DVC stages and folders)"
            for name in models
            if not MODEL_NAME_PATTERN.match(str(name))
        ]
    if params is not None:
        problems += _network_problems(params)
        problems += [
            f"models.{name}: distribution multi_worker needs steps_per_execution 1 (got "
            f"{model.steps_per_execution}); Keras' multi-step loop fails across workers. Set "
            "train.steps_per_execution: 1"
            for name in params.models
            if params.seeds(name)
            and (model := params.model(name)).distribution == "multi_worker"
            and model.steps_per_execution != 1
        ]
    if problems or params is None:
        raise ParamsError("params.yaml has problems:\n  " + "\n  ".join(problems))
    return params


def load_params(path: Path) -> Params:
    """Reads and validates a params file; see :func:`parse_params`."""
    try:
        with open(path, encoding="utf-8") as file:
            raw = yaml.safe_load(file)
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run the pipeline from the project root") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None
    return parse_params(raw)
