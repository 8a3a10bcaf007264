"""What every entry point shares: a quiet console, and user errors as one clear message.

A normal run prints this project's own lines and Keras' per-epoch lines. Dependencies' chatter
(TensorFlow's C++ log and start-up banner, MLflow's INFO lines and progress bars) is held back
unless ``LOG_LEVEL=DEBUG``, which brings all of it back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator

from imdb_sentiment.errors import StageError

# The loggers of this project's code; every other logger shows warnings and errors only.
PROJECT_LOGGERS = ("__main__", "stages", "imdb_sentiment", "fast_rnn")

logger = logging.getLogger("imdb_sentiment")


def verbose() -> bool:
    """Whether the user asked for everything (``LOG_LEVEL=DEBUG``)."""
    return os.environ.get("LOG_LEVEL", "INFO").upper() == "DEBUG"


def configure_console() -> None:
    """Logging for an entry point: this project's lines at ``LOG_LEVEL`` (INFO by default),
    dependencies' at WARNING, unless ``LOG_LEVEL=DEBUG``."""
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level if verbose() else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if verbose():
        return
    # Read when TensorFlow first logs: its C++ informational lines and the harmless
    # "NodeDef mentions attribute use_unbounded_threadpool" error of tf.data.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # MLflow draws a progress bar for every artifact it downloads, even a local one.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow gives its logger a handler of its own, so the root logger's level does not reach it.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # Its SQL store logs every database error with its whole traceback (a busy or full store:
    # dozens of lines) before raising it; the stage reports the raised error in one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Holds back what C++ code writes to the process's stderr (file descriptor 2), unless
    ``LOG_LEVEL=DEBUG``. Python exceptions still surface: they are raised, not printed."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow() -> None:
    """Imports TensorFlow now, without the two oneDNN lines its C++ side prints when it loads
    (no setting turns them off)."""
    with quiet_stderr():
        import tensorflow  # noqa: F401


def run_stage(main: Callable[[list[str]], None], uses_tensorflow: bool = False) -> int:
    """Runs an entry point's ``main`` with its command-line arguments; returns the exit code.

    Errors a user can fix are printed as one message, without a traceback, and so is a full
    disk, wherever it is met; anything else is a bug and keeps its traceback.
    """
    configure_console()
    try:
        if uses_tensorflow:
            import_tensorflow()
        main(sys.argv[1:])
    except StageError as error:
        logger.error("%s", error)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted; the stage's outputs were left as they were")
        return 130
    except Exception as error:
        from imdb_sentiment.disk import disk_full_from, is_disk_full

        if not is_disk_full(error):
            raise
        logger.debug("The full disk's traceback", exc_info=True)
        logger.error("%s", disk_full_from(error))
        return 1
    return 0
