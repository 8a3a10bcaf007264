"""The one place that knows where the pipeline's files live.

dvc.yaml names the same paths (tests/test_dvc_yaml.py checks that the two agree). All of them
are under the project root, which is where DVC runs every stage.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = PROJECT_ROOT / "params.yaml"

# `dvc exp run --queue` and `--temp` run the stages in a copy of the project under this folder
# and delete it afterwards.
DVC_EXPERIMENT_COPIES = Path(".dvc") / "tmp" / "exps"


def users_project(project_root: Path | None = None) -> Path:
    """The project the user works in: ``project_root`` (by default this one), or, in a DVC
    experiment's temporary copy, the project it was copied from. What lives beside the project
    (the MLflow store, a local copy of the data given by a relative path) is found from here."""
    root = project_root or PROJECT_ROOT
    parts, marker = root.parts, DVC_EXPERIMENT_COPIES.parts
    for index in range(len(parts) - len(marker) + 1):
        if parts[index : index + len(marker)] == marker:
            return Path(*parts[:index])
    return root


# The downloaded archive, kept compressed: prepare streams the reviews out of it.
ARCHIVE = PROJECT_ROOT / "data" / "raw" / "aclImdb.tar.gz"

PREPARED_DIR = PROJECT_ROOT / "data" / "prepared"
TRAIN_SPLIT = PREPARED_DIR / "train.npz"
VALIDATION_SPLIT = PREPARED_DIR / "val.npz"
TEST_SPLIT = PREPARED_DIR / "test.npz"
# One token a line; a token's id is its line number (0 is padding, 1 out-of-vocabulary).
VOCABULARY = PREPARED_DIR / "vocabulary.txt"
# maxlen, padding, truncating, drop_stop_words: with the vocabulary, how to encode a review.
ENCODING_SETTINGS = PREPARED_DIR / "encoding.json"

REPORTS_DIR = PROJECT_ROOT / "reports"
DATA_STATS = REPORTS_DIR / "data" / "stats.json"
# The report: per model and per pair of models, as Markdown (both tables) and CSV; each model's
# mean validation and test accuracy as a DVC metrics file, what `make exp-show` shows.
COMPARISON_TABLE = REPORTS_DIR / "comparison.md"
COMPARISON_CSV = REPORTS_DIR / "comparison.csv"
PAIRS_CSV = REPORTS_DIR / "comparison_pairs.csv"
SUMMARY_METRICS = REPORTS_DIR / "metrics.json"
LEARNING_CURVES_PLOT = REPORTS_DIR / "learning_curves.png"
ROC_CURVES_PLOT = REPORTS_DIR / "roc_curves.png"
TEST_ACCURACY_PLOT = REPORTS_DIR / "test_accuracy.png"


# One training (and evaluation) per model and seed; the folders are named after both.


def _run_folder(name: str, seed: int) -> str:
    return f"{name}/seed-{seed}"


def model_dir(name: str, seed: int) -> Path:
    """Where model ``name`` trained with ``seed`` is kept, with what belongs to it: cached and
    restored with it by DVC."""
    return PROJECT_ROOT / "models" / _run_folder(name, seed)


def model_file(name: str, seed: int) -> Path:
    return model_dir(name, seed) / "model.keras"


def run_id_file(name: str, seed: int) -> Path:
    """The MLflow run that trained the model (evaluate logs into the same run), and its logged
    model. Beside the model, so that it names the run that trained the model in place, also
    after a restore from DVC's run-cache."""
    return model_dir(name, seed) / "mlflow_run.json"


def training_time(name: str, seed: int) -> Path:
    """How long training took and how fast it went: for the report and MLflow, not a DVC
    metric (it differs from run to run, and `dvc metrics diff` would show nothing else)."""
    return model_dir(name, seed) / "training_time.json"


def training_history(name: str, seed: int) -> Path:
    """Per-epoch metrics, a DVC plot."""
    return REPORTS_DIR / "train" / _run_folder(name, seed) / "history.csv"


def training_summary(name: str, seed: int) -> Path:
    """Best epoch, its validation scores, and the model's size: a DVC metrics file."""
    return REPORTS_DIR / "train" / _run_folder(name, seed) / "metrics.json"


def evaluation_metrics(name: str, seed: int) -> Path:
    """Test-set metrics, a DVC metrics file."""
    return REPORTS_DIR / "evaluate" / _run_folder(name, seed) / "metrics.json"


def roc_points(name: str, seed: int) -> Path:
    """The ROC curve on the test set, a DVC plot."""
    return REPORTS_DIR / "evaluate" / _run_folder(name, seed) / "roc.csv"


def evaluation_predictions(name: str, seed: int) -> Path:
    """Every test review's label, predicted label and probability: the report's paired
    statistics and DVC's confusion-matrix plot. Cached by DVC rather than kept in git."""
    return REPORTS_DIR / "evaluate" / _run_folder(name, seed) / "predictions.csv"


def sweep_files(key: str) -> dict[str, Path]:
    """The table (csv, md) and figure (png) of a sweep of the params key ``key``; written by
    ``python -m imdb_sentiment.sweep``, not by a DVC stage."""
    return {suffix: REPORTS_DIR / "sweeps" / f"{key}.{suffix}" for suffix in ("csv", "md", "png")}
