"""The model every training run logs to MLflow, in MLflow's "models from code" form: MLflow runs
this file to build the model, wherever the model is loaded, instead of unpickling an object.
The model's artifacts are the Keras model, the vocabulary and the encoding settings
(``tracking.py`` logs them); this package and ``fast_rnn`` travel with it as code.
"""

from imdb_sentiment import tracking

tracking.set_logged_model()
