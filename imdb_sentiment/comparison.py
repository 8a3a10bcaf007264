"""Comparing the models on the test set they share: per model its scores over seeds with their
intervals, per pair of models the difference and whether it is more than chance, and the
champion, chosen on validation accuracy only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from imdb_sentiment import paths, significance
from imdb_sentiment.cli import StageError
from imdb_sentiment.files import read_json
from imdb_sentiment.params import ModelParams

# The bootstrap's own seed: the report's intervals are the same on every run.
BOOTSTRAP_SEED = 0


def read_runs(names: list[str], seeds: list[int]) -> pd.DataFrame:
    """One row per model and seed: its training summary and time, its test metrics (prefixed
    ``test_``) and its MLflow run."""
    rows = []
    try:
        for name in names:
            for seed in seeds:
                test = read_json(paths.evaluation_metrics(name, seed))
                run = read_json(paths.run_id_file(name, seed))
                rows.append(
                    {
                        "model": name,
                        "seed": seed,
                        **read_json(paths.training_summary(name, seed)),
                        **read_json(paths.training_time(name, seed)),
                        **{f"test_{metric}": value for metric, value in test.items()},
                        "mlflow_run_id": run["run_id"],
                        "model_uri": run["model_uri"],
                    }
                )
    except FileNotFoundError as error:
        raise StageError(
            f"{error.filename} is missing: run `dvc repro` to train and evaluate every model"
        ) from None
    return pd.DataFrame(rows).rename(columns={"best_val_accuracy": "val_accuracy"})


def read_test_probabilities(
    names: list[str], seeds: list[int]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The test labels (1 positive), and every model's probabilities ``[seeds, reviews]``."""
    probabilities, labels = {}, None
    for name in names:
        tables = [pd.read_csv(paths.evaluation_predictions(name, seed)) for seed in seeds]
        labels = (tables[0]["actual"] == "positive").to_numpy().astype(int)
        probabilities[name] = np.stack([table["probability"].to_numpy() for table in tables])
    return labels, probabilities


def comparison_table(
    models: list[ModelParams],
    runs: pd.DataFrame,
    labels: np.ndarray,
    probabilities: dict[str, np.ndarray],
    threshold: float,
) -> pd.DataFrame:
    """One row per model: its size, how training went, and its validation and test scores as
    means over seeds, with standard deviations over seeds and 95% intervals over test reviews."""
    rows = []
    for model in models:
        of_model = runs[runs["model"] == model.name]
        correct = ((probabilities[model.name] >= threshold).astype(int) == labels).astype(int)
        accuracy = significance.accuracy_interval(correct, BOOTSTRAP_SEED)
        auc = significance.auc_interval(labels, probabilities[model.name], BOOTSTRAP_SEED)
        rows.append(
            {
                "model": model.name,
                "cell": model.cell,
                "units": model.units,
                "trainable_params": int(of_model["trainable_params"].iloc[0]),
                "seeds": len(of_model),
                "epochs_run": of_model["epochs_run"].mean(),
                "val_accuracy": of_model["val_accuracy"].mean(),
                "val_accuracy_sd": of_model["val_accuracy"].std(),
                "test_accuracy": accuracy.estimate,
                "test_accuracy_low": accuracy.low,
                "test_accuracy_high": accuracy.high,
                "test_accuracy_sd": of_model["test_accuracy"].std(),
                "test_roc_auc": auc.estimate,
                "test_roc_auc_low": auc.low,
                "test_roc_auc_high": auc.high,
                "test_f1": of_model["test_f1"].mean(),
                "test_loss": of_model["test_loss"].mean(),
                "training_seconds": of_model["training_seconds"].mean(),
                "samples_per_second": of_model["samples_per_second"].mean(),
                "mlflow_run_ids": ",".join(of_model["mlflow_run_id"]),
            }
        )
    return pd.DataFrame(rows)


def pairs_table(pairs: list[significance.PairComparison], reviews: int) -> pd.DataFrame:
    """One row per pair of models: the accuracy difference (points), its interval, McNemar's
    p-value, the same corrected for the number of pairs, and the verdict in words."""
    return pd.DataFrame(
        [
            {
                "model_a": pair.model_a,
                "model_b": pair.model_b,
                "accuracy_difference_points": 100 * pair.difference.estimate,
                "difference_low": 100 * pair.difference.low,
                "difference_high": 100 * pair.difference.high,
                "mcnemar_p": pair.p_value,
                "mcnemar_p_holm": pair.adjusted_p_value,
                "verdict": significance.verdict(pair, reviews),
            }
            for pair in pairs
        ],
        columns=[
            "model_a",
            "model_b",
            "accuracy_difference_points",
            "difference_low",
            "difference_high",
            "mcnemar_p",
            "mcnemar_p_holm",
            "verdict",
        ],
    )


