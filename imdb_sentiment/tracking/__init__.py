"""Everything that talks to MLflow, one module per job; no other part of the project imports
mlflow.

- ``store``: which store the runs go to, and its experiment.
- ``lifecycle``: a stage's run, opened and always closed with a status that tells the truth.
- ``cleanup``: runs that other processes left RUNNING or unrecorded, marked FAILED.
- ``busy``: why the store failed (busy, and who holds it; full; unusable), in one line.
- ``provenance``: where a run's code and data came from (git, DVC).
- ``records``: what each stage records in its run.
- ``packaging`` and ``served_model``: the trained classifier as the MLflow model a run logs.
- ``registry``: the champion alias of the model registry.
"""
