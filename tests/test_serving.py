"""The champion served by `mlflow models serve` on loopback: raw reviews in, probabilities out;
bad requests get a 4xx and a message, large valid ones are served, while other clients keep
being answered and the server's memory stays bounded."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request

import psutil
import pytest

from imdb_sentiment.classifier import MAX_REVIEWS_PER_REQUEST
from tests.conftest import environment, make_project, run
from tests.servers import free_port, stop_server, wait_until_up

pytestmark = pytest.mark.e2e

POSITIVE_REVIEW = "A wonderful, moving film: superb actor, brilliant story. Loved it!"
NEGATIVE_REVIEW = "An awful, boring film: terrible plot, dull ending. A waste, hated it."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow models serve` of the champion of a tiny project's pipeline run; yields it and
    its invocations URL."""
    project = make_project(tmp_path_factory.mktemp("serving"))
    run(["dvc", "repro"], project)
    port = free_port()
    served = subprocess.Popen(
        [
            *("mlflow", "models", "serve", "-m", "models:/imdb-sentiment@champion"),
            *("--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)),
        ],
        cwd=project,
        env={**environment(), "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_until_up(f"http://127.0.0.1:{port}/ping", served, timeout_seconds=180)
    yield served, f"http://127.0.0.1:{port}/invocations"
    stop_server(served)


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def reviews(texts: list[str]) -> bytes:
    return json.dumps({"dataframe_records": [{"text": text} for text in texts]}).encode()


def test_the_champion_answers_raw_reviews(server):
    _, url = server
    status, answer = post(url, reviews([POSITIVE_REVIEW, NEGATIVE_REVIEW]))
    assert status == 200, answer
    positive, negative = json.loads(answer)["predictions"]
    assert positive["probability"] > negative["probability"]
    assert (positive["label"], negative["label"]) == ("positive", "negative")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (reviews(["   "]), "application/json", 400, "empty: there is nothing to classify"),
        (b'{"dataframe_records": [{"text": "Good."', "application/json", 400, "JSON"),
        (b"Good film.", "text/plain", 415, "content types"),
        (
            reviews(["Good."] * (MAX_REVIEWS_PER_REQUEST + 1)),
            "application/json",
            400,
            "at most 10,000: split them into several requests",
        ),
    ],
    ids=["empty review", "malformed JSON", "wrong content type", "too many reviews"],
)
def test_a_bad_request_gets_a_4xx_with_a_message(server, body, content_type, status, message):
    _, url = server
    answered_status, answer = post(url, body, content_type)
    assert answered_status == status, answer
    assert message in answer


def _memory_mb(process: psutil.Process) -> float:
    tree = [process, *process.children(recursive=True)]
    return sum(member.memory_info().rss for member in tree) / 1e6


def test_large_valid_requests_are_served_while_other_clients_are_answered(server):
    served, url = server
    good, stop = [], threading.Event()

    def another_client():
        while not stop.is_set():
            started = time.monotonic()
            status, _ = post(url, reviews([POSITIVE_REVIEW]))
            good.append((status, time.monotonic() - started))

    clients = [threading.Thread(target=another_client) for _ in range(2)]
    for client in clients:
        client.start()
    process, memory = psutil.Process(served.pid), []
    try:
        large = {
            # About 5 MB of reviews of 2 KB each.
            "a body of several MB": [POSITIVE_REVIEW * 30] * 2_500,
            "the most reviews a request may hold": [NEGATIVE_REVIEW] * MAX_REVIEWS_PER_REQUEST,
            "a review of 1 MB": [" ".join([POSITIVE_REVIEW] * 15_000)],
        }
        for case, texts in large.items():
            status, answer = post(url, reviews(texts))
            assert status == 200, (case, answer[:500])
            assert len(json.loads(answer)["predictions"]) == len(texts), case
            memory.append(_memory_mb(process))
        # The same large request again: memory settles instead of growing with every request.
        for _ in range(2):
            status, _ = post(url, reviews(large["the most reviews a request may hold"]))
            assert status == 200
            memory.append(_memory_mb(process))
    finally:
        stop.set()
        for client in clients:
            client.join()
    assert len(good) > 10 and all(status == 200 for status, _ in good), good
    assert max(seconds for _, seconds in good) < 30
    assert max(memory) < 3_000, memory
    assert memory[-1] - memory[-2] < 200, memory
