# Two commands set a node up from a fresh clone: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: install run test test-chia conformance lint format schema bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## Serve a whole node with embedded defaults (SQLite, embedded Redis, built-in simulator, worker).
run: install
	$(BIN)/cadt-gateway serve

## Every test: SQLite always, PostgreSQL too when CADT_TEST_DATABASE_URL is set.
test: install
	$(BIN)/pytest $(PYTEST_ARGS)

## The contract suite against the real chia-blockchain simulator stack.
test-chia: install
	tools/chia-sim/run-tests $(BIN)/pytest -m chia tests/contract $(PYTEST_ARGS)

## Others' conformance suites (graphql-http audits, graphql-transport-ws probe) against live nodes.
conformance: install
	cd tools/conformance && npm ci --no-audit --no-fund
	tools/conformance/run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Regenerate the committed schema.graphql and the README's configuration table.
schema: install
	$(BIN)/cadt-gateway export-schema --output schema.graphql
	$(BIN)/python -m cadt_gateway.settings_doc

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
