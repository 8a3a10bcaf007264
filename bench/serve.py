"""Load on the served champion: `mlflow models serve` of ``models:/<name>@champion`` on a
loopback port, driven by a bounded number of requests at several concurrencies and batch sizes.
Not a test: it prints numbers.

    python bench/serve.py                           # in-process, then 1 and 2 server workers
    python bench/serve.py --workers 2 --requests 3000

Needs a champion in the project's MLflow store (`dvc repro`) and the archive (real reviews to
send). Each scenario is some clients, each sending its next request as soon as its last one is
answered, until the scenario's requests are done; the table shows requests and reviews per
second, the median and 99th percentile latency, and the errors (an answer other than HTTP 200
with one prediction per review). The server the script starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from imdb_sentiment import paths  # noqa: E402
from imdb_sentiment.params import load_params  # noqa: E402

# (clients, reviews per request), and how many requests each scenario sends by default.
SCENARIOS = ((1, 1), (16, 1), (8, 64))
REQUESTS = {1: 2000, 64: 400}


def start_server(model_uri: str, port: int, workers: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            *("mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"mlflow models serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return server
        except OSError:
            time.sleep(1)
    stop_server(server)
    raise SystemExit("mlflow models serve did not answer within 300 s")


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=60)


def payloads(reviews: list[str], batch: int, count: int = 200) -> list[bytes]:
    """Request bodies of ``batch`` reviews each, built before the clock starts."""
    rng = random.Random(batch)
    return [
        json.dumps(
            {"dataframe_records": [{"text": t} for t in rng.sample(reviews, batch)]}
        ).encode()
        for _ in range(count)
    ]


async def drive(url: str, clients: int, bodies: list[bytes], batch: int, requests: int) -> dict:
    import aiohttp

    latencies, errors, sent = [], 0, 0

    async def post(session, body) -> bool:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            answer = await response.read()
        return response.status == 200 and len(json.loads(answer)["predictions"]) == batch

    async def client(session):
        nonlocal errors, sent
        while sent < requests:
            body = bodies[sent % len(bodies)]
            sent += 1
            started = time.perf_counter()
            try:
                ok = await post(session, body)
            except (aiohttp.ClientError, ValueError, KeyError):
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    timeout = aiohttp.ClientTimeout(total=120)
    # A client is one keep-alive connection, and a server worker keeps the connections it
    # accepts. Opened all at once, they can all land on one worker; opened one after another
    # (each with an untimed first request, before the clock starts), they spread over the
    # workers as independent users' would.
    sessions = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), timeout=timeout)
        for _ in range(clients)
    ]
    try:
        for session in sessions:
            await post(session, bodies[0])
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for session in sessions))
        seconds = time.perf_counter() - started
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
    milliseconds = sorted(1000 * latency for latency in latencies)
    return {
        "requests": len(latencies),
        "requests/s": len(latencies) / seconds,
        "reviews/s": len(latencies) * batch / seconds,
        "p50 ms": statistics.median(milliseconds),
        "p99 ms": milliseconds[min(len(milliseconds) - 1, int(0.99 * len(milliseconds)))],
        "errors": errors,
    }


def in_process_milliseconds(model_uri: str, reviews: list[str], calls: int = 300) -> dict:
    """The champion loaded in this process: median and 99th percentile milliseconds of
    ``predict`` on one review, after a warm-up."""
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    frames = [pd.DataFrame({"text": [review]}) for review in reviews[:calls]]
    for frame in frames[:10]:
        model.predict(frame)
    milliseconds = []
    for frame in frames:
        started = time.perf_counter()
        model.predict(frame)
        milliseconds.append(1000 * (time.perf_counter() - started))
    milliseconds.sort()
    return {"p50 ms": statistics.median(milliseconds), "p99 ms": milliseconds[int(0.99 * calls)]}


def test_reviews(count: int = 2000) -> list[str]:
    """Real reviews: a seeded sample of the archive's test reviews."""
    from imdb_sentiment.dataset import read_archive

    splits, _ = read_archive(paths.this_project().archive)
    return random.Random(0).sample(splits["test"].texts, count)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="server workers to try, comma-separated")
    parser.add_argument("--model", help="model URI to serve (default: the registry's champion)")
    parser.add_argument("--requests", type=int, help="per scenario (default: 2000, 400 of 64)")
    arguments = parser.parse_args()
    if not paths.this_project().archive.is_file():
        raise SystemExit("no archive: run `dvc repro download` first")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    name = load_params(paths.this_project().params_file).report.registered_model_name
    model_uri = arguments.model or f"models:/{name}@champion"
    reviews = test_reviews()
    # In a child process, so that TensorFlow and the model stay out of this one (the client's).
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); import serve; "
        f"print(json.dumps(serve.in_process_milliseconds({model_uri!r}, serve.test_reviews())))"
    )
    measured = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    in_process = json.loads(measured.stdout.splitlines()[-1])
    sys.stdout.write(
        "In-process, mlflow.pyfunc.load_model(...).predict of one review: "
        f"median {in_process['p50 ms']:.2f} ms, 99th percentile {in_process['p99 ms']:.2f} ms\n"
    )
    rows = []
    for workers in map(int, arguments.workers.split(",")):
        port = _free_port()
        server = start_server(model_uri, port, workers)
        url = f"http://127.0.0.1:{port}/invocations"
        try:
            # Warm-up: every worker loads its model and traces its first call.
            asyncio.run(drive(url, 4 * workers, payloads(reviews, 1, 8), 1, 40 * workers))
            for clients, batch in SCENARIOS:
                requests = arguments.requests or REQUESTS[batch]
                measured = asyncio.run(
                    drive(url, clients, payloads(reviews, batch), batch, requests)
                )
                rows.append(
                    {"workers": workers, "clients": clients, "reviews/request": batch, **measured}
                )
                sys.stdout.write(f"{rows[-1]}\n")
                sys.stdout.flush()
        finally:
            stop_server(server)
    table = pd.DataFrame(rows)
    sys.stdout.write(
        "\n"
        + table.to_string(
            index=False,
            formatters={
                "requests/s": "{:.1f}".format,
                "reviews/s": "{:,.0f}".format,
                "p50 ms": "{:.1f}".format,
                "p99 ms": "{:.1f}".format,
            },
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
