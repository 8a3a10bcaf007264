"""The champion: chosen on one half of the validation reviews, tested on the other half against
the registry's champion, paired review by review; promoted no more often than the test's level,
however many networks it was the best of."""

import numpy as np
import pandas as pd
import pytest

from imdb_sentiment import champion, significance
from tests.conftest import model_params

REVIEWS = 2_500


def runs_of(models_and_seeds) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "model": model,
                "seed": seed,
                "mlflow_run_id": f"run-{model}-{seed}",
                "test_accuracy": 0.85,
                "test_loss": 0.3,
                "test_f1": 0.85,
                "test_roc_auc": 0.93,
            }
            for model, seed in models_and_seeds
        ]
    )


def test_the_candidate_is_the_best_on_the_choosing_half_whatever_the_other_half_says():
    runs = runs_of([("lstm", 1), ("gru", 1), ("gru", 2)])
    right = np.zeros((3, 10), np.int8)
    choosing, testing = champion.halves(10)
    right[1, choosing] = 1  # gru-1: right on every choosing review, no testing one
    right[2, testing] = 1  # gru-2: the reverse, and better over all ten
    right[2, choosing[:2]] = 1
    candidate, position = champion.choose(runs, right)
    assert (candidate["model"], candidate["seed"], position) == ("gru", 1, 1)
    assert list(choosing) == [0, 2, 4, 6, 8] and list(testing) == [1, 3, 5, 7, 9]


def test_the_first_champion_and_a_rerun_over_the_same_runs():
    candidate = runs_of([("gru", 7)]).iloc[0]
    right = np.ones(REVIEWS, np.int8)
    promote, why = champion.decide(candidate, right, 6, None, None)
    assert promote and why == "gru (seed 7) becomes the champion: there was none."
    same = {"name": "gru (seed 7, version 2)", "source_run_id": "run-gru-7"}
    promote, why = champion.decide(candidate, right, 6, same, right)
    assert not promote
    assert why == (
        "The champion stays gru (seed 7, version 2): it is this report's best network on the "
        "validation reviews that choose, the same training run."
    )


def paired(candidate_only: int, incumbent_only: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate and champion right on the same reviews but for these, on the testing half."""
    candidate, incumbent = np.ones(REVIEWS, np.int8), np.ones(REVIEWS, np.int8)
    _, testing = champion.halves(REVIEWS)
    candidate[testing[:incumbent_only]] = 0
    incumbent[testing[incumbent_only : incumbent_only + candidate_only]] = 0
    return candidate, incumbent


def test_the_champion_moves_only_when_the_other_half_shows_the_candidate_better():
    incumbent = {"name": "lstm (seed 42, version 3)", "source_run_id": "r1"}
    candidate = runs_of([("gru", 7)]).iloc[0]
    # 40 reviews only the candidate gets right against 20: binomial p = 0.007.
    promote, why = champion.decide(candidate, *paired(40, 20)[:1], 30, incumbent, paired(40, 20)[1])
    assert promote
    assert why.startswith(
        "gru (seed 7) becomes the champion: chosen as the best of 30 networks on one half of the "
        "validation reviews, on the other 1,250 it scores +1.60 points against the champion "
        "(lstm (seed 42, version 3)), review by review (McNemar's exact one-sided p = 0.0067"
    )
    # 30 against 20: p = 0.10.
    candidate_right, incumbent_right = paired(30, 20)
    promote, why = champion.decide(candidate, candidate_right, 30, incumbent, incumbent_right)
    assert not promote
    assert why.startswith("The champion stays lstm (seed 42, version 3): gru (seed 7), chosen")
    assert "p = 0.1; it would take +" in why


def test_a_champion_without_its_predictions_is_weighed_by_its_recorded_accuracy():
    incumbent = {"name": "lstm (seed 42, version 1)", "source_run_id": "r1",
                 "val_accuracy": 0.86, "val_reviews": REVIEWS}  # fmt: skip
    candidate = runs_of([("gru", 7)]).iloc[0]
    right = (np.arange(REVIEWS) % 100 < 90).astype(np.int8)  # 90% on either half
    promote, why = champion.decide(candidate, right, 6, incumbent, None)
    assert promote and "the champion's own predictions are not kept" in why
    assert "1,250 validation reviews it was not chosen on" in why


def test_a_registered_versions_tags_name_its_run_params_validation_and_test_metrics():
    gru = model_params("gru", seed=7)
    candidate = runs_of([("gru", 7)]).iloc[0]
    right = np.array([1, 1, 0, 1], np.int8)
    tags = champion.version_tags(candidate, gru, right, "abc123")
    assert (tags["pipeline_model"], tags["seed"], tags["source_run_id"]) == (
        "gru",
        "7",
        "run-gru-7",
    )
    assert (tags["val_accuracy"], tags["val_reviews"], tags["val_split_md5"]) == (
        "0.75",
        "4",
        "abc123",
    )
    assert tags["param_cell"] == "gru" and tags["test_roc_auc"] == "0.93"


def simulated_promotions(
    candidates: int, simulations: int, rng: np.random.Generator, chosen_on_test_half: bool = False
) -> float:
    """How often a candidate no better than the champion is promoted, the best of
    ``candidates`` networks exactly as good as the champion: reviews of every difficulty (most
    easy), each network right on each by its own draw, two networks disagreeing on about 10% of
    them. With ``chosen_on_test_half``, the candidate is chosen on the reviews that then test
    it."""
    promoted = 0
    for _ in range(simulations):
        easiness = rng.normal(4.75, 4.0, REVIEWS)  # 86% right; two networks disagree on 10%
        chance = 1 / (1 + np.exp(-easiness[None, :]))
        right = (rng.random((candidates + 1, REVIEWS)) < chance).astype(np.int8)
        runs = runs_of([("gru", seed) for seed in range(candidates)])
        candidate_right = right[1:]
        if chosen_on_test_half:
            _, testing = champion.halves(REVIEWS)
            best = int(np.argmax(candidate_right[:, testing].mean(axis=1)))
            candidate, position = runs.iloc[best], best
        else:
            candidate, position = champion.choose(runs, candidate_right)
        incumbent = {"name": "gru (seed 99, version 1)", "source_run_id": "old"}
        promote, _ = champion.decide(
            candidate, candidate_right[position], candidates, incumbent, right[0]
        )
        promoted += promote
    return promoted / simulations


def test_a_candidate_no_better_than_the_champion_is_rarely_promoted_even_the_best_of_30():
    rng = np.random.default_rng(3)
    rate = simulated_promotions(30, 2000, rng)
    assert rate <= significance.ALPHA, f"promoted {rate:.1%} of the time"
    # Chosen on the reviews that test it, the best of 30 would be promoted far more often: the
    # halves are what keeps the level.
    assert simulated_promotions(30, 400, rng, chosen_on_test_half=True) > 2 * significance.ALPHA


@pytest.mark.parametrize(("candidate_only", "promoted"), [(40, True), (30, False)])
def test_paired_promotion_is_mcnemars_exact_one_sided_test(candidate_only, promoted):
    candidate, incumbent = paired(candidate_only, 20)
    result = significance.paired_promotion(candidate, incumbent)
    from scipy import stats

    expected = stats.binomtest(candidate_only, candidate_only + 20, 0.5, "greater").pvalue
    assert result.p_value == pytest.approx(expected)
    assert result.promote == promoted
