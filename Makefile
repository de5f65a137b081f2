# Two commands (see README): `make demo` sets up and grades the example course's submissions;
# `make test` sets up and runs the test suite. Both create .venv on first use (so does `make lint`).
VENV ?= .venv
PYTHON ?= python3
# `make setup` installs the CPU wheel of torch unless .venv has a torch already; on a GPU box
# pass your own, e.g. `make setup TORCH_SPEC='torch==2.13.0 --index-url <your CUDA wheel index>'`,
# or install torch into .venv first: an importable torch is never replaced.
TORCH_SPEC ?= torch==2.13.0
BIN = $(VENV)/bin

.PHONY: setup sandbox demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed sandbox

# Code answers run inside bubblewrap. Installed here when missing and we may (root, or sudo
# without a password, on a Debian-family system); otherwise `grader` says, in one line, that
# code parts are not graded and why, and grades the written parts.
sandbox:
	@if command -v bwrap >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "note: bubblewrap is missing; install it with your system's package manager to grade code parts"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq bubblewrap) || echo "note: could not install bubblewrap"; \
	elif sudo -n true 2>/dev/null; then \
	  (sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap) || echo "note: could not install bubblewrap"; \
	else \
	  echo "note: bubblewrap is missing and installing it needs root: sudo apt-get install -y bubblewrap"; \
	fi

demo: setup
	$(BIN)/grader grade submissions/ --out out/

test: setup
	$(BIN)/python -m pytest -q

# style and types of the package (configured in pyproject.toml)
lint: setup
	$(BIN)/ruff check grader && $(BIN)/ruff format --check grader && $(BIN)/mypy

clean:
	rm -rf out build *.egg-info .pytest_cache .hypothesis
