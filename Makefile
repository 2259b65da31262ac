# Developer entry points. Every target creates .venv on first use (with the
# default python3) and reinstalls it when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make demo` installs only the `demo` extra; every other target installs `dev` (which includes
# it). A venv whose dev install is up to date serves the demo as it is.
DEMO_STAMP := $(VENV)/.installed-demo

# The test suite runs twice: on SQLite, then on PostgreSQL; the collation-sensitive tests run a
# third time on PostgreSQL with an ICU collation. The PostgreSQL runs skip visibly when no
# server is reachable (and fail when CI=true).
PYTEST_ARGS ?=
PYTEST_SQLITE := $(BIN)/pytest $(PYTEST_ARGS)
# The test databases are thrown away: commits need not wait for the disk (a per-connection
# setting, about twice as fast; visibility and isolation are unchanged).
PG_TEST_OPTIONS ?= -c synchronous_commit=off
PYTEST_POSTGRES := PGOPTIONS='$(PG_TEST_OPTIONS)' $(BIN)/pytest --ds=tests.settings_postgres $(PYTEST_ARGS)
# Then the tests whose answer could depend on the database's collation, once more on PostgreSQL
# with an ICU en-US collation (tests/settings_postgres_icu.py; PostgreSQL 15 or later).
ICU_TESTS ?= tests/test_collation.py tests/test_filtering_properties.py tests/test_filtering.py
PYTEST_POSTGRES_ICU := PGOPTIONS='$(PG_TEST_OPTIONS)' $(BIN)/pytest --ds=tests.settings_postgres_icu $(PYTEST_ARGS) $(ICU_TESTS)

# Lint only the paths that exist.
LINT_PATHS := $(wildcard src tests example benchmarks scripts docs/hooks noxfile.py)

DEMO_ADDR ?= 127.0.0.1:8000

.DEFAULT_GOAL := help

.PHONY: help venv demo test test-sqlite test-postgres test-postgres-icu lint format bench mutate docs docs-serve nox build clean

help:
	@echo "make demo        migrate, seed and serve the example project on http://$(DEMO_ADDR)"
	@echo "                 (demo dependencies only; DEMO_ADDR=127.0.0.1:8080 picks the address)"
	@echo "make test        run the test suite on SQLite, then on PostgreSQL (C, then ICU en-US)"
	@echo "make lint        ruff check, ruff format --check, mypy (strict)"
	@echo "make format      apply ruff fixes and formatting"
	@echo "make bench       run the benchmarks"
	@echo "make mutate      mutation testing of the core (slow; not part of CI)"
	@echo "make docs        build the documentation (mkdocs --strict) into site/"
	@echo "make docs-serve  serve the documentation on http://127.0.0.1:8001"
	@echo "make nox         run every nox session (built wheel, all Pythons and Djangos)"
	@echo "make build       build the sdist and wheel into dist/"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then \
		echo "$(VENV) has the development install: nothing to add for the demo"; \
	else \
		$(BIN)/pip install -e '.[demo]'; \
	fi
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	cd example && ../$(BIN)/python manage.py migrate --noinput
	cd example && ../$(BIN)/python manage.py migrate --database audit --noinput
	cd example && ../$(BIN)/python manage.py seed_demo --addr $(DEMO_ADDR) --serving
	cd example && ../$(BIN)/python manage.py runserver $(DEMO_ADDR)

test: $(STAMP)
	$(PYTEST_SQLITE)
	$(PYTEST_POSTGRES)
	$(PYTEST_POSTGRES_ICU)

test-sqlite: $(STAMP)
	$(PYTEST_SQLITE)

test-postgres: $(STAMP)
	$(PYTEST_POSTGRES)

test-postgres-icu: $(STAMP)
	$(PYTEST_POSTGRES_ICU)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	# mypy loads tests.settings for the Django plugin; it checks src/ only, not the example.
	CLEARANCE_SKIP_EXAMPLE=1 $(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

bench: $(STAMP)
	@if [ -f benchmarks/__main__.py ]; then \
		$(BIN)/python -m benchmarks; \
	else \
		echo "benchmarks/__main__.py does not exist yet: nothing to run"; \
	fi

# Mutation testing (mutmut, configured in pyproject.toml; scripts/mutate.py picks the files).
# MUTATE_SCOPE: core (engine, rules, invariants, perform; the default), audit, contrib, all, or a
# comma-separated list of module names (engine,perform), run one module after the other, each
# with its own tests. MUTATE=clearance.perform* restricts the
# run to mutants whose names match (and runs them again even if decided). Interrupt it at any
# time: the next run goes on where it stopped, and scripts/mutation_score.py reports what has been
# decided so far.
MUTATE ?=
MUTATE_SCOPE ?= core
MUTATE_JOBS ?= 2

mutate: $(STAMP)
	$(BIN)/pip install -q 'mutmut>=3.8,<4'
	$(BIN)/python scripts/mutate.py --scope $(MUTATE_SCOPE) run --max-children $(MUTATE_JOBS) $(MUTATE) || true
	$(BIN)/python scripts/mutation_score.py --scope $(MUTATE_SCOPE)

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

nox: $(STAMP)
	$(BIN)/nox

build: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist

clean:
	rm -rf dist build site .nox .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
