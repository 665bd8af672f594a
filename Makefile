# The two commands: `make search` (the main job) and `make test` (lint, layer contracts, type
# check, tests); `make test-fast` runs the unit tests alone.
# Each creates .venv if missing, install the project with its dev extras, and install the
# Debian package dataset-fashion-mnist when it is absent and apt is usable (`make test` also
# Debian's chromium, for one browser test). `make test` ends with its 15 slowest tests, so a CI
# log shows where its time goes (CI must stay well under 30 minutes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SPACE  ?= vit_mix.yaml
PYTEST_ARGS ?=
# pytest workers (pytest-xdist): the tests wait on Ray and subprocesses much of the time, so
# more workers than cores keep both cores busy. --maxschedchunk 2 hands the tests out two at a
# time in tests/conftest.py's order (the long Ray tests first); xdist's default hands each
# worker a block of consecutive tests first, which gave every Ray test to one worker.
PYTEST_WORKERS ?= 4
SEARCH_ARGS ?=

.PHONY: search test test-fast install dataset test-tools lint format clean-venv

search: install
	$(BIN)/tune-app search --space $(SPACE) $(SEARCH_ARGS)

test: install test-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist load --maxschedchunk 2 --durations=15 $(PYTEST_ARGS)

# Unit tests only (no Ray, no orchestration, no browser): the quick loop while developing.
test-fast: install
	$(BIN)/pytest -q -m "not slow and not ray and not browser" $(PYTEST_ARGS)

install: $(STAMP) dataset

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs when pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,dashboard,workspace]'
	@touch $(STAMP)

dataset:
	@bash scripts/ensure-apt.sh dataset-fashion-mnist \
		/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz "the default dataset"

# Only the tests need a browser: one renders analyze's pareto.html in headless Chromium.
test-tools:
	@bash scripts/ensure-apt.sh chromium /usr/bin/chromium "the pareto.html rendering test"

lint:
	$(BIN)/ruff check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-venv:
	rm -rf $(VENV)
