"""Past one laptop, with real components on loopback: a shared `mlflow server` on PostgreSQL,
experiments queued in parallel against it, and a DVC remote shared between two clones."""

from __future__ import annotations

import json
import shutil

import mlflow
import pytest

from tests.conftest import make_project, run, run_queued_experiments
from tests.servers import free_port, postgres_database, start_mlflow_server, stop_server

pytestmark = pytest.mark.e2e

EXPERIMENT = "imdb-rnn-comparison"
MODELS = ("simplernn", "lstm", "gru")
# What tells a training run from another when there are more than expected.
SHOWN_TAGS = ("model_name", "dvc_stage", "dvc_exp_name", "pid", "project")


def test_pipeline_and_parallel_experiments_log_to_a_shared_server_on_postgresql(tmp_path):
    import psycopg

    with postgres_database("mlflow", "mlflow-secret", "mlflow") as database_uri:
        server_folder = tmp_path / "server"
        server_folder.mkdir()
        port = free_port()
        server = start_mlflow_server(server_folder, port, backend_store_uri=database_uri)
        uri = f"http://127.0.0.1:{port}"
        try:
            project = make_project(tmp_path)
            shared = {"MLFLOW_TRACKING_URI": uri}
            run(["dvc", "repro"], project, env=shared)
            run(["git", "add", "-A"], project)
            run(["git", "commit", "-qm", "pipeline run"], project)
            status = run_queued_experiments(
                project, {f"gru-{u}": f"models.gru.units={u}" for u in (5, 6)}, env=shared
            )
            assert status.count("Success") >= 2, status

            client = mlflow.MlflowClient(uri)
            experiment = client.get_experiment_by_name(EXPERIMENT)
            train_runs = client.search_runs(
                [experiment.experiment_id], filter_string="tags.pipeline_stage = 'train'"
            )
            # Three models from `dvc repro`, one GRU from each queued experiment.
            seen = [
                " ".join([r.info.status, *(r.data.tags.get(tag, "-") for tag in SHOWN_TAGS)])
                for r in train_runs
            ]
            assert sorted(r.data.tags["model_name"] for r in train_runs) == sorted(
                [*MODELS, "gru", "gru"]
            ), seen
            for train_run in train_runs:
                assert train_run.info.status == "FINISHED"
                assert {"val_loss", "test_accuracy", "test_roc_auc"} <= set(train_run.data.metrics)
                assert len(client.get_metric_history(train_run.info.run_id, "val_loss")) >= 1
            # The MLflow UI and `dvc exp show` name the same experiments.
            tagged = {r.data.tags.get("dvc_exp_name") for r in train_runs} - {None}
            exp_show = json.loads(run(["dvc", "exp", "show", "--json"], project))
            shown = {
                exp["name"]
                for baseline in exp_show
                for experiments in baseline.get("experiments") or []
                for exp in experiments.get("revs", [])
            }
            assert tagged == {"gru-5", "gru-6"} <= shown, (tagged, shown)

            # The logged model comes back through the server's artifact proxy, and predicts.
            logged = json.loads((project / "models/gru/seed-42/mlflow_run.json").read_text())
            mlflow.set_tracking_uri(uri)
            try:
                model = mlflow.pyfunc.load_model(logged["model_uri"])
                import pandas as pd

                predictions = model.predict(pd.DataFrame({"text": ["a great movie"]}))
                assert list(predictions.columns) == ["probability", "label"]
            finally:
                mlflow.set_tracking_uri(None)
            champion = client.get_model_version_by_alias("imdb-sentiment", "champion")
            assert champion.run_id in {r.info.run_id for r in train_runs}
        finally:
            stop_server(server)

        # And it all lives in PostgreSQL, not in a file beside the server.
        assert not list(server_folder.glob("*.db"))
        with psycopg.connect(database_uri) as connection, connection.cursor() as cursor:
            cursor.execute(
                "select count(*) from runs join experiments using (experiment_id) "
                "where experiments.name = %s",
                (EXPERIMENT,),
            )
            [(count,)] = cursor.fetchall()
        assert count >= len(train_runs)


def test_a_clone_pulls_data_and_models_from_the_remote_and_recomputes_nothing(tmp_path):
    project = make_project(tmp_path)
    remote = tmp_path / "dvc-remote"
    run(["dvc", "remote", "add", "--default", "shared", str(remote)], project)
    run(["dvc", "repro"], project)
    run(["dvc", "push"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "pipeline run, outputs pushed"], project)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not (clone / "models/gru/seed-42/model.keras").exists()
    # The clone must not reach back into the first project's cache.
    shutil.rmtree(project / ".dvc/cache")
    run(["dvc", "pull"], clone)
    for model in MODELS:
        pulled = clone / f"models/{model}/seed-42/model.keras"
        assert pulled.read_bytes() == (project / f"models/{model}/seed-42/model.keras").read_bytes()
    assert (clone / "data/prepared/train.npz").is_file()
    output = run(["dvc", "repro"], clone)
    assert "Data and pipelines are up to date." in output, output
    assert not (clone / "mlflow.db").exists()  # Nothing trained, so nothing was logged.


def test_the_remote_tells_what_is_missing_when_nothing_was_pushed(tmp_path):
    project = make_project(tmp_path)
    run(["dvc", "remote", "add", "--default", "shared", str(tmp_path / "empty-remote")], project)
    run(["dvc", "repro", "download"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "downloaded"], project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    output = run(["dvc", "pull"], clone, expect_failure=True)
    assert "missing" in output.lower() or "failed" in output.lower(), output
