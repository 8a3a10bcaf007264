# `make run` sets everything up and runs the pipeline; `make test` runs the fast tests,
# `make test-all` every test (CI runs both tiers).
VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
# dvc.yaml's commands call `python`: the one of the virtual environment.
export PATH := $(BIN):$(PATH)

.PHONY: setup kernels run settle stop-warm scheduler worker test test-all mutation lint format lock clean bench exp-show maxlen-sweep long-reviews

setup: $(VENV)/.installed kernels

# -qq: pip's warnings about this machine's own configuration are not the project's.
$(VENV)/.installed: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --disable-pip-version-check -r requirements.lock
	touch $@

# The recurrent layers' C++ kernels, compiled once per machine and cached (fast_rnn/README.md):
# a machine without a C++ compiler says so here, before anything runs.
kernels: $(VENV)/.installed
	python -m fast_rnn.build

# The stages side by side, one per core (dask_repro/: a Dask LocalCluster, or the cluster
# that DASK_SCHEDULER_ADDRESS names), then `dvc repro` records them. `dvc repro` alone runs the
# same stages one at a time, with the same results.
run: setup
	python -m dask_repro --env MLFLOW_TRACKING_URI --env LOG_LEVEL

# Settles the comparison: seeds added look after look to the models whose pairs are still open,
# until each pair is different, equivalent or at settle.max_seeds (a group-sequential design,
# docs/statistics.md); each look's stages run as `make run` runs them. Ctrl-C, then `make
# settle` again, goes on where it stopped.
settle: setup
	python -m imdb_sentiment.settle

# Stops the warm interpreter that stages fork from (prefork/), this checkout's and environment's
# only: after an upgrade, say (it stops by itself after 5 idle minutes).
stop-warm: $(VENV)/.installed
	python -c "import stages; stages.stop_warm_interpreter()"

# A cluster of machines for `make run` (docs/team.md): a scheduler, and on each machine a
# worker per core, started in a checkout of the project, which runs stages in worktrees of it
# and exchanges data through the DVC remote. Both import the runner's code from this checkout.
SCHEDULER ?= tcp://127.0.0.1:8786
scheduler: $(VENV)/.installed
	PYTHONPATH=$(CURDIR) dask scheduler
worker: setup
	PYTHONPATH=$(CURDIR) dask worker --nworkers $$(nproc) --nthreads 1 $(SCHEDULER)

# The fast tier: units, the kernels against Keras, params, the layout; no pipeline run. In
# TEST_WORKERS processes (pytest-xdist): one per core here.
TEST_WORKERS ?= 2
test: setup
	python -m pytest -m "not e2e" -n $(TEST_WORKERS)

# Every test: the fast tier, then the end-to-end runs of the pipeline on a tiny fixture, the
# served model, a shared server, a two-worker cluster, one at a time (each of them trains or
# serves on every core; each also runs alone: pytest path::test).
test-all: test
	python -m pytest -m e2e

# Mutation testing of the library's pure modules (mutmut, pyproject.toml's [tool.mutmut]), from
# scratch, then the score per module; fails under 80% (docs/tests.md). Not part of CI.
mutation: setup
	rm -rf mutants
	mutmut run --max-children 2
	python -m tests.mutation_score

# The experiments of this commit, what changed in each, and each model's mean validation and
# test accuracy (reports/metrics.json): all other columns are left out, to fit a terminal.
exp-show: $(VENV)/.installed
	dvc exp show --only-changed --drop 'Created|.*/|models$$' --keep '(val|test)\.'

# The long-review profile (docs/long-reviews.md): whole reviews (400 tokens cut 2% of them), a
# larger vocabulary, one bidirectional layer read through max pooling. An experiment beside the
# workspace, of one seed (42; about 12 minutes on 2 cores); `make exp-show` compares it.
LONG_REVIEWS := -S '~networks.simplernn-1' -S '~networks.lstm-1' -S '~networks.gru-1' \
	-S data.maxlen=400 -S data.num_words=20000 -S train.layers=1 \
	-S train.bidirectional=true -S train.pooling=max -S train.early_stopping_patience=2 \
	-S models.lstm.units=64
long-reviews: setup
	dvc exp run --temp $(LONG_REVIEWS)

# Every model at four review lengths, each of its networks (params.yaml), as queued experiments run one
# after another, then the table and figure of test accuracy and training time against
# data.maxlen (about 30 minutes per seed on 2 cores; docs/long-reviews.md). A length trained
# before with these params is restored from DVC's run-cache, not trained again.
MAXLENS ?= 80 160 320 500
maxlen-sweep: setup
	for n in $(MAXLENS); do dvc exp run --queue -S data.maxlen=$$n; done
	dvc queue start
	while dvc queue status | grep -qE 'Queued|Running'; do sleep 10; done
	dvc queue status
	python -m imdb_sentiment.sweep data.maxlen $(MAXLENS)

# Training throughput against the reference notebook's plain recipe, on the real prepared data (minutes).
bench: setup
	dvc repro prepare
	python bench/benchmark.py

CODE := stages imdb_sentiment fast_rnn prefork dask_repro tests bench

# Style, formatting, and types: mypy on the library and the kernels' Python (about 30 s).
lint: $(VENV)/.installed
	ruff check $(CODE)
	ruff format --check $(CODE)
	mypy imdb_sentiment fast_rnn prefork dask_repro

format: $(VENV)/.installed
	ruff check --fix $(CODE)
	ruff format $(CODE)

# Regenerates requirements.lock from pyproject.toml's pinned direct dependencies.
lock:
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install --quiet --disable-pip-version-check '.[dev]'
	$(VENV)-lock/bin/pip freeze --exclude imdb-rnn-pipeline > requirements.lock
	rm -rf $(VENV)-lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache mutants
