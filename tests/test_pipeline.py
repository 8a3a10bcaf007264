"""End to end: `dvc repro` on a copy of the project, with a tiny archive and tiny params.

One module-scoped pipeline run (about a minute) serves all the tests here. What the first run
wrote is kept aside (``first_run``), so that each test reads the state it is about, whichever
tests ran before it; the tests of a change (lstm's units there and back, temporary
experiments) ask for fixtures that make it, so each test also runs alone (`pytest path::test`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.conftest import (
    PROJECT_ROOT,
    make_project,
    run,
    set_params,
    start_warm_interpreter,
    tiny_params,
    warm_interpreter_folder,
)

pytestmark = pytest.mark.e2e

MODELS = ("simplernn", "lstm", "gru")
POSITIVE_REVIEW = "A wonderful, moving film: superb actor, brilliant story. Loved it!"
NEGATIVE_REVIEW = "An awful, boring film: terrible plot, dull ending. A waste, hated it."


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A git + DVC copy of the project whose `dvc repro` has run once on the tiny archive,
    every stage of it in a fork of a warm interpreter of this module's own."""
    project = make_project(tmp_path_factory.mktemp("pipeline"))
    # A sample of the machine's use every second: the tiny trainings take a few seconds.
    with warm_interpreter_folder("pl") as folder:
        first_run_env = {"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1", "TMPDIR": folder}
        # Up before the run, so that its first training stage is warm too, whether or not an
        # earlier test left one.
        start_warm_interpreter(project, first_run_env)
        output = run(["dvc", "repro"], project, env=first_run_env)
    (project / "first_repro.log").write_text(output)
    # What the first run wrote, to compare with what DVC restores later.
    shutil.copytree(project / "models", project.parent / "first_run/models")
    shutil.copytree(project / "reports", project.parent / "first_run/reports")
    return project


def first_run(project: Path) -> Path:
    return project.parent / "first_run"


@pytest.fixture(scope="module")
def units_round_trip(project) -> dict:
    """lstm's units changed to 6 and `dvc repro`, then back and `dvc repro` again: each run's
    output and the training runs after it."""
    trained_before = training_runs(project)
    set_params(
        project, {"models": {**tiny_params()["models"], "lstm": {"cell": "lstm", "units": 6}}}
    )
    changed = run(["dvc", "repro"], project)
    trained_after_change = training_runs(project)
    set_params(project, {"models": tiny_params()["models"]})
    restored = run(["dvc", "repro"], project)
    return {
        "trained_before": trained_before,
        "changed": changed,
        "trained_after_change": trained_after_change,
        "restored": restored,
        "trained_after_restore": training_runs(project),
    }


@pytest.fixture(scope="module")
def temporary_experiments(project) -> None:
    """Two `dvc exp run --temp` experiments, as a user would run them: models.gru.units=5
    ("wider-gru") and train.learning_rate=0.03 ("faster"), from a commit of the project."""
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "the first run"], project)
    run(["dvc", "exp", "run", "--temp", "-n", "wider-gru", "-S", "models.gru.units=5"], project)
    run(["dvc", "exp", "run", "--temp", "-n", "faster", "-S", "train.learning_rate=0.03"], project)


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def tracking_client(project: Path) -> mlflow.MlflowClient:
    # The default store: mlflow.db in the project root, as `mlflow ui` there opens it.
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def training_runs(project: Path):
    client = tracking_client(project)
    experiment = client.get_experiment_by_name("imdb-rnn-comparison")
    return client.search_runs(
        [experiment.experiment_id], filter_string="tags.pipeline_stage = 'train'"
    )


def test_repro_writes_every_output(project):
    for name in MODELS:
        assert (project / f"models/{name}/seed-42/model.keras").is_file()
        assert (project / f"reports/evaluate/{name}/seed-42/roc.csv").is_file()
    for report in (
        "comparison.md",
        "comparison.csv",
        "comparison_pairs.csv",
        "metrics.json",
        "learning_curves.png",
        "roc_curves.png",
        "test_accuracy.png",
    ):
        assert (project / "reports" / report).stat().st_size > 0
    stats = json.loads((project / "reports/data/stats.json").read_text())
    assert (stats["train"]["reviews"], stats["val"]["reviews"], stats["test"]["reviews"]) == (
        240,
        60,
        300,
    )
    assert "mlflow.db" not in run(["git", "status", "--porcelain"], project)


