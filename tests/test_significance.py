"""The report's statistics against values known by hand, and by simulation: recipes whose
truth is known, trained (drawn) again and again, must get verdicts at the stated rate and
intervals that cover the truth as often as they say."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests

from imdb_sentiment import significance

# Synthetic test sets: each review is easy, middling or hard for every network of a recipe
# alike (the reviews are shared, as in the report), and each network (seed) shifts its
# chance of being right on every review by its own amount: seed sd of 1 point, as measured.
DIFFICULTY = np.array([0.97, 0.75, 0.40])
SHARE = np.array([0.6, 0.3, 0.1])
EXPECTED_ACCURACY = float(DIFFICULTY @ SHARE)  # 0.847
REVIEWS = 25_000
SEED_SD = 0.01


def two_recipes(rng, seeds: int, true_difference: float, reviews: int = REVIEWS):
    """Correctness matrices ``[seeds, reviews]`` of recipe a and recipe b on one test set, a's
    expected accuracy ``true_difference`` above b's."""
    chance = DIFFICULTY[rng.choice(len(DIFFICULTY), reviews, p=SHARE)]
    matrices = []
    for shift in (true_difference, 0.0):
        per_seed = rng.normal(shift, SEED_SD, (seeds, 1))
        right = rng.random((seeds, reviews)) < np.clip(chance + per_seed, 0, 1)
        matrices.append(right.astype(np.int8))
    return matrices


SIMULATIONS = 1000


@pytest.fixture(scope="module")
def simulated_nulls():
    """1,000 comparisons of two recipes drawn from the same distribution, five seeds each."""
    rng = np.random.default_rng(2026)
    return [two_recipes(rng, 5, 0.0) for _ in range(SIMULATIONS)]


def test_equal_recipes_are_called_different_at_most_at_the_nominal_rate(simulated_nulls):
    called = [
        significance.compare_recipes({"a": a, "b": b}, margin=0.005)[0].different
        for a, b in simulated_nulls
    ]
    # "a is more accurate" or "b is more accurate": 5% in all at the nominal level. With 1,000
    # draws a calibrated test lands above 6% about 7% of the time; a test that ignores the seed
    # variation lands near 70%.
    assert np.mean(called) <= 0.06


def test_the_intervals_cover_a_known_difference_as_often_as_they_say(simulated_nulls):
    rng = np.random.default_rng(7)
    shifted = [two_recipes(rng, 5, 0.01) for _ in range(SIMULATIONS)]
    for truth, draws in ((0.0, simulated_nulls), (0.01, shifted)):
        intervals = [significance.accuracy_difference(a, b).interval() for a, b in draws]
        covered = np.mean([i.low <= truth <= i.high for i in intervals])
        assert 0.93 <= covered <= 0.97, (truth, covered)


def test_a_recipes_interval_covers_its_expected_accuracy_at_least_as_often_as_it_says(
    simulated_nulls,
):
    # Welch-Satterthwaite's degrees of freedom, from the estimated variances themselves, covered
    # 92.0-93.8% at three seeds; the seed term's n - 1 errs on the wide side instead.
    rng = np.random.default_rng(17)
    for draws in (simulated_nulls, [two_recipes(rng, 3, 0.0) for _ in range(SIMULATIONS)]):
        intervals = [significance.accuracy(a).interval() for a, _ in draws]
        covered = np.mean([i.low <= EXPECTED_ACCURACY <= i.high for i in intervals])
        assert 0.945 <= covered <= 0.99, (len(draws[0][0]), covered)


def test_the_seed_variation_widens_the_interval_beyond_the_reviews_alone():
    # Five seeds spread 1 point: the interval's half width is near t(4) * 1 / sqrt(5) points,
    # four times what 25,000 reviews alone give (about 0.2 points).
    rng = np.random.default_rng(1)
    a, _ = two_recipes(rng, 5, 0.0)
    interval = significance.accuracy(a).interval()
    per_run_sd = a.mean(axis=1).std(ddof=1)
    expected = 2.776 * np.sqrt(per_run_sd**2 / 5 + a.mean(axis=0).var(ddof=1) / REVIEWS)
    assert (interval.high - interval.low) / 2 == pytest.approx(expected, rel=0.05)
    assert (interval.high - interval.low) / 2 > 0.005


def test_one_network_is_uncertain_over_reviews_only():
    # One classifier right with probability 0.85 on 20,000 reviews: the binomial interval.
    right = (np.random.default_rng(3).random((1, 20_000)) < 0.85).astype(int)
    interval = significance.accuracy(right).interval()
    half = 1.96 * np.sqrt(0.85 * 0.15 / 20_000)
    assert (interval.high - interval.low) / 2 == pytest.approx(half, rel=0.05)
    assert interval.estimate == pytest.approx(right.mean())


