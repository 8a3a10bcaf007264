import numpy as np
import pytest

from imdb_sentiment.text import (
    ReviewEncoder,
    build_vocabulary,
    encode,
    load_encoder,
    pad,
    save_encoder,
    tokenize,
    word_ids,
)


def test_tokenize_lowercases_and_drops_html_breaks_and_punctuation():
    review = 'A GREAT film!<br /><br />It\'s the best... (really) "so" good.<br>Ending'
    assert tokenize(review) == [
        "a",
        "great",
        "film",
        "it's",
        "the",
        "best",
        "really",
        "so",
        "good",
        "ending",
    ]


def test_tokenize_of_empty_or_blank_review_is_empty():
    assert tokenize("") == []
    assert tokenize("  <br />  !!! ") == []


def test_vocabulary_starts_with_padding_and_oov_then_most_frequent_with_ties_alphabetical():
    reviews = [["b", "a", "c"], ["c", "b"], ["c", "d"]]
    assert build_vocabulary(reviews, num_words=5) == ["", "[UNK]", "c", "b", "a"]


def test_vocabulary_is_smaller_when_there_are_fewer_words():
    assert build_vocabulary([["x"]], num_words=10) == ["", "[UNK]", "x"]


def test_encode_maps_unknown_words_to_oov_id():
    vocabulary = ["", "[UNK]", "good", "bad"]
    assert encode([["good", "unseen", "bad"], []], word_ids(vocabulary)) == [[2, 1, 3], []]


@pytest.mark.parametrize(
    ("padding", "truncating", "expected"),
    [
        ("pre", "pre", [[0, 0, 1, 2], [3, 4, 5, 6]]),
        ("post", "pre", [[1, 2, 0, 0], [3, 4, 5, 6]]),
        ("pre", "post", [[0, 0, 1, 2], [2, 3, 4, 5]]),
        ("post", "post", [[1, 2, 0, 0], [2, 3, 4, 5]]),
    ],
)
def test_pad_follows_keras_pad_sequences_semantics(padding, truncating, expected):
    # "pre" truncation keeps a review's last tokens, "post" its first ones.
    sequences = [[1, 2], [2, 3, 4, 5, 6]]
    padded = pad(sequences, maxlen=4, padding=padding, truncating=truncating)
    assert padded.dtype == np.int32
    np.testing.assert_array_equal(padded, expected)


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_pad_gives_the_array_keras_pad_sequences_gives(padding, truncating):
    from keras.utils import pad_sequences

    generator = np.random.default_rng(0)
    # Empty, shorter, exactly maxlen and longer sequences.
    sequences = [
        generator.integers(1, 10_000, size=length).tolist()
        for length in [0, 1, 7, 8, 9, 30, *generator.integers(0, 20, size=200)]
    ]
    expected = pad_sequences(
        sequences, maxlen=8, dtype="int32", padding=padding, truncating=truncating, value=0
    )
    padded = pad(sequences, maxlen=8, padding=padding, truncating=truncating)
    assert padded.dtype == expected.dtype
    np.testing.assert_array_equal(padded, expected)


def test_encoder_turns_raw_reviews_into_fixed_length_int_arrays():
    encoder = ReviewEncoder(("", "[UNK]", "good", "film"), 3, "pre", "pre", drop_stop_words=True)
    encoded = encoder.encode(["Good film, the good!", "", "the unknown film"])
    np.testing.assert_array_equal(encoded, [[2, 3, 2], [0, 0, 0], [0, 1, 3]])


def test_encoder_survives_saving_and_loading(tmp_path):
    encoder = ReviewEncoder(("", "[UNK]", "don't", "film"), 7, "post", "pre", False)
    save_encoder(encoder, tmp_path / "vocabulary.txt", tmp_path / "encoding.json")
    assert load_encoder(tmp_path / "vocabulary.txt", tmp_path / "encoding.json") == encoder


def test_dropping_stop_words_keeps_negations_and_degree_words():
    review = "This is not the best film, but it is very moving and I don't regret it."
    assert tokenize(review, drop_stop_words=True) == [
        "not",
        "best",
        "film",
        "but",
        "very",
        "moving",
        "don't",
        "regret",
    ]
