"""What every stage's entry point shares: logging, and user errors as one clear message."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from mlflow.exceptions import MlflowException

from stages.params import ParamsError
from stages.tracking import TrackingError, tracking_uri

logger = logging.getLogger("stages")


class StageError(RuntimeError):
    """A problem the user can fix (bad input, missing file); the message says how."""


def run_stage(main: Callable[[list[str]], None]) -> int:
    """Runs a stage's ``main`` with its command-line arguments and returns the exit code.

    Errors a user can fix are printed as one message, without a traceback; anything else is a
    bug and keeps its traceback.
    """
    # TensorFlow's informational C++ messages (oneDNN, CPU features) drown the stage's own log.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        main(sys.argv[1:])
    except (ParamsError, TrackingError, StageError) as error:
        logger.error("%s", error)
        return 1
    except MlflowException as error:
        # Mostly a tracking store or server that failed mid-stage; the traceback is for DEBUG.
        logger.debug("MLflow error", exc_info=True)
        logger.error("MLflow failed (%s): %s", tracking_uri(), error.message)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted; the stage's outputs were left as they were")
        return 130
    return 0