def test_roc_auc_is_the_mean_over_seeds_with_delongs_review_term():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, 4_000)
    probabilities = np.clip(labels * 0.3 + rng.random((3, 4_000)) * 0.7, 0, 1)
    auc = significance.roc_auc(labels, probabilities)
    assert auc.value == pytest.approx(np.mean([roc_auc_score(labels, p) for p in probabilities]))
    one = significance.roc_auc(labels, probabilities[:1])
    # DeLong's variance for one classifier: Hanley and McNeil's formula is within a few percent.
    value, positives, negatives = one.value, labels.sum(), (1 - labels).sum()
    q1, q2 = value / (2 - value), 2 * value**2 / (1 + value)
    hanley = (
        value * (1 - value) + (positives - 1) * (q1 - value**2) + (negatives - 1) * (q2 - value**2)
    ) / (positives * negatives)
    assert one.standard_error == pytest.approx(np.sqrt(hanley), rel=0.1)
    interval = auc.interval()
    assert interval.low < auc.value < interval.high < 1


def test_a_clear_difference_is_a_verdict_and_a_small_one_with_tight_runs_is_equivalence():
    rng = np.random.default_rng(11)
    a, b = two_recipes(rng, 10, 0.03)
    [clear] = significance.compare_recipes({"a": a, "b": b}, margin=0.005)
    assert clear.different and not clear.equivalent
    assert clear.probability_a_beats_b > 0.9
    # Same recipe, 30 seeds of 0.1-point spread each: equivalent within half a point.
    chance = np.full(REVIEWS, 0.85)
    same = [
        (rng.random((30, REVIEWS)) < chance + rng.normal(0, 0.001, (30, 1))).astype(np.int8)
        for _ in range(2)
    ]
    [level] = significance.compare_recipes(dict(zip("ab", same, strict=True)), margin=0.005)
    assert level.equivalent and not level.different
    # No evidence either way: five seeds of 1-point spread against a half-point margin.
    a, b = two_recipes(rng, 5, 0.0)
    [unclear] = significance.compare_recipes({"a": a, "b": b}, margin=0.005)
    assert not unclear.equivalent
    assert unclear.largest_hidden_difference > 0.005


def test_fewer_than_three_seeds_give_no_verdict_about_recipes():
    a, b = two_recipes(np.random.default_rng(0), 2, 0.0, reviews=100)
    with pytest.raises(ValueError, match="a, b: fewer than 3 seeds cannot compare recipes"):
        significance.compare_recipes({"a": a, "b": b}, margin=0.005)


def test_pairs_are_corrected_for_their_number():
    rng = np.random.default_rng(12)
    a, b = two_recipes(rng, 4, 0.01)
    _, c = two_recipes(rng, 4, 0.0)
    pairs = significance.compare_recipes({"a": a, "b": b, "c": c}, margin=0.005)
    assert [(p.model_a, p.model_b) for p in pairs] == [("a", "b"), ("a", "c"), ("b", "c")]
    raw = sorted(p.p_value for p in pairs)
    assert sorted(p.adjusted_p_value for p in pairs)[0] == pytest.approx(min(1, 3 * raw[0]))
    for pair in pairs:
        assert pair.adjusted_p_value >= pair.p_value
        assert pair.adjusted_equivalence_p_value >= pair.equivalence_p_value


@pytest.mark.parametrize("p_values", [[0.01, 0.04, 0.03], [0.5, 0.001, 0.2, 0.04], [0.9], []])
def test_holms_correction_is_statsmodels(p_values):
    expected = multipletests(p_values, method="holm")[1] if p_values else []
    assert significance.holm(p_values) == pytest.approx(list(expected))


def test_probability_of_beating_counts_pairs_of_runs_and_ties_a_half():
    assert significance.probability_of_beating(np.array([3, 1]), np.array([2, 2])) == 0.5
    assert significance.probability_of_beating(np.array([2, 3]), np.array([2, 1])) == 0.875


def test_mcnemar_exact_test_on_a_hand_made_table():
    # 10 reviews only a gets right, 2 only b: under "equally likely", P(X <= 2 | n = 12) doubled,
    # (1 + 12 + 66) / 4096 * 2 = 0.0386. The 50 both get right and 8 both get wrong don't count.
    right_a = np.array([1] * 50 + [1] * 10 + [0] * 2 + [0] * 8)
    right_b = np.array([1] * 50 + [0] * 10 + [1] * 2 + [0] * 8)
    assert significance.mcnemar_p_value(right_a, right_b) == pytest.approx(158 / 4096)
    assert significance.mcnemar_p_value(right_b, right_a) == pytest.approx(158 / 4096)
    assert significance.mcnemar_p_value(right_a, right_a) == 1.0
    [pair] = significance.compare_classifiers({"a": right_a, "b": right_b})
    assert (pair.only_a_right, pair.only_b_right, pair.reviews) == (10, 2, 70)
    assert pair.difference == pytest.approx(8 / 70)


@pytest.mark.parametrize(
    ("difference", "seed_sd", "expected"),
    # Two-sample t test, 80% power at 5%: n = 2 (1.96 + 0.84)^2 (sd / difference)^2, plus a
    # seed or so for the t distribution; G*Power gives 17 for an effect size of 1.0 and 64 for
    # 0.5.
    [(0.01, 0.01, 17), (0.005, 0.01, 64)],
)
def test_seeds_needed_matches_the_textbook_two_sample_power(difference, seed_sd, expected):
    assert significance.seeds_needed(difference, seed_sd) == expected


