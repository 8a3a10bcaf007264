"""The pipeline's own domain: reading and encoding the IMDB reviews, the classifier, training,
evaluation, comparison, tracking (``tracking/``, the one package that talks to MLflow), and the
raw-text classifier with its command line (``python -m imdb_sentiment.predict``).

``stages/`` holds the DVC entry points that call it; ``paths.py`` knows every file.
"""
