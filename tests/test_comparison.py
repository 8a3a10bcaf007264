import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imdb_sentiment import comparison, pairs
from imdb_sentiment.params import parse_params
from tests.conftest import networks, tiny_params

REVIEWS = 2_000
MARGIN = 0.005


def make_models(seeds: list[int]):
    raw = tiny_params()
    raw["networks"] = networks(raw["models"], seeds)
    raw["models"]["lstm"]["units"] = 32
    raw["models"]["gru"]["units"] = 64
    params = parse_params(raw)
    return [params.model(name) for name in ("lstm", "gru")]


def make_outputs(
    seeds: list[int],
    lstm_accuracy: float = 0.86,
    gru_accuracy: float = 0.80,
):
    """Runs of lstm (better on test) and gru (better on validation), one per seed."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, REVIEWS)

    def probabilities(accuracy):
        right = rng.random(REVIEWS) < accuracy
        return np.where(right, 0.3 + 0.6 * labels, 0.7 - 0.6 * labels)

    spread = np.linspace(-0.01, 0.01, len(seeds)) if len(seeds) > 1 else [0.0]
    probabilities = {
        "lstm": np.stack([probabilities(lstm_accuracy + s) for s in spread]),
        "gru": np.stack([probabilities(gru_accuracy + s) for s in spread]),
    }
    runs = pd.DataFrame(
        [
            {
                "model": name,
                "seed": seed,
                "epochs_run": 5,
                "best_epoch": 2,
                "val_accuracy": val + 0.01 * index,
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
            for name, val in (("lstm", 0.84), ("gru", 0.86))
            for index, (seed, p) in enumerate(zip(seeds, probabilities[name], strict=True))
        ]
    )
    return runs, labels, probabilities


def report(seeds: list[int], **outputs) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The comparison table, the pairs and the Markdown, as the report stage makes them."""
    runs, labels, probabilities = make_outputs(seeds, **outputs)
    table = comparison.comparison_table(make_models(seeds), runs, labels, probabilities, 0.5)
    correct = comparison.correctness(labels, probabilities, 0.5)
    pair_rows = pairs.pairs_table(correct, MARGIN, None, {"lstm": seeds[0], "gru": seeds[0]})
    sections = {
        "Seed ensembles": comparison.ensemble_sentences(labels, probabilities, 0.5),
        "How many seeds": pairs.seeds_needed_sentences(correct, 0.01),
    }
    intro = comparison.what_the_seeds_show(
        {"lstm": seeds, "gru": seeds}, REVIEWS, MARGIN, sequential_design=False
    )
    markdown = comparison.as_markdown(table, pair_rows, intro, sections)
    return table, pair_rows, markdown


def test_one_row_per_model_with_means_over_seeds_and_intervals_about_a_fresh_run():
    seeds = [1, 2, 3]
    runs, _, _ = make_outputs(seeds)
    table, _, _ = report(seeds)
    assert list(table["model"]) == ["lstm", "gru"]
    assert list(table["units"]) == [32, 64]
    assert list(table["seeds"]) == [3, 3]
    lstm = table.iloc[0]
    assert lstm["val_accuracy"] == pytest.approx(0.85)
    assert lstm["val_accuracy_sd"] == pytest.approx(0.01)
    seed_accuracies = runs.loc[runs["model"] == "lstm", "test_accuracy"]
    assert lstm["test_accuracy"] == pytest.approx(seed_accuracies.mean())
    assert lstm["test_accuracy_low"] < lstm["test_accuracy"] < lstm["test_accuracy_high"]
    # The interval holds the seeds' spread: wider than the runs' own range.
    assert lstm["test_accuracy_high"] - lstm["test_accuracy_low"] > np.ptp(seed_accuracies)
    assert lstm["test_roc_auc_low"] < lstm["test_roc_auc"] < lstm["test_roc_auc_high"]
    assert lstm["interval_about"] == comparison.INTERVAL_OF_A_RECIPE
    assert lstm["mlflow_run_ids"] == "run-lstm-1,run-lstm-2,run-lstm-3"