def test_a_normal_run_prints_no_warning_or_error(project):
    # Dependencies' warnings are fixed at their cause or held back (LOG_LEVEL=DEBUG shows them).
    output = (project / "first_repro.log").read_text()
    noisy = [line for line in output.splitlines() if re.search("warn|error|traceback", line, re.I)]
    assert not noisy, "\n".join(noisy)
    assert "Epoch 1/" in output  # Keras' per-epoch lines stay.


def test_every_model_learns_better_than_chance(project):
    for name in MODELS:
        metrics = json.loads(
            (project / f"reports/evaluate/{name}/seed-42/metrics.json").read_text()
        )
        assert metrics["accuracy"] > 0.7, (name, metrics)
        assert metrics["roc_auc"] > 0.8, (name, metrics)


def test_dvc_shows_metrics_and_plots(project):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project))
    metrics_files = next(iter(shown.values()))["data"]
    assert "reports/evaluate/lstm/seed-42/metrics.json" in metrics_files
    assert "reports/train/gru/seed-42/metrics.json" in metrics_files
    assert set(metrics_files["reports/metrics.json"]["data"]["test"]) == set(MODELS)
    run(["dvc", "plots", "show", "-o", "dvc_plots"], project)
    assert (project / "dvc_plots" / "index.html").is_file()
    # The overlaid plots hold every network, coloured by model.
    plotted = json.loads(run(["dvc", "plots", "show", "--json"], project))["data"]
    for title in (
        "Validation accuracy per epoch, every network",
        "ROC on the test set, every network",
        "Test accuracy of each network, by its seed's place in params.yaml",
    ):
        [plot] = plotted[title]
        values = plot["content"]["data"]["values"]
        assert {value["network"] for value in values} == {f"{m}-42" for m in MODELS}, title
        assert plot["content"]["encoding"]["color"]["field"] == "model"


def test_mlflow_records_training_and_test_metrics_in_one_run_per_model(project):
    client = tracking_client(project)
    runs = {run.data.tags["model_name"]: run for run in training_runs(project)}
    assert sorted(runs) == sorted(MODELS)
    for name, run_ in runs.items():
        assert run_.info.status == "FINISHED"
        assert run_.data.params["units"] == "8"
        assert run_.data.params["data_maxlen"] == "24"
        assert run_.data.tags["dvc_stage"] == f"train@{name}-42"
        assert (run_.data.tags["seed"], run_.data.params["seed"]) == ("42", "42")
        assert "git_commit" in run_.data.tags
        epochs_run = int(run_.data.metrics["epochs_run"])
        history = client.get_metric_history(run_.info.run_id, "val_loss")
        assert [metric.step for metric in history] == list(range(epochs_run))
        for metric in ("test_accuracy", "test_roc_auc", "test_f1", "test_loss"):
            assert metric in run_.data.metrics
        artifacts = {artifact.path for artifact in client.list_artifacts(run_.info.run_id)}
        assert {"history.csv", "learning_curves.png", "test_roc.png"} <= artifacts
        datasets = {entry.dataset.name: entry for entry in run_.inputs.dataset_inputs}
        assert set(datasets) == {
            "imdb-training",
            "imdb-validation",
            "imdb-test",  # Logged by the evaluation, into the same run.
        }
        # Each dataset names the DVC hash of the file it was read from, and the commit.
        test_set_tags = {tag.key: tag.value for tag in datasets["imdb-test"].tags}
        test_file = project / "data/prepared/test.npz"
        assert test_set_tags["dvc_path"] == "data/prepared/test.npz"
        assert test_set_tags["dvc_md5"] == hashlib.md5(test_file.read_bytes()).hexdigest()
        assert test_set_tags["git_commit"] == run_.data.tags["git_commit"]
        # MLflow's own system metrics, sampled while the model trained.
        assert "system/cpu_utilization_percentage" in run_.data.metrics
        assert "system/system_memory_usage_megabytes" in run_.data.metrics
        recorded = json.loads((project / f"models/{name}/seed-42/mlflow_run.json").read_text())
        assert recorded["run_id"] == run_.info.run_id


