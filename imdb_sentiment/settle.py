"""`make settle`: adds seeds, look after look, until every pair of models is decided.

    python -m imdb_sentiment.settle

Sets ``settle.design: sequential`` in params.yaml, then repeats: runs the pipeline as
`make run` does (dask_repro: the new networks' stages side by side, then `dvc repro`, whose
report replays the looks), replays the looks here on the same results (sequential.py), and
gives each model of a pair still open the seeds of the next look (the next unused ones, in
params.yaml's networks). It stops when every pair is different, equivalent, or open at
``settle.max_seeds``. params.yaml is the whole state: after Ctrl-C, `make settle` runs the
stages a look still lacks and goes on from there.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from imdb_sentiment import comparison, networks, pairs, paths, sequential
from imdb_sentiment.cli import run_stage
from imdb_sentiment.errors import StageError
from imdb_sentiment.params import load_params
from imdb_sentiment.verdicts import sequential_sentence

logger = logging.getLogger(__name__)

# How `make run` runs the pipeline; the variables it passes on to every stage.
RUN = [sys.executable, "-m", "dask_repro", "--env", "MLFLOW_TRACKING_URI", "--env", "LOG_LEVEL"]


def _design_sequential(project: paths.ProjectFiles) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 100
    document = yaml.load(project.params_file)
    if document["settle"]["design"] == "sequential":
        return
    document["settle"]["design"] = "sequential"
    partial = project.params_file.with_name(f".{project.params_file.name}.partial")
    with open(partial, "w") as stream:
        yaml.dump(document, stream)
    partial.replace(project.params_file)
    logger.info("params.yaml: settle.design is now sequential")


def _run_pipeline(project: paths.ProjectFiles) -> None:
    runner = subprocess.Popen(RUN, cwd=project.root, env=os.environ)
    try:
        status = runner.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached the runner too: it stops its stages and cleans up, then exits.
        runner.wait()
        raise
    if status == 130:
        raise KeyboardInterrupt
    if status != 0:
        raise StageError(f"the pipeline failed (exit {status}): see above; `make settle` "
                         "goes on from here once it is fixed")  # fmt: skip


def main(argv: list[str]) -> None:
    project = paths.this_project()
    _design_sequential(project)
    while True:
        _run_pipeline(project)
        params = load_params(project.params_file)
        design = pairs.design_of(params)
        assert design is not None
        seeds = {name: params.seeds(name) for name in params.models}
        labels, probabilities = comparison.read_probabilities(project, seeds)
        correct = comparison.correctness(labels, probabilities, params.evaluate.threshold)
        states = sequential.settle(correct, design)
        for state in states:
            logger.info("%s", sequential_sentence(state, design))
        wanted = {
            name: count
            for name, count in sequential.seeds_wanted(states, design).items()
            if count > len(seeds[name])
        }
        if not wanted:
            counts = ", ".join(f"{name} {len(of)} seeds" for name, of in seeds.items())
            logger.info("Settled, with %s: every pair closed or at the cap", counts)
            return
        networks.write(project.params_file, networks.with_seeds(params, wanted))
        added = ", ".join(f"{name} to {count} seeds" for name, count in wanted.items())
        logger.info("Next look: %s", added)


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