def test_three_seeds_give_verdicts_about_freshly_trained_recipes():
    _, pairs, markdown = report([1, 2, 3])
    [pair] = pairs.itertuples()
    assert (pair.model_a, pair.model_b, pair.about, pair.test) == (
        "lstm",
        "gru",
        "recipes",
        "welch",
    )
    assert pair.verdict == "different"
    assert pair.sentence.startswith("A freshly trained LSTM is more accurate than a freshly "
                                    "trained GRU: +")  # fmt: skip
    assert "3 and 3 seeds" in pair.sentence and "Holm over 1 pair)" in pair.sentence
    assert "a freshly trained run (seeds and reviews)" not in markdown  # Said in words instead.
    assert "adds the seed-to-seed variation" in markdown
    assert "## Seed ensembles" in markdown and "ensemble of the 3 LSTM networks" in markdown
    assert "(sd over seeds, this pair's runs)" in markdown
    assert "at 5% (5% over 1 pair)" in markdown


def test_a_difference_the_seeds_cannot_show_is_not_established():
    _, pairs, _ = report([1, 2, 3], lstm_accuracy=0.82, gru_accuracy=0.815)
    [pair] = pairs.itertuples()
    assert pair.verdict == "not established"
    assert pair.sentence.startswith("Not established whether a freshly trained LSTM or a "
                                    "freshly trained GRU is more accurate")  # fmt: skip
    assert "cannot rule out a difference of up to" in pair.sentence


def test_two_seeds_show_the_spread_only():
    table, pairs, markdown = report([1, 2])
    assert table["test_accuracy_low"].isna().all()
    assert set(table["interval_about"]) == {comparison.NO_INTERVAL}
    [pair] = pairs.itertuples()
    assert (pair.about, pair.verdict) == ("spread", "none")
    assert "2 seeds show the spread of runs, not whether the recipes differ" in pair.sentence
    assert "95% CI" not in markdown and "more accurate" not in markdown.split("## Seed")[0]
    # The planning line keeps the stated sd: two runs per model measure theirs too roughly.
    assert "1.00 points (sd over seeds, assumed: report.planning_seed_sd; 2 seeds measured " in (
        markdown
    )


def test_one_seed_compares_the_two_networks_and_never_the_recipes():
    table, pairs, markdown = report([42])
    assert set(table["interval_about"]) == {comparison.INTERVAL_OF_A_NETWORK}
    assert table["test_accuracy_low"].notna().all()
    [pair] = pairs.itertuples()
    assert (pair.about, pair.test) == ("networks", "mcnemar")
    assert pair.sentence.startswith("The trained LSTM network (seed 42) is right on ")
    assert "This is about these two networks" in pair.sentence
    assert "One seed cannot compare the recipes" in markdown
    assert "freshly trained" not in markdown
    assert "## Seed ensembles" not in markdown
    # The planning line uses the stated sd, since one seed cannot measure it.
    assert "1.00 points (sd over seeds, assumed: report.planning_seed_sd" in markdown


@pytest.mark.parametrize("seeds", [[42], [1, 2], [1, 2, 3]])
def test_no_sentence_claims_more_accuracy_without_saying_of_what(seeds):
    _, _, markdown = report(seeds)
    for sentence in re.split(r"(?<=\.) ", markdown):
        if "more accurate" in sentence or "more of these" in sentence:
            assert re.search(r"freshly trained|network|ensemble", sentence), sentence


def test_the_summary_metrics_are_each_models_mean_accuracies():
    table, _, _ = report([1, 2])
    summary = comparison.summary_metrics(table)
    assert set(summary["val"]) == set(summary["test"]) == {"lstm", "gru"}
    assert summary["val"]["gru"] == pytest.approx(0.865)


