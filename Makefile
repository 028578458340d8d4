# The README's two commands are `make run` and `make test`; every other step lives here too.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PEER_STAMP := peer/node_modules/.installed

.PHONY: run test lint typecheck format bench install peer system system-packages clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(PEER_STAMP): peer/package.json peer/package-lock.json
	cd peer && npm ci --no-audit --no-fund --loglevel=error
	touch $(PEER_STAMP)

peer: $(PEER_STAMP)

## Debian packages the tests need (chromium for GraphiQL's browser test), installed once.
system:
	scripts/ensure-system-packages.sh

## Serve on the embedded defaults (SQLite, offline agent); migrations run first.
run: $(STAMP)
	$(BIN)/python main.py serve

## System tools the tests drive (PgBouncer, a TLS PostgreSQL cluster); installs what is missing.
system-packages:
	scripts/ensure-system-packages.sh

## Everything CI checks: lint, types, then the whole suite on SQLite and PostgreSQL.
test: $(STAMP) $(PEER_STAMP) system-packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python main.py schema | diff -u schema/schema.graphql - || (echo "schema/schema.graphql is stale: run 'python main.py schema > schema/schema.graphql'"; exit 1)
	$(BIN)/pytest -n auto

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) peer/node_modules