def test_each_run_logs_a_model_that_takes_raw_text(project):
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    run_ = next(r for r in training_runs(project) if r.data.tags["model_name"] == "gru")
    [logged] = mlflow.search_logged_models(
        experiment_ids=[run_.info.experiment_id],
        filter_string=f"source_run_id = '{run_.info.run_id}'",
        output_format="list",
    )
    assert logged.artifact_location.startswith((project / "mlartifacts").as_uri())
    model = mlflow.pyfunc.load_model(logged.model_uri)
    [column] = model.metadata.get_input_schema().inputs
    assert (column.name, column.type.name) == ("text", "string")
    predictions = model.predict(pd.DataFrame({"text": [POSITIVE_REVIEW, NEGATIVE_REVIEW]}))
    assert list(predictions.columns) == ["probability", "label"]
    assert predictions["probability"][0] > predictions["probability"][1]
    # The evaluation's test metrics are linked to the logged model, with the test set.
    linked = {metric.key: metric for metric in logged.metrics}
    assert linked["test_accuracy"].value == pytest.approx(run_.data.metrics["test_accuracy"])
    assert linked["test_accuracy"].dataset_name == "imdb-test"


def test_the_champion_is_the_best_network_on_the_choosing_half_of_validation(project):
    client = tracking_client(project)
    champion = client.get_model_version_by_alias("imdb-sentiment", "champion")
    choosing = {}
    for name in MODELS:  # params.yaml's order: a tie goes to the first.
        table = pd.read_csv(
            first_run(project) / f"reports/evaluate/{name}/seed-42/val_predictions.csv"
        )
        right = (table["probability"] >= 0.5).astype(int) == table["actual"]
        choosing[name] = right.iloc[::2].mean()
    best = max(choosing, key=choosing.get)
    runs = pd.read_csv(project / "reports/runs.csv").set_index("model")
    assert champion.tags["pipeline_model"] == best
    assert (champion.tags["seed"], champion.tags["source_run_id"]) == (
        "42", runs.loc[best, "mlflow_run_id"]
    )  # fmt: skip
    assert float(champion.tags["test_accuracy"]) == pytest.approx(
        runs.loc[best, "test_accuracy"], abs=1e-5
    )
    # Its validation predictions, kept with its run, for the next candidate's paired test.
    kept = client.download_artifacts(champion.tags["source_run_id"], "val_predictions.csv")
    assert len(pd.read_csv(kept)) == 60


def test_the_default_single_seed_report_makes_no_claim_about_the_recipes(project):
    report = (first_run(project) / "reports/comparison.md").read_text()
    assert "One seed cannot compare the recipes" in report
    assert "freshly trained" not in report
    assert "This is about these two networks" in report
    assert "assumed: report.planning_seed_sd" in report
    # The first report has no champion to beat.
    assert report.rstrip().endswith("becomes the champion: there was none.")
    pairs = pd.read_csv(first_run(project) / "reports/comparison_pairs.csv")
    assert set(pairs["about"]) == {"networks"}


def test_predict_cli_scores_reviews_with_every_trained_model(project):
    output = run(
        ["python", "-m", "imdb_sentiment.predict", "--json", POSITIVE_REVIEW, NEGATIVE_REVIEW],
        project,
    )
    positive, negative = (json.loads(line) for line in output.splitlines() if line.startswith("{"))
    assert set(positive["predictions"]) == set(MODELS)
    for name in MODELS:
        assert positive["predictions"][name]["label"] == "positive"
        assert negative["predictions"][name]["label"] == "negative"


def test_predict_cli_explains_what_it_cannot_do(project):
    unknown = run(
        ["python", "-m", "imdb_sentiment.predict", "--model", "bert", "Fine."], project, True
    )
    assert "model 'bert' is not in params.yaml's models; trained models: simplernn" in unknown
    reviews = project.parent / "reviews.txt"
    reviews.write_bytes(b"great superb film\n\xff\xfe broken\n")
    mixed = run(["python", "-m", "imdb_sentiment.predict", "--file", str(reviews)], project, True)
    assert "reviews.txt:2: not valid UTF-8" in mixed
    assert "1 of 2 reviews not classified" in mixed
    assert "positive" in mixed  # The good line was still classified.
    assert "Traceback" not in unknown + mixed


def test_the_report_is_a_run_that_names_the_runs_it_compares(project):
    client = tracking_client(project)
    experiment = client.get_experiment_by_name("imdb-rnn-comparison")
    [report] = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.pipeline_stage = 'report'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    compared = set(report.data.tags["compared_runs"].split(","))
    trained = {
        json.loads((first_run(project) / f"models/{name}/seed-42/mlflow_run.json").read_text())[
            "run_id"
        ]
        for name in MODELS
    }
    assert compared == trained


