"""The one place that knows where the pipeline's files live.

dvc.yaml names the same paths (tests/test_dvc_yaml.py checks that the two agree). All of them
are under a project's root, which is where DVC runs every stage. The stages and commands ask
:func:`this_project` for them and hand the library the paths it needs; nothing is fixed at
import, so that a test can point a whole run at a folder of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Copies of the project that stages run in, each under a folder of the project it was copied
# from: `dvc exp run --queue` and `--temp` (DVC's), and a task's workspace of `make run`
# (dask_repro.workspace.WORKSPACES; tests/test_boundaries.py checks that the two agree).
PROJECT_COPIES = (Path(".dvc") / "tmp" / "exps", Path(".dvc") / "tmp" / "dask-repro")


def users_project(project_root: Path) -> Path:
    """The project the user works in: ``project_root``, or, in a copy of the project (a DVC
    experiment's, a task's of ``make run``), the project it was copied from. What lives beside
    the project (the MLflow store, a local copy of the data given by a relative path) is found
    from here."""
    parts = project_root.parts
    for marker in (copies.parts for copies in PROJECT_COPIES):
        for index in range(len(parts) - len(marker) + 1):
            if parts[index : index + len(marker)] == marker:
                return Path(*parts[:index])
    return project_root


@dataclass(frozen=True)
class ProjectFiles:
    """The files of the pipeline in the project rooted at ``root``."""

    root: Path

    @property
    def params_file(self) -> Path:
        return self.root / "params.yaml"

    @property
    def pipeline_file(self) -> Path:
        """dvc.yaml: the stages, what each depends on and writes."""
        return self.root / "dvc.yaml"

    @property
    def lock_file(self) -> Path:
        """dvc.lock: what each stage last ran with, as DVC recorded it."""
        return self.root / "dvc.lock"

    @property
    def users_project(self) -> Path:
        """See :func:`users_project`."""
        return users_project(self.root)

    # The downloaded archive, kept compressed: prepare streams the reviews out of it.
    @property
    def archive(self) -> Path:
        return self.root / "data" / "raw" / "aclImdb.tar.gz"

    @property
    def prepared_dir(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def train_split(self) -> Path:
        return self.prepared_dir / "train.npz"

    @property
    def validation_split(self) -> Path:
        return self.prepared_dir / "val.npz"

    @property
    def test_split(self) -> Path:
        return self.prepared_dir / "test.npz"

    @property
    def vocabulary(self) -> Path:
        """One token a line; a token's id is its line number (0 is padding, 1 unknown)."""
        return self.prepared_dir / "vocabulary.txt"

    @property
    def encoding_settings(self) -> Path:
        """maxlen, padding, truncating, drop_stop_words: with the vocabulary, how to encode a
        review."""
        return self.prepared_dir / "encoding.json"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def data_stats(self) -> Path:
        return self.reports_dir / "data" / "stats.json"

    # The report: per model and per pair of models, as Markdown (both tables) and CSV; every
    # run as a table; each model's mean validation and test accuracy as a DVC metrics file,
    # what `make exp-show` shows; the figures.
    @property
    def comparison_table(self) -> Path:
        return self.reports_dir / "comparison.md"

    @property
    def comparison_csv(self) -> Path:
        return self.reports_dir / "comparison.csv"

    @property
    def pairs_csv(self) -> Path:
        return self.reports_dir / "comparison_pairs.csv"

    @property
    def runs_csv(self) -> Path:
        return self.reports_dir / "runs.csv"

    @property
    def summary_metrics(self) -> Path:
        return self.reports_dir / "metrics.json"

    @property
    def learning_curves_plot(self) -> Path:
        return self.reports_dir / "learning_curves.png"

    @property
    def roc_curves_plot(self) -> Path:
        return self.reports_dir / "roc_curves.png"

    @property
    def test_accuracy_plot(self) -> Path:
        return self.reports_dir / "test_accuracy.png"

    def overlay_plot_data(self, name: str) -> Path:
        """The table behind one of dvc.yaml's overlaid plots (every network in one plot):
        learning_curves, roc or test_accuracy."""
        return self.reports_dir / "plots" / f"{name}.csv"

    # One training (and evaluation) per model and seed; the folders are named after both.

    def model_dir(self, name: str, seed: int) -> Path:
        """Where model ``name`` trained with ``seed`` is kept, with what belongs to it: cached
        and restored with it by DVC."""
        return self.root / "models" / name / f"seed-{seed}"

    def model_file(self, name: str, seed: int) -> Path:
        return self.model_dir(name, seed) / "model.keras"

    def run_id_file(self, name: str, seed: int) -> Path:
        """The MLflow run that trained the model (evaluate logs into the same run), and its
        logged model. Beside the model, so that it names the run that trained the model in
        place, also after a restore from DVC's run-cache."""
        return self.model_dir(name, seed) / "mlflow_run.json"

    def training_time(self, name: str, seed: int) -> Path:
        """How long training took and how fast it went: for the report and MLflow, not a DVC
        metric (it differs from run to run, and `dvc metrics diff` would show nothing
        else)."""
        return self.model_dir(name, seed) / "training_time.json"

    def _reports_of(self, stage: str, name: str, seed: int) -> Path:
        return self.reports_dir / stage / name / f"seed-{seed}"

    def training_history(self, name: str, seed: int) -> Path:
        """Per-epoch metrics, a DVC plot."""
        return self._reports_of("train", name, seed) / "history.csv"

    def training_summary(self, name: str, seed: int) -> Path:
        """Best epoch, its validation scores, and the model's size: a DVC metrics file."""
        return self._reports_of("train", name, seed) / "metrics.json"

    def evaluation_metrics(self, name: str, seed: int) -> Path:
        """Test-set metrics, a DVC metrics file."""
        return self._reports_of("evaluate", name, seed) / "metrics.json"

    def roc_points(self, name: str, seed: int) -> Path:
        """The ROC curve on the test set, a DVC plot."""
        return self._reports_of("evaluate", name, seed) / "roc.csv"

    def evaluation_predictions(self, name: str, seed: int) -> Path:
        """Every test review's class, predicted class and probability: the report's paired
        statistics and DVC's confusion-matrix plot. Cached by DVC rather than kept in git."""
        return self._reports_of("evaluate", name, seed) / "predictions.csv"

    def validation_predictions(self, name: str, seed: int) -> Path:
        """Every validation review's class and probability: the champion's choice and test
        (comparison.champion_decision), also logged to the network's MLflow run."""
        return self._reports_of("evaluate", name, seed) / "val_predictions.csv"

    def sweep_files(self, key: str) -> dict[str, Path]:
        """The table (csv, md) and figure (png) of a sweep of the params key ``key``; written
        by ``python -m imdb_sentiment.sweep``, not by a DVC stage."""
        return {
            suffix: self.reports_dir / "sweeps" / f"{key}.{suffix}"
            for suffix in ("csv", "md", "png")
        }


def this_project() -> ProjectFiles:
    """The files of the project this code is in (DVC runs every stage in its root)."""
    return ProjectFiles(Path(__file__).resolve().parents[1])
