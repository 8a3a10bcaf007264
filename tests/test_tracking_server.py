"""The pipeline against an MLflow tracking server that does not answer, or goes away."""

import subprocess
import time

import mlflow
import pytest

from imdb_sentiment import paths
from imdb_sentiment.tracking import records
from imdb_sentiment.tracking.busy import TrackingError
from stages import train
from tests.servers import free_port, start_mlflow_server, stop_server


def test_a_server_that_does_not_answer_fails_the_stage_in_seconds(workspace, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with pytest.raises(TrackingError, match=rf"server {uri} does not answer"):
        train.main(["gru", "42"])
    assert time.monotonic() - started < 10
    assert not paths.this_project().model_file("gru", 42).exists()


# A server, a training and a restart: about 50 s, in the slow tier.
@pytest.mark.e2e
def test_a_server_that_goes_away_mid_run_fails_the_stage_and_its_run_is_ended_later(
    workspace, monkeypatch, tmp_path
):
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    epoch_metrics_callback = records.epoch_metrics_callback

    def callback_that_stops_the_server():
        callback = epoch_metrics_callback()
        logged = callback.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            logged(epoch, logs)
            if server.poll() is None:
                stop_server(server)

        callback.on_epoch_end = on_epoch_end
        return callback

    monkeypatch.setattr(records, "epoch_metrics_callback", callback_that_stops_the_server)
    with pytest.raises(TrackingError, match=rf"MLflow failed \({uri}\)"):
        train.main(["gru", "42"])
    # The stage failed, so DVC does not record it and the next `dvc repro` trains again.
    assert not paths.this_project().run_id_file("gru", 42).exists()

    server = start_mlflow_server(tmp_path, port)
    try:
        client = mlflow.MlflowClient(uri)
        experiment = client.get_experiment_by_name("imdb-rnn-comparison")
        [interrupted] = client.search_runs([experiment.experiment_id])
        assert interrupted.info.status == "RUNNING"  # The server was gone when it ended.
        # Here the stage ran in this test's process; a real stage's process has exited.
        client.set_tag(interrupted.info.run_id, "pid", str(_pid_of_exited_process()))
        monkeypatch.setattr(records, "epoch_metrics_callback", epoch_metrics_callback)
        train.main(["gru", "42"])  # The next run, once the server is back.
        ended = client.get_run(interrupted.info.run_id)
        assert ended.info.status == "FAILED"
        assert ended.data.tags["ended_by"] == "cleanup: its process was gone"
    finally:
        stop_server(server)


def _pid_of_exited_process() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
