# Two commands (see README): `make demo` sets up and grades the sample submissions;
# `make test` sets up and runs the test suite. Both create .venv on first use.
VENV ?= .venv
PYTHON ?= python3
# The CPU wheel of torch lies on this machine's disk; on a GPU box pass your own,
# e.g. `make setup TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124'`,
# or install torch into .venv first: an importable torch is never replaced.
TORCH_SPEC ?= torch==2.13.0
BIN = $(VENV)/bin

.PHONY: setup demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/grader grade submissions/ --out out/

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf out .pytest_cache .hypothesis
