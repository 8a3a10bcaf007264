"""Faults end in one clear line, with no traceback, and no MLflow run that tells a lie: a corrupt
model, a full disk while saving, logging or writing to MLflow's database, a seed params.yaml
cannot hold, an empty input file, a store another process holds. On the tiny fixture; the full
disk is a patched write here, and a real one in test_pipeline_failures.py where a mount can be
made."""

from __future__ import annotations

import errno
import logging
import subprocess
import sys

import mlflow
import pytest
import sqlalchemy.exc
import yaml

from imdb_sentiment import cli, paths, predict
from imdb_sentiment.files import write_json
from imdb_sentiment.params import load_params
from imdb_sentiment.tracking import lifecycle
from imdb_sentiment.tracking.busy import TrackingError
from stages import evaluate, train


def run_command(main, argv: list[str], monkeypatch) -> int:
    """Runs an entry point as its command line would (``run_stage``), returning its exit code."""
    monkeypatch.setattr(sys, "argv", ["command", *argv])
    return cli.run_stage(main)


def errors(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


def only_run(name: str = "imdb-rnn-comparison"):
    client = mlflow.MlflowClient()
    [found] = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    return found


def save_untrained_models(names: list[str]) -> None:
    """Each model of ``names`` saved where training would put it, untrained: enough to load."""
    from imdb_sentiment.modeling import build_model
    from imdb_sentiment.text import load_encoder

    project = paths.this_project()
    params = load_params(project.params_file)
    encoder = load_encoder(project.vocabulary, project.encoding_settings)
    for name in names:
        model = build_model(params.model(name), len(encoder.vocabulary), encoder.maxlen)
        project.model_file(name, 42).parent.mkdir(parents=True, exist_ok=True)
        model.save(project.model_file(name, 42))


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def one_epoch() -> None:
    project = paths.this_project()
    raw = yaml.safe_load(project.params_file.read_text())
    raw["train"]["epochs"] = 1
    project.params_file.write_text(yaml.safe_dump(raw))


def test_a_truncated_model_is_one_line_and_the_other_models_still_answer(
    workspace, monkeypatch, caplog, capsys
):
    save_untrained_models(["gru", "lstm"])
    model_file = paths.this_project().model_file("lstm", 42)
    truncate(model_file)
    assert run_command(predict.main, ["A great film."], monkeypatch) == 1
    output = capsys.readouterr()
    assert "gru" in output.out and "lstm" not in output.out  # gru answered.
    assert errors(caplog) == [
        f"{model_file} cannot be loaded, it is corrupt or truncated (ValueError): restore it "
        "with `dvc checkout`, or train it again with `dvc repro`",
        "model lstm could not be loaded (above)",
    ]
    assert "Traceback" not in output.err


def test_evaluating_a_truncated_model_is_one_line_and_fails_its_run(workspace, monkeypatch, caplog):
    save_untrained_models(["lstm"])
    with lifecycle.run("imdb-rnn-comparison") as trained:
        pass
    project = paths.this_project()
    run_file = {"run_id": trained.info.run_id, "model_uri": "models:/m-0"}
    write_json(project.run_id_file("lstm", 42), run_file)
    truncate(project.model_file("lstm", 42))
    assert run_command(evaluate.main, ["lstm", "42"], monkeypatch) == 1
    [message] = errors(caplog)
    assert "model.keras cannot be loaded, it is corrupt or truncated" in message
    assert only_run().info.status == "FAILED"
    assert not project.evaluation_metrics("lstm", 42).exists()


def full_disk(path: str = "") -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", path)


@pytest.mark.parametrize("where", ["saving the model", "logging an artifact"])
def test_a_full_disk_while_training_is_one_line_and_a_failed_run(
    where, workspace, monkeypatch, caplog, capsys
):
    import keras

    one_epoch()
    if where == "saving the model":

        def save(model, filepath, *args, **kwargs):
            raise full_disk(str(filepath))

        monkeypatch.setattr(keras.Model, "save", save)
    else:

        def log_artifact(local_path, *args, **kwargs):
            raise full_disk()

        monkeypatch.setattr(mlflow, "log_artifact", log_artifact)
    assert run_command(train.main, ["gru", "42"], monkeypatch) == 1
    [message] = errors(caplog)
    model_file = paths.this_project().model_file("gru", 42)
    assert message.startswith("no space left on the disk of ")
    assert "MB are free; free space there (`dvc gc --workspace`" in message
    if where == "saving the model":
        # Where, and how much was needed: the weights and the optimizer's two moments.
        assert message.startswith(f"no space left on the disk of {model_file}: about 0.0")
        assert "MB more were needed" in message
    assert "Traceback" not in capsys.readouterr().err
    assert only_run().info.status == "FAILED"
    # Never a half-written model; a whole one when the disk filled after it was saved, which
    # DVC does not record (the stage failed), and the next `dvc repro` trains again.
    assert model_file.exists() == (where == "logging an artifact")
    assert not list(model_file.parent.glob(".model.*"))


def test_a_full_mlflow_database_is_one_line_and_its_run_is_marked_by_the_next_stage(
    workspace, monkeypatch, caplog
):
    one_epoch()
    database_full = sqlalchemy.exc.OperationalError(
        "INSERT INTO metrics …", {}, Exception("database or disk is full")
    )

    def refuse(*args, **kwargs):
        raise database_full

    log_metrics, end_run = mlflow.log_metrics, mlflow.end_run
    monkeypatch.setattr(mlflow, "log_metrics", refuse)
    monkeypatch.setattr(mlflow, "end_run", refuse)
    assert run_command(train.main, ["gru", "42"], monkeypatch) == 1
    store_file = paths.this_project().root / "mlflow.db"
    [message] = errors(caplog)
    assert message.startswith(f"no space left on the disk of {store_file}")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("stays RUNNING" in warning and "next stage" in warning for warning in warnings)
    # The log does not also claim the run ended.
    assert not [r for r in caplog.records if "ended FAILED" in r.getMessage()]
    left = only_run()
    assert left.info.status == "RUNNING"
    # Its process is gone (as a stage's is, after it fails): the next stage marks it.
    monkeypatch.setattr(mlflow, "log_metrics", log_metrics)
    monkeypatch.setattr(mlflow, "end_run", end_run)
    mlflow.MlflowClient().set_tag(left.info.run_id, "pid", "999999999")
    with lifecycle.run("imdb-rnn-comparison"):
        pass
    assert mlflow.MlflowClient().get_run(left.info.run_id).info.status == "FAILED"


def test_a_negative_seed_is_reported_by_its_key_not_by_the_usage_line(workspace):
    project = paths.this_project()
    raw = yaml.safe_load(project.params_file.read_text())
    raw["networks"]["gru--1"] = {"model": "gru", "seed": -1}
    project.params_file.write_text(yaml.safe_dump(raw))
    for stage in (train, evaluate):
        with pytest.raises(cli.StageError, match=r"networks.gru--1.seed: Input should be greater"):
            stage.main(["gru", "-1"])


def test_an_empty_input_file_is_refused_like_an_empty_review(tmp_path, monkeypatch, caplog):
    empty = tmp_path / "reviews.txt"
    empty.write_text("\n  \n")
    assert run_command(predict.main, ["--file", str(empty)], monkeypatch) == 1
    assert errors(caplog) == [
        f"{empty} has no reviews: there is nothing to classify (one review a line, or JSON "
        'lines with a "text" key)'
    ]


# A process that holds the store, as a stage's fork of a warm interpreter does: its command
# line is the server's, and prefork names it after its command.
HOLDER_AS_A_WARM_FORK = (
    "import ctypes, sqlite3, sys, time\n"
    "ctypes.CDLL(None).prctl(15, b'train lstm 42', 0, 0, 0)\n"
    "connection = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "connection.execute('BEGIN EXCLUSIVE')\n"
    "print('held', flush=True)\n"
    "time.sleep(120)\n"
)


# MLflow waits 20 s for a busy SQLite store before it gives up: in the slow tier.
@pytest.mark.e2e
@pytest.mark.parametrize("fork", [False, True], ids=["a command", "a warm fork"])
def test_a_store_held_by_another_process_names_it_and_the_wait(tmp_path, monkeypatch, fork):
    database = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    with lifecycle.run("test"):
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_AS_A_WARM_FORK, str(database)]
        + (["-m", "prefork.server"] if fork else []),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TrackingError) as raised, lifecycle.run("test"):
            pass
    finally:
        holder.kill()
        holder.wait()
        mlflow.set_tracking_uri(None)
    message = str(raised.value)
    named = f"pid {holder.pid} (train lstm 42, a warm fork)" if fork else f"pid {holder.pid} ("
    assert message.startswith(f"the MLflow store {database} is busy (held by {named}")
    assert " waited " in message and "Run again when that process is done" in message
    assert "MLFLOW_TRACKING_URI" not in message  # The store is the project's own, not the user's.