def test_seeds_needed_grows_with_the_review_term_and_gives_up_past_it():
    assert significance.seeds_needed(0.01, 0.01, 1e-6) > significance.seeds_needed(0.01, 0.01)
    # The shared reviews alone leave a standard error of 1 point: no number of seeds finds 0.5.
    assert significance.seeds_needed(0.005, 0.01, 1e-4) is None


def test_promotion_needs_more_than_the_validation_sets_noise():
    # 2,500 validation reviews at 86%: the unpaired standard error of a difference is about
    # sqrt(2 * 0.86 * 0.14 / 2500) = 0.98 points, so it takes 1.645 of those to promote.
    small = significance.promotion(0.865, 2500, 0.860, 2500)
    assert not small.promote
    assert small.needed == pytest.approx(1.645 * np.sqrt(2 * 0.8625 * 0.1375 / 2500), rel=0.02)
    large = significance.promotion(0.885, 2500, 0.860, 2500)
    assert large.promote and large.p_value < 0.05
    assert not significance.promotion(0.84, 2500, 0.86, 2500).promote


def test_at_perfect_accuracy_one_reviews_worth_of_error_keeps_the_test_honest():
    # Both at 100%: no binomial variance; the standard error is one review in 1,000.
    tie = significance.promotion(1.0, 1000, 1.0, 1000)
    assert tie.needed == pytest.approx(1.6449 / 1000, rel=1e-4) and tie.p_value == 0.5
    # 100% against 99.8%: sqrt(0.998 * 0.002 / 1000) = 0.00141 > 1/1000, the variance's own.
    close = significance.promotion(1.0, 1000, 0.998, 1000)
    assert close.p_value == pytest.approx(float(stats.norm.sf(0.002 / 0.0014128)), rel=1e-3)
    assert not close.promote


def welch_power(difference, seed_sd, review_variance, seeds, alpha=0.05):
    """Power of the two-sided Welch test, written out: each recipe's mean over ``seeds`` runs
    has variance seed_sd**2 / seeds on seeds - 1 degrees of freedom; the review term has as
    good as infinitely many."""
    per_recipe = seed_sd**2 / seeds
    variance = 2 * per_recipe + review_variance
    df = variance**2 / (2 * per_recipe**2 / (seeds - 1))
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = difference / np.sqrt(variance)
    return stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)


@pytest.mark.parametrize(
    ("difference", "seed_sd", "review_variance"),
    [(0.01, 0.01, 0.0), (0.01, 0.01, 1e-6), (0.005, 0.004, 2e-6), (0.05, 0.01, 0.0)],
)
def test_seeds_needed_is_the_fewest_seeds_with_enough_power(difference, seed_sd, review_variance):
    needed = significance.seeds_needed(difference, seed_sd, review_variance)
    assert welch_power(difference, seed_sd, review_variance, needed) >= 0.8
    if needed > 2:
        assert welch_power(difference, seed_sd, review_variance, needed - 1) < 0.8


def test_seeds_needed_stops_at_its_bound():
    exactly = significance.seeds_needed(0.01, 0.01)
    assert significance.seeds_needed(0.01, 0.01, most=exactly) == exactly
    assert significance.seeds_needed(0.01, 0.01, most=exactly - 1) is None
    assert significance.seeds_needed(0.2, 0.01) == 2  # Two seeds are the fewest.


def test_a_difference_either_way_gets_the_same_p_value():
    rng = np.random.default_rng(3)
    better = (rng.random((4, 3000)) < 0.86).astype(np.int8)
    worse = (rng.random((4, 3000)) < 0.84).astype(np.int8)
    [ab] = significance.compare_recipes({"a": better, "b": worse}, 0.005)
    [ba] = significance.compare_recipes({"b": worse, "a": better}, 0.005)
    assert (ab.model_a, ab.model_b, ba.model_a, ba.model_b) == ("a", "b", "b", "a")
    assert ab.p_value == pytest.approx(ba.p_value) and ab.p_value < 0.5
    assert ab.difference.value == pytest.approx(-ba.difference.value)


def test_two_networks_are_compared_on_the_reviews_only_one_gets_right():
    a = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 0], bool)
    b = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1, 0], bool)
    [pair] = significance.compare_classifiers({"a": a.astype(np.int8), "b": b.astype(np.int8)})
    assert (pair.model_a, pair.model_b) == ("a", "b")
    assert (pair.only_a_right, pair.only_b_right, pair.reviews) == (5, 1, 10)
    # McNemar's exact test: 1 of 6 discordant reviews, two-sided binomial at one half.
    assert pair.p_value == pytest.approx(2 * (1 + 6) / 2**6)
    assert pair.adjusted_p_value == pytest.approx(pair.p_value)  # One pair: nothing to adjust.
