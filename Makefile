# The README's two commands: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 5000
export KAIDOKI_BASE_URL ?= http://$(HOST):$(PORT)

.PHONY: venv run test test-fast lint system-deps translations bench-ingest bench-dispatch bench-links clean

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c .ci/constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Web app and scheduler with the demo shop. Ctrl-C stops both.
run: venv
	KAIDOKI_ENV=demo $(BIN)/flask --app wsgi db upgrade
	KAIDOKI_ENV=demo $(BIN)/flask --app wsgi demo load --if-empty
	@echo "Demo API key: $$(cat instance/demo_api_key 2>/dev/null || echo 'see api-keys create')"
	@echo "Serving on $(KAIDOKI_BASE_URL) (API docs: $(KAIDOKI_BASE_URL)/api/docs," \
	  "demo mailbox: $(KAIDOKI_BASE_URL)/mailbox)"
	rm -rf instance/prometheus && mkdir -p instance/prometheus
	KAIDOKI_ENV=demo $(BIN)/flask --app wsgi scheduler run & scheduler=$$!; \
	  trap 'kill $$scheduler 2>/dev/null; wait $$scheduler' EXIT INT TERM; \
	  KAIDOKI_ENV=demo PROMETHEUS_MULTIPROC_DIR=instance/prometheus \
	  $(BIN)/gunicorn --bind $(HOST):$(PORT) --workers 2 --access-logfile - wsgi:app

# Re-extract the customer-facing strings, merge them into the catalogues, compile.
translations: venv
	$(BIN)/pybabel extract -F babel.cfg -o app/translations/messages.pot app
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations --no-fuzzy-matching
	$(BIN)/pybabel compile -d app/translations

# PostgreSQL server binaries for the tests that run against a real server.
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "Installing Debian's postgresql package for the PostgreSQL test run"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql \
	    || { echo "ERROR: cannot install postgresql; the PostgreSQL test run needs it" >&2; exit 1; }; \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

test: venv system-deps lint
	$(BIN)/pytest
	$(BIN)/pytest --db=postgres

test-fast: venv
	$(BIN)/pytest -m "not slow" -x -q

bench-ingest: venv
	$(BIN)/python benchmarks/ingest.py

bench-dispatch: venv
	$(BIN)/python benchmarks/dispatch.py

bench-links: venv
	$(BIN)/python benchmarks/links.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
