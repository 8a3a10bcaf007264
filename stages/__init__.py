"""The pipeline's stages: thin entry points that DVC runs as ``python -m stages.<name>``.

Run that way, a stage runs in a fork of a warm interpreter that has imported TensorFlow, Keras,
MLflow and the other heavy libraries already (``prefork/``): 8-10 s less per stage on a 2-core
machine, paid once per pipeline run instead of once per stage. The stage's own code is imported
afresh each time. ``PREFORK=0`` runs every stage in a cold interpreter of its own, and so does
``LOG_LEVEL=DEBUG``, which shows everything, the libraries' start-up lines included.
"""

import logging

import prefork
from imdb_sentiment import cli

# What the stages import that takes seconds to load, and no code of this project.
HEAVY_LIBRARIES = (
    "tensorflow",
    "keras",
    "mlflow",
    "pandas",
    "scipy.stats",
    "sklearn.feature_extraction.text",
    # MLflow's SQLite store, the default tracking store: MLflow imports it at the first call
    # that reads or writes a run, about 1 s of every training, evaluation and report stage.
    "mlflow.store.tracking.sqlalchemy_store",
)

if not cli.verbose():
    # configure_console first: the warm interpreter imports the libraries in the environment
    # the stages set for them (TensorFlow reads its log level once).
    prefork.delegate(HEAVY_LIBRARIES, prepare=cli.configure_console)


def stop_warm_interpreter() -> None:
    """Stops the warm interpreter that this project's stages would run in, here and now
    (`make stop-warm`); others (another checkout's, another environment's) are left alone."""
    pid = prefork.stop(HEAVY_LIBRARIES, prepare=cli.configure_console)
    logger = logging.getLogger("stages")
    logger.info(f"Stopped the warm interpreter (pid {pid})" if pid else "No warm interpreter runs")
