import numpy as np
import pandas as pd
import pytest

from imdb_sentiment import comparison, significance
from imdb_sentiment.params import parse_params
from tests.conftest import tiny_params

REVIEWS = 2_000


@pytest.fixture
def models():
    raw = tiny_params()
    raw["train"]["seeds"] = [1, 2]
    raw["models"]["lstm"]["units"] = 32
    raw["models"]["gru"]["units"] = 64
    params = parse_params(raw)
    return [params.model(name) for name in ("lstm", "gru")]


@pytest.fixture
def outputs():
    """Two seeds each of lstm (better on test) and gru (better on validation)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, REVIEWS)

    def probabilities(accuracy):
        right = rng.random(REVIEWS) < accuracy
        return np.where(right, 0.3 + 0.6 * labels, 0.7 - 0.6 * labels)

    probabilities = {
        "lstm": np.stack([probabilities(0.86), probabilities(0.84)]),
        "gru": np.stack([probabilities(0.80), probabilities(0.82)]),
    }
    runs = pd.DataFrame(
        [
            {
                "model": name,
                "seed": seed,
                "epochs_run": 5,
                "best_epoch": 2,
                "val_accuracy": val,
                "trainable_params": 1000,
                "training_seconds": 40.0,
                "samples_per_second": 2800.0,
                "test_accuracy": float(((p >= 0.5) == labels).mean()),
                "test_loss": 0.3,
                "test_f1": 0.8,
                "test_roc_auc": 0.9,
                "mlflow_run_id": f"run-{name}-{seed}",
                "model_uri": f"models:/m-{name}-{seed}",
            }
            for name, vals in (("lstm", (0.84, 0.85)), ("gru", (0.87, 0.86)))
            for seed, val, p in zip((1, 2), vals, probabilities[name], strict=True)
        ]
    )
    return runs, labels, probabilities


def test_one_row_per_model_with_means_over_seeds_and_intervals(models, outputs):
    runs, labels, probabilities = outputs
    table = comparison.comparison_table(models, runs, labels, probabilities, 0.5)
    assert list(table["model"]) == ["lstm", "gru"]
    assert list(table["units"]) == [32, 64]
    assert list(table["seeds"]) == [2, 2]
    lstm = table.iloc[0]
    assert lstm["val_accuracy"] == pytest.approx(0.845)
    assert lstm["val_accuracy_sd"] == pytest.approx(np.std([0.84, 0.85], ddof=1))
    seed_accuracies = runs.loc[runs["model"] == "lstm", "test_accuracy"]
    assert lstm["test_accuracy"] == pytest.approx(seed_accuracies.mean())
    assert lstm["test_accuracy_low"] < lstm["test_accuracy"] < lstm["test_accuracy_high"]
    assert lstm["test_roc_auc_low"] < lstm["test_roc_auc"] < lstm["test_roc_auc_high"]
    assert lstm["mlflow_run_ids"] == "run-lstm-1,run-lstm-2"


def test_the_report_reads_with_both_tables_and_a_sentence_per_pair(models, outputs):
    runs, labels, probabilities = outputs
    table = comparison.comparison_table(models, runs, labels, probabilities, 0.5)
    pairs = comparison.pairs_table(
        significance.compare_pairs(labels, probabilities, 0.5, seed=0), REVIEWS
    )
    assert list(pairs[["model_a", "model_b"]].iloc[0]) == ["lstm", "gru"]
    markdown = comparison.as_markdown(table, pairs, [1, 2], REVIEWS)
    assert "trained with 2 seeds (1, 2)" in markdown
    assert "| lstm " in markdown and "± " in markdown
    assert "Holm's method for the 1 pairs" in markdown
    assert "- lstm vs gru: +" in markdown and "on these 2,000 test reviews" in markdown


def test_the_champion_is_chosen_on_validation_never_on_test(outputs):
    runs, _, _ = outputs
    table = pd.DataFrame({"model": ["lstm", "gru"], "val_accuracy": [0.845, 0.865]})
    # lstm has the better test accuracy, gru the better validation accuracy; of gru's two
    # seeds, the one with the better validation accuracy.
    best = comparison.best_by_validation(table, runs)
    assert (best["model"], best["seed"]) == ("gru", 1)


def test_the_summary_metrics_are_each_models_mean_accuracies(models, outputs):
    runs, labels, probabilities = outputs
    table = comparison.comparison_table(models, runs, labels, probabilities, 0.5)
    summary = comparison.summary_metrics(table)
    assert set(summary["val"]) == set(summary["test"]) == {"lstm", "gru"}
    assert summary["val"]["gru"] == pytest.approx(0.865)
