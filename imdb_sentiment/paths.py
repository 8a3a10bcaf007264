"""The one place that knows where the pipeline's files live.

dvc.yaml names the same paths (tests/test_dvc_yaml.py checks that the two agree). All of them
are under the project root, which is where DVC runs every stage.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = PROJECT_ROOT / "params.yaml"

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
COMPARISON_TABLE = REPORTS_DIR / "comparison.md"
COMPARISON_CSV = REPORTS_DIR / "comparison.csv"
LEARNING_CURVES_PLOT = REPORTS_DIR / "learning_curves.png"
ROC_CURVES_PLOT = REPORTS_DIR / "roc_curves.png"
TEST_ACCURACY_PLOT = REPORTS_DIR / "test_accuracy.png"


def model_dir(name: str) -> Path:
    """Where the trained model ``name`` and its MLflow run id are kept (cached by DVC)."""
    return PROJECT_ROOT / "models" / name


def model_file(name: str) -> Path:
    return model_dir(name) / "model.keras"


def run_id_file(name: str) -> Path:
    """The MLflow run that trained ``name`` (evaluate logs into the same run), and its logged
    model. Kept beside the model, and cached and restored with it by DVC, so that it names the
    run that trained the model in place, also after a restore from DVC's run-cache."""
    return model_dir(name) / "mlflow_run.json"


def training_history(name: str) -> Path:
    """Per-epoch metrics of ``name``, a DVC plot."""
    return REPORTS_DIR / "train" / name / "history.csv"


def training_summary(name: str) -> Path:
    """Training time, throughput, best epoch and size of ``name``, a DVC metrics file."""
    return REPORTS_DIR / "train" / name / "metrics.json"


def evaluation_metrics(name: str) -> Path:
    """Test-set metrics of ``name``, a DVC metrics file."""
    return REPORTS_DIR / "evaluate" / name / "metrics.json"


def roc_points(name: str) -> Path:
    """The ROC curve of ``name`` on the test set, a DVC plot."""
    return REPORTS_DIR / "evaluate" / name / "roc.csv"


def evaluation_predictions(name: str) -> Path:
    """Actual and predicted test labels of ``name``, a DVC confusion-matrix plot."""
    return REPORTS_DIR / "evaluate" / name / "predictions.csv"