def _mean_sd(mean: float, sd: float) -> str:
    return f"{mean:.4f}" if np.isnan(sd) else f"{mean:.4f} ± {sd:.4f}"


def as_markdown(table: pd.DataFrame, pairs: pd.DataFrame, seeds: list[int], reviews: int) -> str:
    """The report a person reads: both tables, and one sentence per pair."""
    shown = pd.DataFrame(
        {
            "model": table["model"],
            "units": table["units"],
            "trainable params": table["trainable_params"].map("{:,}".format),
            "val accuracy": [
                _mean_sd(*v) for v in table[["val_accuracy", "val_accuracy_sd"]].values
            ],
            "test accuracy": [
                _mean_sd(*v) for v in table[["test_accuracy", "test_accuracy_sd"]].values
            ],
            "95% CI": [f"{low:.4f}-{high:.4f}" for low, high in _bounds(table, "test_accuracy")],
            "test ROC AUC": table["test_roc_auc"].map("{:.4f}".format),
            "95% CI ": [f"{low:.4f}-{high:.4f}" for low, high in _bounds(table, "test_roc_auc")],
            "test F1": table["test_f1"].map("{:.4f}".format),
            "epochs run": table["epochs_run"].map("{:g}".format),
            "training s": table["training_seconds"].map("{:.1f}".format),
            "samples/s": table["samples_per_second"].map("{:.0f}".format),
        }
    )
    seeds_text = ", ".join(map(str, seeds))
    lines = [
        "# Model comparison",
        "",
        f"Every model trained with {len(seeds)} seed{'s' * (len(seeds) > 1)} ({seeds_text}); "
        "the best epoch chosen on the validation split; the test split "
        f"({reviews:,} reviews) scored once. Scores are means over seeds (± their standard "
        "deviation over seeds, with several); 95% intervals by bootstrap over test reviews.",
        "",
        shown.to_markdown(index=False, disable_numparse=True),
        "",
        "## Pairs of models",
        "",
        "Accuracy differences in points with 95% paired-bootstrap intervals; McNemar's exact "
        "test on the reviews where exactly one of the two models is right (with several seeds, "
        "each model's prediction is its mean probability over seeds), p-values corrected with "
        f"Holm's method for the {len(pairs)} pairs.",
        "",
    ]
    lines += [f"- {verdict}" for verdict in pairs["verdict"]]
    return "\n".join(lines) + "\n"


def _bounds(table: pd.DataFrame, column: str):
    return zip(table[f"{column}_low"], table[f"{column}_high"], strict=True)


def summary_metrics(table: pd.DataFrame) -> dict:
    """Each model's mean validation and test accuracy, as DVC metrics: `make exp-show` shows
    them as columns ``val.<model>`` and ``test.<model>``, short enough to fit a terminal."""
    return {
        split: {
            row.model: round(float(getattr(row, f"{split}_accuracy")), 5)
            for row in table.itertuples()
        }
        for split in ("val", "test")
    }


def best_by_validation(table: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """The champion candidate, chosen on validation accuracy only, never on the test set: the
    model with the best mean validation accuracy over its seeds, and of that model the run
    (seed) with the best validation accuracy. Ties go to the model, and the seed, listed first
    in params.yaml."""
    best_model = table.loc[table["val_accuracy"].idxmax(), "model"]
    of_model = runs[runs["model"] == best_model]
    return of_model.loc[of_model["val_accuracy"].idxmax()]


def version_tags(best: pd.Series, model: ModelParams) -> dict[str, str]:
    """Tags of a registered model version: the pipeline's model name and seed, its run, its
    effective hyperparameters and its test metrics."""
    metrics = ("test_accuracy", "test_loss", "test_f1", "test_roc_auc")
    return {
        "pipeline_model": model.name,
        "seed": str(model.seed),
        "source_run_id": best["mlflow_run_id"],
        **{f"param_{key}": str(value) for key, value in model.model_dump().items()},
        **{metric: str(best[metric]) for metric in metrics},
    }
