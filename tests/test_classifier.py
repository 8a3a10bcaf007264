"""The raw-text classifier: its fast path for requests gives what Keras' predict gives, to the
last digit, and bad input is a clear error."""

import random

import numpy as np
import pandas as pd
import pytest

from imdb_sentiment import classifier
from imdb_sentiment.classifier import ReviewClassifier
from imdb_sentiment.modeling import build_model, compile_model, load_model
from imdb_sentiment.text import ReviewEncoder, build_vocabulary, tokenize
from tests.conftest import model_params, synthetic_review


@pytest.fixture(scope="module")
def review_classifier() -> ReviewClassifier:
    import keras

    rng = random.Random(0)
    reviews = [synthetic_review(rng, positive=i % 2 == 0) for i in range(50)]
    vocabulary = build_vocabulary([tokenize(review) for review in reviews], num_words=40)
    encoder = ReviewEncoder(tuple(vocabulary), 16, "pre", "pre", drop_stop_words=False)
    keras.utils.set_random_seed(0)
    # Dropout, so that a call in training mode would give other numbers.
    shape = {"embedding_dim": 8, "layers": 2, "units": 8, "dense_units": 8}
    params = model_params("gru", **shape, dropout=0.5, dense_dropout=0.5)
    model = build_model(params, vocabulary_size=40, sequence_length=16)
    # Weights away from the initializers', so that the probabilities spread.
    model.set_weights([np.random.default_rng(1).normal(size=w.shape) for w in model.get_weights()])
    return ReviewClassifier(model, encoder)


@pytest.mark.parametrize("reviews", [1, 7, 64, classifier.PREDICT_BATCH + 5])
def test_requests_of_any_size_get_exactly_what_keras_predict_gives(review_classifier, reviews):
    rng = random.Random(reviews)
    texts = [synthetic_review(rng, positive=rng.random() < 0.5) for _ in range(reviews)]
    token_ids = review_classifier.encoder.encode(texts)
    expected = review_classifier.keras_model.predict(token_ids, batch_size=1024, verbose=0)
    predicted = review_classifier.predict(pd.DataFrame({"text": texts}))
    np.testing.assert_array_equal(predicted["probability"].to_numpy(), expected.ravel())
    if reviews > 1:  # Not a constant that would hide a mismatch.
        assert predicted["probability"].std() > 0.01


def test_a_request_is_served_by_the_compiled_call_not_keras_predict(review_classifier, monkeypatch):
    def no_predict(*args, **kwargs):
        raise AssertionError("Keras' predict ran for a one-review request")

    monkeypatch.setattr(review_classifier.keras_model, "predict", no_predict)
    assert len(review_classifier.predict(pd.DataFrame({"text": ["A great film."]}))) == 1


def test_the_evaluate_stage_scores_each_review_as_the_served_model_does(
    review_classifier, tmp_path
):
    """A model saved as training saves it (compiled with several steps per execution), loaded
    and predicted as the evaluate stage does: the same bits as a request for those reviews."""
    import keras

    trained = keras.models.clone_model(review_classifier.keras_model)
    trained.set_weights(review_classifier.keras_model.get_weights())
    compile_model(trained, 1e-3, steps_per_execution=16)
    trained.save(tmp_path / "model.keras")
    rng = random.Random(1)
    texts = [synthetic_review(rng, positive=rng.random() < 0.5) for _ in range(3000)]
    token_ids = review_classifier.encoder.encode(texts)
    evaluated = load_model(tmp_path / "model.keras").predict(token_ids, batch_size=1024, verbose=0)
    served = [
        review_classifier.predict(pd.DataFrame({"text": texts[start : start + 1000]}))
        for start in range(0, len(texts), 1000)
    ]
    np.testing.assert_array_equal(
        evaluated.ravel(), pd.concat(served)["probability"].to_numpy(dtype=np.float32)
    )


def test_the_model_input_needs_a_text_column_of_non_empty_strings():
    check = classifier.check_reviews
    assert check(pd.DataFrame({"text": ["Good.", "Bad."]})) == ["Good.", "Bad."]
    with pytest.raises(
        classifier.ReviewError, match=r"a 'text' column .* got columns \['review'\]"
    ):
        check(pd.DataFrame({"review": ["Good."]}))
    with pytest.raises(classifier.ReviewError, match=r"rows \[1\] of 'text' are empty"):
        check(pd.DataFrame({"text": ["Good.", "   "]}))
    with pytest.raises(classifier.ReviewError, match=r"rows \[0\] of 'text' are not strings"):
        check(pd.DataFrame({"text": [None, "Bad."]}))
    with pytest.raises(classifier.ReviewError, match="3 reviews in one request; at most 2: split"):
        check(pd.DataFrame({"text": ["Good."] * 3}), max_reviews=2)
    assert len(check(pd.DataFrame({"text": ["Good."] * 3}))) == 3  # No limit unless given.


def test_a_review_is_positive_at_or_above_the_threshold_and_negative_below_it():
    probabilities = np.array([0.55, 0.5, 0.4999, 0.31, 0.3, 0.29])
    assert classifier.classify(probabilities)["label"].tolist() == [
        *("positive", "positive", "negative"),
        *("negative", "negative", "negative"),
    ]
    assert classifier.classify(probabilities, threshold=0.3)["label"].tolist() == [
        *("positive", "positive", "positive"),
        *("positive", "positive", "negative"),
    ]
    assert classifier.classify(probabilities)["probability"].tolist() == probabilities.tolist()


def test_a_classifier_loaded_from_its_files_predicts_what_it_did_when_saved(
    review_classifier, tmp_path
):
    from imdb_sentiment.text import save_encoder

    review_classifier.keras_model.save(tmp_path / "model.keras")
    save_encoder(review_classifier.encoder, tmp_path / "vocabulary.txt", tmp_path / "enc.json")
    loaded = ReviewClassifier.from_files(
        tmp_path / "model.keras", tmp_path / "vocabulary.txt", tmp_path / "enc.json"
    )
    assert loaded.encoder == review_classifier.encoder
    reviews = pd.DataFrame({"text": ["great superb film", "awful dull waste"]})
    pd.testing.assert_frame_equal(loaded.predict(reviews), review_classifier.predict(reviews))
    # Ready for its first request: the compiled call was traced while loading.
    assert "_compiled_call" in vars(loaded)


def test_the_request_limit_lets_exactly_the_limit_through_and_says_how_to_split():
    reviews = pd.DataFrame({"text": ["good", "bad", "fine"]})
    assert classifier.check_reviews(reviews, max_reviews=3) == ["good", "bad", "fine"]
    with pytest.raises(classifier.ReviewError) as raised:
        classifier.check_reviews(reviews, max_reviews=2)
    assert (
        str(raised.value) == "3 reviews in one request; at most 2: split them into several requests"
    )


def test_an_input_that_is_not_a_table_is_refused_naming_what_is_expected():
    with pytest.raises(classifier.ReviewError) as raised:
        classifier.check_reviews(["A great film."])
    assert (
        str(raised.value) == "expected a table with a 'text' column of review texts, got columns []"
    )