def test_the_summary_metrics_are_rounded_to_five_digits():
    table = pd.DataFrame(
        {"model": ["gru"], "val_accuracy": [0.8654321], "test_accuracy": [0.8512345678]}
    )
    assert comparison.summary_metrics(table) == {
        "val": {"gru": 0.86543},
        "test": {"gru": 0.85123},
    }


def test_the_test_probabilities_are_read_per_model_and_seed_with_their_labels(tmp_path):
    from imdb_sentiment.evaluation import predictions_table
    from imdb_sentiment.files import write_text
    from imdb_sentiment.paths import ProjectFiles

    project = ProjectFiles(tmp_path)
    labels = np.array([1, 0, 1])
    for name, base in (("lstm", 0.1), ("gru", 0.2)):
        for seed in (1, 2):
            probabilities = np.array([0.9, 0.2, 0.6]) - base * seed / 10
            table = predictions_table(labels, probabilities, 0.5)
            write_text(project.evaluation_predictions(name, seed), table.to_csv(index=False))
    read_labels, probabilities = comparison.read_probabilities(
        project, {"lstm": [1, 2], "gru": [2, 1]}
    )
    np.testing.assert_array_equal(read_labels, labels)
    assert read_labels.dtype.kind == "i"
    assert list(probabilities) == ["lstm", "gru"]
    np.testing.assert_allclose(probabilities["gru"][0], [0.86, 0.16, 0.56])  # Seed 2 first.
    assert probabilities["lstm"].shape == (2, 3)


def recipe_pair(p_value: float, equivalence_p_value: float):
    from imdb_sentiment import significance

    return significance.RecipeComparison(
        model_a="gru",
        model_b="lstm",
        seeds_a=5,
        seeds_b=5,
        difference=significance.Estimate(0.004, 0.001, 8.0),
        p_value=p_value / 2,
        adjusted_p_value=p_value,
        equivalence_margin=MARGIN,
        equivalence_p_value=equivalence_p_value / 2,
        adjusted_equivalence_p_value=equivalence_p_value,
        probability_a_beats_b=0.7,
        beats=significance.Interval(0.7, 0.4, 0.9),
    )


@pytest.mark.parametrize(
    ("p_value", "equivalence_p_value", "verdict"),
    [
        (0.01, 0.2, "different"),
        (0.01, 0.01, "different, within the margin"),
        (0.2, 0.01, "equivalent"),
        (0.2, 0.2, "not established"),
    ],
)
def test_a_pair_of_recipes_row_holds_its_comparison_and_verdict(
    p_value, equivalence_p_value, verdict, monkeypatch
):
    from imdb_sentiment import significance, verdicts

    pair = recipe_pair(p_value, equivalence_p_value)
    monkeypatch.setattr(significance, "compare_recipes", lambda correct, margin, pairs: [pair])
    correct = {"gru": np.ones((5, 4), np.int8), "lstm": np.ones((5, 4), np.int8)}
    [row] = pairs.pairs_table(correct, MARGIN, None, {}).to_dict("records")
    interval = pair.difference.interval()
    assert {key: value for key, value in row.items() if not pd.isna(value)} == {
        "model_a": "gru",
        "model_b": "lstm",
        "about": "recipes",
        "design": "fixed",
        "seeds_a": 5,
        "seeds_b": 5,
        "accuracy_difference_points": pytest.approx(0.4),
        "difference_low": pytest.approx(100 * interval.low),
        "difference_high": pytest.approx(100 * interval.high),
        "test": "welch",
        "p_value": p_value / 2,
        "p_value_holm": p_value,
        "equivalence_p_value_holm": equivalence_p_value,
        "probability_a_beats_b": 0.7,
        "beats_low": 0.4,
        "beats_high": 0.9,
        "verdict": verdict,
        "sentence": verdicts.recipe_sentence(pair, 1),
    }


