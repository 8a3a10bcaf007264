import json

import pandas as pd

from imdb_sentiment.classifier import classify
from imdb_sentiment.predict import Review, check_texts, parse_lines, predictions_table


def test_lines_become_reviews_and_blank_lines_are_skipped():
    reviews = parse_lines(b"Great film.\n\n  \nDull.\n", jsonl=False, name="in.txt")
    assert reviews == [Review("in.txt:1", text="Great film."), Review("in.txt:4", text="Dull.")]


def test_a_line_that_is_not_utf8_is_reported_by_line_and_the_others_kept():
    reviews = parse_lines("Good.\nBad \xff line\nFine.".encode("latin-1"), False, "in.txt")
    assert [review.text for review in reviews] == ["Good.", None, "Fine."]
    assert reviews[1].source == "in.txt:2"
    assert "not valid UTF-8" in reviews[1].error and "0xff" in reviews[1].error


def test_json_lines_need_a_text_string():
    data = "\n".join(
        [json.dumps({"text": "Superb."}), "{not json", json.dumps({"review": "x"}), "[1]"]
    )
    reviews = parse_lines(data.encode(), jsonl=True, name="in.jsonl")
    assert reviews[0].text == "Superb."
    assert "not valid JSON" in reviews[1].error
    assert reviews[2].error == reviews[3].error == 'expected a JSON object with a "text" string'


def test_empty_and_whitespace_reviews_are_errors_not_predictions():
    reviews = check_texts([Review("argument 1", text=""), Review("argument 2", text=" \t")])
    assert all(review.error.startswith("empty review") for review in reviews)


def test_the_table_shows_each_models_probability_and_label_per_review():
    predictions = {
        "lstm": classify(pd.Series([0.91, 0.2]).to_numpy()),
        "gru": classify(pd.Series([0.7, 0.45]).to_numpy()),
    }
    table = predictions_table(["A " * 100, "Dull."], predictions)
    assert list(table.columns) == ["review", "lstm", "gru"]
    assert table["lstm"].tolist() == ["0.910 positive", "0.200 negative"]
    assert table["gru"].tolist() == ["0.700 positive", "0.450 negative"]
    assert table["review"][0].endswith("…") and len(table["review"][0]) == 60
