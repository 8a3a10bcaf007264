"""Everything that talks to MLflow, one module per job; no other part of the project imports
mlflow.

- ``store``: the store, and a stage's run, always closed with a status that tells the truth.
- ``provenance``: where a run's code and data came from (git, DVC).
- ``records``: what each stage records in its run.
- ``packaging`` and ``served_model``: the trained classifier as the MLflow model a run logs.
- ``registry``: the champion alias of the model registry.
"""