@pytest.mark.parametrize(("p_value", "verdict"), [(0.01, "different networks"),
                                                  (0.06, "networks not told apart")])  # fmt: skip
def test_a_pair_of_networks_row_holds_mcnemars_test(p_value, verdict, monkeypatch):
    from imdb_sentiment import significance, verdicts

    pair = significance.ClassifierComparison("gru", "lstm", 30, 10, 1000, p_value / 3, p_value)
    monkeypatch.setattr(significance, "compare_classifiers", lambda right, pairs: [pair])
    correct = {"gru": np.ones((1, 4), np.int8), "lstm": np.ones((1, 4), np.int8)}
    seeds = {"gru": 42, "lstm": 7}
    [row] = pairs.pairs_table(correct, MARGIN, None, seeds).to_dict("records")
    assert {key: value for key, value in row.items() if not pd.isna(value)} == {
        "model_a": "gru",
        "model_b": "lstm",
        "about": "networks",
        "design": "fixed",
        "seeds_a": 1,
        "seeds_b": 1,
        "accuracy_difference_points": pytest.approx(2.0),  # (30 - 10) of 1,000 reviews
        "test": "mcnemar",
        "p_value": p_value / 3,
        "p_value_holm": p_value,
        "verdict": verdict,
        "sentence": verdicts.network_sentence(pair, 1, seeds),
    }


def test_a_pair_of_two_seeds_row_shows_the_spread_only():
    from imdb_sentiment import verdicts

    gru = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.int8)  # runs at 75% and 50%
    lstm = np.array([[1, 0, 0, 0], [1, 1, 1, 1]], np.int8)  # runs at 25% and 100%
    [row] = pairs.pairs_table({"gru": gru, "lstm": lstm}, MARGIN, None, {}).to_dict("records")
    assert {key: value for key, value in row.items() if not pd.isna(value)} == {
        "model_a": "gru",
        "model_b": "lstm",
        "about": "spread",
        "design": "fixed",
        "seeds_a": 2,
        "seeds_b": 2,
        "accuracy_difference_points": pytest.approx(0.0),  # 62.5% against 62.5%
        "verdict": "none",
        "sentence": verdicts.spread_sentence(
            "gru", "lstm", np.array([0.75, 0.5]), np.array([0.25, 1.0])
        ),
    }
    gru[1] = 1
    [row] = pairs.pairs_table({"gru": gru, "lstm": lstm}, MARGIN, None, {}).to_dict("records")
    assert row["accuracy_difference_points"] == pytest.approx(25.0)  # 87.5% against 62.5%


@pytest.mark.parametrize("seeds", [[42], [1, 2], [1, 2, 3]], ids=["1-seed", "2-seeds", "3-seeds"])
def test_the_report_reads_word_for_word_as_reviewed(seeds):
    # What a user reads, fixed: tests/data/report_<n>_seed(s).md was read and checked by hand.
    # When the wording changes on purpose, read the new text, then write it there.
    name = "report_1_seed.md" if len(seeds) == 1 else f"report_{len(seeds)}_seeds.md"
    expected = (Path(__file__).parent / "data" / name).read_text()
    _, _, markdown = report(seeds)
    assert markdown.splitlines() == expected.splitlines()


def test_seed_ensembles_name_each_models_own_seeds_and_no_p_value_after_a_settle():
    _, labels, probabilities = make_outputs([1, 2, 3, 4, 5])
    probabilities["gru"] = probabilities["gru"][:3]  # A settled model stopped at 3 seeds.
    fixed = comparison.ensemble_sentences(labels, probabilities, 0.5)
    [settled] = comparison.ensemble_sentences(labels, probabilities, 0.5, sequential_design=True)
    assert "ensemble of the 5 LSTM networks" in fixed[0]
    assert "that of the 3 GRU networks" in fixed[0]
    assert "McNemar p" in fixed[0]
    assert "McNemar" not in settled and "no p-value" in settled
    assert "ensemble of the 5 LSTM networks" in settled
