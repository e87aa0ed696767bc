# Set-up and the two jobs of this repository. `make book` and `make test` each create the
# virtual environment on first use (PyTorch pinned to the builds that install from local disk here).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: book test clean-book

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Computes every subject's stages and the oracle's runs into the cache, two processes at once (recon compute: each product is
# computed on one thread on the toy profile, and on 2 cores two processes get more done than one), then
# executes every section on the toy profile, reading that cache (the simulated NSD is written on first use);
# any Sphinx warning (broken reference, unknown citation, missing glue key) fails the build.
book: $(VENV)/.installed
	$(BIN)/recon compute --profile toy --workers 2 --oracle
	PATH="$(CURDIR)/$(BIN):$$PATH" jupyter-book build book/ -W --keep-going

# One pytest worker per core (pytest-xdist; each test file stays on one worker, so a file's module fixtures
# are built once); every test computes on one thread (tests/conftest.py).
test: $(VENV)/.installed
	$(BIN)/python -m pytest -n auto --dist loadfile

clean-book:
	rm -rf book/_build
