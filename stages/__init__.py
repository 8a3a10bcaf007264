"""The pipeline's stages: thin entry points that DVC runs as ``python -m stages.<name>``.

Run that way, a stage runs in a fork of a warm interpreter that has imported TensorFlow, Keras,
MLflow and the other heavy libraries already (``prefork/``): 8-10 s less per stage on a 2-core
machine, paid once per pipeline run instead of once per stage. The stage's own code is imported
afresh each time. ``PREFORK=0`` runs every stage in a cold interpreter of its own, and so does
``LOG_LEVEL=DEBUG``, which shows everything, the libraries' start-up lines included.
"""

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
