# `make run` sets everything up and runs the pipeline; `make test` runs the tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
# dvc.yaml's commands call `python`: the one of the virtual environment.
export PATH := $(BIN):$(PATH)

.PHONY: setup run test lint format lock clean bench

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $@

run: setup
	dvc repro

test: setup
	python -m pytest

# Training throughput against the seed's plain recipe, on the real prepared data (minutes).
bench: setup
	dvc repro prepare
	python bench/benchmark.py

lint: setup
	ruff check stages tests bench
	ruff format --check stages tests bench

format: setup
	ruff check --fix stages tests bench
	ruff format stages tests bench

# Regenerates requirements.lock from pyproject.toml's pinned direct dependencies.
lock:
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install --quiet --disable-pip-version-check '.[dev]'
	$(VENV)-lock/bin/pip freeze --exclude imdb-rnn-pipeline > requirements.lock
	rm -rf $(VENV)-lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
