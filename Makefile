# The two commands of the README: `make demo` and `make test`. Both work on a fresh clone with only
# python3 and make: they create .venv when it is missing and install what they need into it.
# Debian packages (redis-server, chromium) are installed with apt-get when missing; npm packages go
# into folders of the tests' own.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE_VENV := .venv-core
PYTEST_ARGS ?=
# The rest of the suite runs on two workers (the machines have two cores); every test is written
# to pass beside any other. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
# Every install takes its versions from the lock (constraints.txt, written by `make lock` from
# pyproject.toml), so a fresh machine gets what the last green run had. The installers themselves
# are pinned here.
LOCK := constraints.txt
PIP_VERSION := 26.3
UV_VERSION := 0.13.9
PIP_INSTALL = -m pip install --quiet --quiet --disable-pip-version-check -c $(LOCK)

.PHONY: demo test test-core test-rest lint pva-stubs docs lock lock-upgrade check-lock bench sysdeps clean

# A stamp per installed extra set: editing pyproject.toml or the lock reinstalls.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --quiet --disable-pip-version-check pip==$(PIP_VERSION)

$(VENV)/.dev-installed: pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python $(PIP_INSTALL) -e '.[dev]'
	touch $@

$(VENV)/.bench-installed: pyproject.toml $(LOCK) $(VENV)/.dev-installed
	$(BIN)/python $(PIP_INSTALL) -e '.[bench]'
	touch $@

# Resolve every extra again (uv's resolver) and rewrite the lock, keeping today's pins where they
# still fit; lock-upgrade takes the newest versions instead. Commit the result.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/python scripts/lock.py

lock-upgrade: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/python scripts/lock.py --upgrade

# Fails when pyproject.toml's dependencies changed since the lock was written.
check-lock:
	$(PYTHON) scripts/lock.py --check

# The core suite runs in an environment holding the core's dependencies alone, which proves the
# core imports nothing it does not declare.
$(CORE_VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(CORE_VENV)/bin/python || $(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install --quiet --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(CORE_VENV)/bin/python $(PIP_INSTALL) -e '.[test-core]'
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

lint: $(VENV)/.dev-installed check-lock
	$(BIN)/ruff check src tests bench examples scripts
	$(BIN)/ruff format --check src tests bench examples scripts
	$(BIN)/mypy

# The type stub of the pvAccess events generated from the message table (a test says when stale)
pva-stubs: $(VENV)/.dev-installed
	$(BIN)/python -c 'import pathlib, reckon.pva.protocol._table as t; pathlib.Path(t.__file__).with_name("_op_events.pyi").write_text(t.stubs())'

# The documentation site, every warning an error (broken links, bad docstrings, missing pages).
# It builds offline: nothing is fetched at build time.
docs: $(VENV)/.dev-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test-core: $(CORE_VENV)/.installed
	$(CORE_VENV)/bin/python -m pytest tests/core -p no:cacheprovider $(PYTEST_ARGS)

test-rest: $(VENV)/.dev-installed sysdeps
	$(BIN)/python -m pytest tests --ignore=tests/core -p no:cacheprovider -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint docs test-core test-rest

bench: $(VENV)/.bench-installed sysdeps
	@for b in bench/[!_]*.py; do echo "==== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(CORE_VENV) .mypy_cache .ruff_cache .pytest_cache site
