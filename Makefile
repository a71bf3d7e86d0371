# Strongroom. Quick start: `make run` (serve on 127.0.0.1:8000), `make test` (whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
HOST   ?= 127.0.0.1
PORT   ?= 8000
MOCK_PORT ?= 8100

.PHONY: run demo test test-quick bench mock-exchange migrate catalogue lint clean ts-deps screenshots

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is required (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt requirements-build.txt pyproject.toml | $(BIN)/python
	$(PIP) install -r requirements-build.txt -r requirements.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $@

$(VENV)/.test: requirements-test.txt $(VENV)/.runtime
	$(PIP) install -r requirements-test.txt
	@touch $@

# The TypeScript SDK test needs node; without node that test reports itself skipped.
tests/surfaces/kalshi/ts/node_modules/.installed: tests/surfaces/kalshi/ts/package.json tests/surfaces/kalshi/ts/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd tests/surfaces/kalshi/ts && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	 else echo "npm not found: the kalshi-typescript test will be skipped"; fi

# The TradrAPI TypeScript client (clients/typescript: typescript pinned in its package-lock.json), built
# with tsc, and the project that runs seed 003's samples on it (tests/surfaces/tradr/ts, where
# @tradrapi/trading-sdk is mapped to the client). Without npm, the tradr TypeScript tests are skipped.
TRADR_CLIENT := clients/typescript
TRADR_TS     := tests/surfaces/tradr/ts

$(TRADR_CLIENT)/node_modules/.installed: $(TRADR_CLIENT)/package.json $(TRADR_CLIENT)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd $(TRADR_CLIENT) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	 else echo "npm not found: the TradrAPI TypeScript client is not built; its tests will be skipped"; fi

$(TRADR_CLIENT)/dist/index.js: $(TRADR_CLIENT)/node_modules/.installed $(TRADR_CLIENT)/tsconfig.json $(wildcard $(TRADR_CLIENT)/src/*.ts)
	@if command -v npm >/dev/null 2>&1 && [ -f $(TRADR_CLIENT)/node_modules/.installed ]; then cd $(TRADR_CLIENT) && npm run --silent build && touch dist/index.js; \
	 else echo "npm not found: clients/typescript is not (re)built"; fi

$(TRADR_TS)/node_modules/.installed: $(TRADR_TS)/package.json $(TRADR_TS)/package-lock.json $(TRADR_CLIENT)/package.json
	@if command -v npm >/dev/null 2>&1; then cd $(TRADR_TS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	 else echo "npm not found: the tradr TypeScript tests will be skipped"; fi

ts-deps:
	@if [ -f tests/surfaces/kalshi/ts/package.json ]; then $(MAKE) --no-print-directory tests/surfaces/kalshi/ts/node_modules/.installed; fi
	@$(MAKE) --no-print-directory $(TRADR_CLIENT)/dist/index.js $(TRADR_TS)/node_modules/.installed

migrate: $(VENV)/.runtime
	$(BIN)/strongroom db upgrade

run: migrate
	$(BIN)/strongroom serve --host $(HOST) --port $(PORT)

# lint first: CI runs `make test`, so ruff and mypy --strict (configured in pyproject.toml) gate every run
test: $(VENV)/.test lint ts-deps
	$(BIN)/python -m pytest -n 2 --timeout 300 $(PYTEST_ARGS)

# the inner loop: SQLite only, no live servers (tests/conftest.py --quick), no lint
test-quick: $(VENV)/.test
	$(BIN)/python -m pytest -n 2 --timeout 300 --quick $(PYTEST_ARGS)

# the README's console screenshots (docs/console/), from the browser tests' SQLite pass
screenshots: $(VENV)/.test
	STRONGROOM_TEST_SCREENSHOTS=$(CURDIR)/docs/console $(BIN)/python -m pytest tests/console -k sqlite $(PYTEST_ARGS)

bench: $(VENV)/.test
	$(BIN)/python -m bench $(BENCH_ARGS)

# `make run` with every Binance and OKX call sent to the loopback mock exchange (port MOCK_PORT), which is
# devtools/mock_exchange in this checkout (not installed with the package): run from the repo root.
demo: migrate
	@$(BIN)/python -m devtools.mock_exchange --port $(MOCK_PORT) & mock=$$!; trap "kill $$mock 2>/dev/null" EXIT INT TERM; \
	 STRONGROOM_EXCHANGE_BASE_URLS='{"binance": "http://127.0.0.1:$(MOCK_PORT)", "okx": "http://127.0.0.1:$(MOCK_PORT)"}' \
	 $(BIN)/strongroom serve --host $(HOST) --port $(PORT)

mock-exchange: $(VENV)/.runtime
	$(BIN)/python -m devtools.mock_exchange --port $(MOCK_PORT)

catalogue: $(VENV)/.test
	$(BIN)/python scripts/gen_catalogue.py

# ruff on every Python tree; mypy --strict on strongroom/ and devtools/ (incremental: .mypy_cache)
lint: $(VENV)/.test
	$(BIN)/ruff check strongroom tests bench scripts devtools
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache tests/surfaces/kalshi/ts/node_modules $(TRADR_CLIENT)/node_modules $(TRADR_CLIENT)/dist \
	 $(TRADR_TS)/node_modules $(TRADR_TS)/runs