def test_changing_one_models_units_retrains_only_that_model(units_round_trip):
    assert stages_run(units_round_trip["changed"]) == {
        "train@lstm-42",
        "evaluate@lstm-42",
        "report",
    }
    runs_before, new_runs = (
        units_round_trip["trained_before"],
        units_round_trip["trained_after_change"],
    )
    assert len(new_runs) == len(runs_before) + 1
    assert new_runs[0].data.tags["model_name"] == "lstm"
    assert new_runs[0].data.params["units"] == "6"


LSTM_OUTPUTS = [
    "models/lstm/seed-42/model.keras",
    "models/lstm/seed-42/mlflow_run.json",
    "reports/train/lstm/seed-42/history.csv",
    "reports/train/lstm/seed-42/metrics.json",
    "reports/evaluate/lstm/seed-42/metrics.json",
    "reports/evaluate/lstm/seed-42/roc.csv",
    "reports/evaluate/lstm/seed-42/predictions.csv",
]


def test_going_back_to_params_trained_before_restores_them_from_the_run_cache(
    project, units_round_trip
):
    output = units_round_trip["restored"]
    assert stages_run(output) == {"report"}, output
    for stage in ("train@lstm-42", "evaluate@lstm-42"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in output
    # No training, no new MLflow run.
    assert len(units_round_trip["trained_after_restore"]) == len(
        units_round_trip["trained_after_change"]
    )
    for output_file in LSTM_OUTPUTS:
        restored = (project / output_file).read_bytes()
        assert restored == (first_run(project) / output_file).read_bytes(), output_file
    # The restored link names the run that trained the restored model, and it is still there.
    recorded = json.loads((project / "models/lstm/seed-42/mlflow_run.json").read_text())
    trained = tracking_client(project).get_run(recorded["run_id"])
    assert (trained.data.params["units"], trained.info.status) == ("8", "FINISHED")


def test_the_champion_moves_only_to_a_better_model(project, units_round_trip):
    # The report has seen a retrained and a restored lstm.
    client = tracking_client(project)
    versions = client.search_model_versions("name = 'imdb-sentiment'")
    champion = client.get_model_version_by_alias("imdb-sentiment", "champion")
    # Every version says on which validation split it was scored, so that the next candidate
    # is tested against it review by review (champion.py).
    for version in versions:
        assert version.tags["val_reviews"] == "60" and len(version.tags["val_split_md5"]) == 32
    assert champion.version == max(version.version for version in versions)
    report = client.search_runs(
        [client.get_experiment_by_name("imdb-rnn-comparison").experiment_id],
        filter_string="tags.pipeline_stage = 'report'",
        max_results=1,
    )[0]
    decision = report.data.tags["champion_decision"]
    assert decision.startswith(("The champion stays", report.data.tags["best_model"]))
    if "the same training run" not in decision:
        assert "review by review (McNemar's exact one-sided p = " in decision


def test_runs_of_a_temporary_dvc_experiment_land_in_the_projects_store(
    project, temporary_experiments
):
    # `dvc exp run --temp` runs the stages in a copy under .dvc/tmp/exps, deleted afterwards.
    [gru_run] = [
        run_ for run_ in training_runs(project) if run_.data.tags.get("dvc_exp_name") == "wider-gru"
    ]
    assert gru_run.data.tags["model_name"] == "gru"
    assert gru_run.data.params["units"] == "5"
    assert (
        gru_run.data.tags["dvc_exp_baseline_rev"]
        == run(["git", "rev-parse", "HEAD"], project).strip()
    )
    assert "test_accuracy" in gru_run.data.metrics
    assert ".dvc/tmp" not in gru_run.info.artifact_uri


def test_the_readmes_experiment_table_fits_a_terminal_and_shows_what_changed(
    project, temporary_experiments
):
    recipe = (PROJECT_ROOT / "Makefile").read_text().split("\nexp-show:", 1)[1]
    command = recipe.splitlines()[1].strip().replace("$$", "$")
    assert command.startswith("dvc exp show")
    table = run(["sh", "-c", command], project, env={"COLUMNS": "160"})
    lines = [line for line in table.splitlines() if line.strip()]
    assert max(map(len, lines)) <= 160, table
    assert "…" not in table, table  # No column squeezed out.
    header = lines[1].split()
    for model in MODELS:
        assert {f"val.{model}", f"test.{model}"} <= set(header), table
    # What changed, and nothing else.
    assert {"models.gru.units", "train.learning_rate"} <= set(header), table
    assert "train.units" not in header and "Created" not in header
    assert "wider-gru" in table and "faster" in table
