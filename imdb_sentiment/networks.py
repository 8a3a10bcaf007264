"""params.yaml's networks: which seeds each model is trained with, and writing them.

    python -m imdb_sentiment.networks 5      # every model: the first five seeds of SEED_ORDER

Seeds are taken in one order for every model (42, then 1, 2, 3, ...), so that a model's n seeds
are the first n of that order and a settle's "next unused seed" is the same for every model.
params.yaml is rewritten in place, its comments and layout kept (ruamel.yaml, as DVC edits it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from imdb_sentiment import paths
from imdb_sentiment.cli import run_stage
from imdb_sentiment.errors import StageError
from imdb_sentiment.params import Params, load_params

logger = logging.getLogger(__name__)


def seed_order() -> Iterator[int]:
    """42 (the notebook's), then 1, 2, 3, ..."""
    yield 42
    seed = 1
    while True:
        if seed != 42:
            yield seed
        seed += 1


def model_order(params: Params) -> list[str]:
    """The models in the order their networks come in params.yaml, then any model without one.

    That order is the stages' (dvc.yaml's foreach follows it) and it is kept when the networks
    are rewritten: params.yaml lists the longest trainings first (GRU, then LSTM), so that the
    two workers of `make run` end together instead of one idling while the last GRU trains
    (fresh clone, 2 cores: 192.6 s against 208.6 s in the models' own order)."""
    listed = list(dict.fromkeys(network.model for network in params.networks.values()))
    return listed + [name for name in params.models if name not in listed]


def with_seeds(params: Params, counts: dict[str, int]) -> dict[str, list[int]]:
    """Each model's seeds, grown to ``counts[model]`` (where it asks for more) with the next
    seeds of :func:`seed_order` the model has not used; the others as they are."""
    seeds = {name: params.seeds(name) for name in model_order(params)}
    for name, count in counts.items():
        order = seed_order()
        while len(seeds[name]) < count:
            seed = next(order)
            if seed not in seeds[name]:
                seeds[name].append(seed)
    return seeds


def write(params_file: Path, seeds: dict[str, list[int]]) -> None:
    """Rewrites params.yaml's networks to ``seeds`` (models in its order, each model's seeds in
    order), keeping the rest of the file as it is; the file is replaced whole or not at all."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 100
    document = yaml.load(params_file)
    networks = CommentedMap()
    for name, of_model in seeds.items():
        for seed in of_model:
            entry = CommentedMap(model=name, seed=seed)
            entry.fa.set_flow_style()
            networks[f"{name}-{seed}"] = entry
    document["networks"] = networks
    partial = params_file.with_name(f".{params_file.name}.partial")
    with open(partial, "w") as stream:
        yaml.dump(document, stream)
    partial.replace(params_file)


def main(argv: list[str]) -> None:
    if len(argv) != 1 or not argv[0].isdigit() or int(argv[0]) < 1:
        raise StageError("usage: python -m imdb_sentiment.networks <seeds per model, 1 or more>")
    project = paths.this_project()
    params = load_params(project.params_file)
    order = seed_order()
    chosen = [next(order) for _ in range(int(argv[0]))]
    write(project.params_file, {name: chosen for name in model_order(params)})
    logger.info("params.yaml's networks: every model with seeds %s", ", ".join(map(str, chosen)))


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
