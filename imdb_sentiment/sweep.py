"""One param swept over values, as MLflow recorded it: each model's validation and test
accuracy and training time at each value, as a table and a figure.

    for n in 80 160 320 500; do dvc exp run --queue -S data.maxlen=$n; done
    dvc queue start
    python -m imdb_sentiment.sweep data.maxlen 80 160 320 500

A point of the sweep is the newest finished training run (with its evaluation) whose params
are exactly the current params.yaml's for that model and seed, but for the swept key: runs of
another recipe never mix in. Writes reports/sweeps/<key>.csv, .md and .png, and lists what has
not been run yet.
"""

from __future__ import annotations

import logging
import sys

import pandas as pd
import yaml

from imdb_sentiment import paths, plots, run_table
from imdb_sentiment.cli import run_stage
from imdb_sentiment.dataset import SHAPING_DATA_PARAMS
from imdb_sentiment.errors import StageError
from imdb_sentiment.files import write_text
from imdb_sentiment.params import Params, load_params, parse_params
from imdb_sentiment.tracking import records

logger = logging.getLogger(__name__)

# What the table shows of each run: columns of the run table.
METRICS = ["val_accuracy", "test_accuracy", "training_seconds", "epochs_run"]


def _with_value(params: Params, key: str, value: str) -> Params:
    """The params with ``key`` (``data.<name>`` or ``train.<name>``) set to ``value``, validated."""
    section, _, name = key.partition(".")
    raw = params.model_dump()
    if section not in ("data", "train") or name not in raw[section]:
        raise StageError(
            f"{key}: only a key of the data or train section (not networks) can be swept"
        )
    # As DVC reads a -S value: YAML, so "160" is a number and "true" a boolean.
    raw[section][name] = yaml.safe_load(value)
    return parse_params(raw)


def expected_run_params(params: Params, model: str, seed: int) -> dict[str, str]:
    """The params a training run of ``model`` and ``seed`` logs, as MLflow stores them."""
    return records.training_run_params(
        params.model(model, seed).model_dump(),
        params.data.model_dump(include=set(SHAPING_DATA_PARAMS)),
    )


def _newest_run(mlflow_runs: pd.DataFrame, expected: dict[str, str]) -> pd.DataFrame:
    """The first of ``mlflow_runs`` (newest first) with exactly ``expected`` params and every
    metric of :data:`METRICS` (its evaluation ran), as a row of the run table; none if there
    is no such run."""
    columns = [f"params.{name}" for name in expected]
    if mlflow_runs.empty or not set(columns) <= set(mlflow_runs.columns):
        return pd.DataFrame(columns=run_table.COLUMNS)
    same = (mlflow_runs[columns] == pd.Series(expected.values(), index=columns)).all(axis=1)
    matches = run_table.from_mlflow(mlflow_runs[same]).dropna(subset=METRICS)
    return matches.iloc[:1]


def sweep_table(
    mlflow_runs: pd.DataFrame, params: Params, key: str, values: list[str]
) -> pd.DataFrame:
    """One row per value and model: the mean over the seeds found of each of :data:`METRICS`,
    how many of the model's seeds in ``networks`` were found, and their run ids."""
    section, _, name = key.partition(".")
    rows = []
    for value in values:
        swept = _with_value(params, key, value)
        for model in params.models:
            found = pd.concat(
                [
                    _newest_run(mlflow_runs, expected_run_params(swept, model, seed))
                    for seed in params.seeds(model)
                ]
            )
            row = {key: getattr(getattr(swept, section), name), "model": model, "seeds": len(found)}
            row.update(found[METRICS].astype(float).mean())  # NaN where none was found.
            # Early stopping ends runs after different numbers of epochs: per epoch, the time
            # shows what the value costs.
            row["seconds_per_epoch"] = row["training_seconds"] / row["epochs_run"]
            row["mlflow_run_ids"] = " ".join(found["mlflow_run_id"])
            rows.append(row)
    return pd.DataFrame(rows)


def as_markdown(table: pd.DataFrame) -> str:
    """The table for a terminal or a page: accuracies to 4 digits, seconds whole."""
    shown = table.drop(columns=["mlflow_run_ids"]).astype(object)
    for column, form in {
        "val_accuracy": "{:.4f}",
        "test_accuracy": "{:.4f}",
        "training_seconds": "{:.0f}",
        "seconds_per_epoch": "{:.1f}",
        "epochs_run": "{:g}",
    }.items():
        shown[column] = table[column].map(lambda x, form=form: "" if pd.isna(x) else form.format(x))
    return shown.to_markdown(index=False, disable_numparse=True) + "\n"


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise StageError(
            "usage: python -m imdb_sentiment.sweep <key, e.g. data.maxlen> <value> <value> ..."
        )
    key, values = argv[0], argv[1:]
    project = paths.this_project()
    params = load_params(project.params_file)
    runs = records.finished_training_runs(params.mlflow.experiment_name)
    table = sweep_table(runs, params, key, values)
    missing = [str(value) for value in table.loc[table["seeds"] == 0, key].unique()]
    commands = [f"dvc exp run --queue -S {key}={value}" for value in missing]
    if len(missing) == len(values):
        raise StageError(
            f"no finished training run of the current params.yaml with {key} at "
            f"{', '.join(values)}; run them first: {'; '.join(commands)}; dvc queue start"
        )
    outputs = project.sweep_files(key)
    write_text(outputs["csv"], table.to_csv(index=False))
    write_text(outputs["md"], as_markdown(table))
    plots.save_figure(plots.sweep(table, key), outputs["png"])
    sys.stdout.write(as_markdown(table))
    logger.info(
        "Wrote %s, %s and %s", *(path.relative_to(project.root) for path in outputs.values())
    )
    if missing:
        logger.warning("Not run yet with the current params.yaml: %s", "; ".join(commands))


if __name__ == "__main__":
    raise SystemExit(run_stage(main, uses_tensorflow=False))
