# The two commands of the README: `make demo` and `make test`. Both work on a fresh clone with only
# python3 and make: they create .venv when it is missing and install what they need into it.
# Debian packages (redis-server, chromium) are installed with apt-get when missing; npm packages go
# into folders of the tests' own.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE_VENV := .venv-core
PYTEST_ARGS ?=

.PHONY: demo test test-core test-rest lint bench sysdeps clean

# A stamp per installed extra set: editing pyproject.toml reinstalls.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --quiet --upgrade pip

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --quiet -e '.[dev]'
	touch $@

$(VENV)/.bench-installed: pyproject.toml $(VENV)/.dev-installed
	$(BIN)/python -m pip install --quiet --quiet -e '.[bench]'
	touch $@

# The core suite runs in an environment holding the core's dependencies alone, which proves the
# core imports nothing it does not declare.
$(CORE_VENV)/.installed: pyproject.toml
	test -x $(CORE_VENV)/bin/python || $(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install --quiet --quiet --upgrade pip
	$(CORE_VENV)/bin/python -m pip install --quiet --quiet -e '.[test-core]'
	touch $@

sysdeps:
	bash scripts/sysdeps.sh

# The vinyl example's Node.js service (npm packages into its own folder; skipped without npm, when
# the demo runs a Python stand-in and says so).
examples/vinyl/recommendations/node_modules: examples/vinyl/recommendations/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd examples/vinyl/recommendations && npm ci --silent --no-audit --no-fund && touch node_modules; \
	else echo "demo: npm not found; the vinyl act will use its Python recommendations"; fi

demo: $(VENV)/.dev-installed examples/vinyl/recommendations/node_modules
	$(BIN)/reckon demo

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

test-core: $(CORE_VENV)/.installed
	$(CORE_VENV)/bin/python -m pytest tests/core -p no:cacheprovider $(PYTEST_ARGS)

test-rest: $(VENV)/.dev-installed sysdeps
	$(BIN)/python -m pytest tests --ignore=tests/core -p no:cacheprovider $(PYTEST_ARGS)

test: lint test-core test-rest

bench: $(VENV)/.bench-installed sysdeps
	@for b in bench/[!_]*.py; do echo "==== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(CORE_VENV) .mypy_cache .ruff_cache .pytest_cache
