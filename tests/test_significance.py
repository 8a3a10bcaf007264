"""The report's statistics against values known by hand, and on synthetic data whose truth is
known."""

import numpy as np
import pytest

from imdb_sentiment import significance


def test_mcnemar_exact_test_on_a_hand_made_table():
    # 10 reviews only a gets right, 2 only b: under "equally likely", P(X <= 2 | n = 12) doubled,
    # (1 + 12 + 66) / 4096 * 2 = 0.0386. The 50 both get right and 8 both get wrong don't count.
    right_a = np.array([1] * 50 + [1] * 10 + [0] * 2 + [0] * 8)
    right_b = np.array([1] * 50 + [0] * 10 + [1] * 2 + [0] * 8)
    assert significance.mcnemar_p_value(right_a, right_b) == pytest.approx(158 / 4096)
    assert significance.mcnemar_p_value(right_b, right_a) == pytest.approx(158 / 4096)
    assert significance.mcnemar_p_value(right_a, right_a) == 1.0


def _synthetic(accuracy: float, reviews: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(reviews) < accuracy).astype(int)


def test_the_paired_interval_covers_a_known_difference_and_is_as_wide_as_expected():
    # Two classifiers right with probability 0.85 and 0.80 on 20,000 reviews: the difference
    # is 5 points; its standard error is about sqrt((0.85*0.15 + 0.8*0.2) / 20000) = 0.38 points.
    a, b = _synthetic(0.85, 20_000, 1), _synthetic(0.80, 20_000, 2)
    interval = significance.difference_interval(a[None], b[None], seed=0)
    assert interval.low < 0.05 < interval.high
    assert interval.high - interval.low == pytest.approx(2 * 1.96 * 0.0038, rel=0.15)
    assert interval.estimate == pytest.approx(a.mean() - b.mean())


def test_the_interval_of_two_equal_models_covers_zero():
    a, b = _synthetic(0.85, 20_000, 3), _synthetic(0.85, 20_000, 4)
    interval = significance.difference_interval(a[None], b[None], seed=0)
    assert interval.low < 0 < interval.high


def test_intervals_are_seeded():
    a = _synthetic(0.8, 5_000, 5)[None]
    assert significance.accuracy_interval(a, seed=0) == significance.accuracy_interval(a, seed=0)
    assert significance.accuracy_interval(a, seed=0) != significance.accuracy_interval(a, seed=1)


def test_accuracy_and_auc_over_several_seeds_are_means_with_an_interval_around_them():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, 4_000)
    # Three seeds of a model whose probabilities lean towards the label.
    probabilities = np.clip(labels * 0.3 + rng.random((3, 4_000)) * 0.7, 0, 1)
    correct = ((probabilities >= 0.5) == labels).astype(int)
    accuracy = significance.accuracy_interval(correct, seed=0)
    assert accuracy.estimate == pytest.approx(correct.mean())
    assert accuracy.low < accuracy.estimate < accuracy.high
    from sklearn.metrics import roc_auc_score

    auc = significance.auc_interval(labels, probabilities, seed=0)
    assert auc.estimate == pytest.approx(np.mean([roc_auc_score(labels, p) for p in probabilities]))
    assert auc.low < auc.estimate < auc.high < 1


def test_pairs_are_corrected_for_their_number_and_told_in_words():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 20_000)

    def model(accuracy, seed):
        right = np.random.default_rng(seed).random(20_000) < accuracy
        return np.where(right, labels, 1 - labels)[None].astype(float)

    probabilities = {"good": model(0.9, 1), "fair": model(0.8, 2), "same": model(0.8, 3)}
    pairs = significance.compare_pairs(labels, probabilities, threshold=0.5, seed=0)
    assert [(p.model_a, p.model_b) for p in pairs] == [
        ("good", "fair"),
        ("good", "same"),
        ("fair", "same"),
    ]
    for pair in pairs:
        assert pair.adjusted_p_value >= pair.p_value  # Holm never lowers a p-value.
    good_fair, _, fair_same = pairs
    assert significance.verdict(good_fair, 20_000).startswith("good vs fair: +10.")
    assert "good is more accurate on these 20,000 test reviews" in significance.verdict(
        good_fair, 20_000
    )
    assert significance.verdict(fair_same, 20_000).endswith(
        "no evidence of a difference on 20,000 test reviews"
    )
