# The README's two commands: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 5000
export KAIDOKI_BASE_URL ?= http://$(HOST):$(PORT)

.PHONY: venv run test test-fast lint system-deps translations bench-ingest bench-dispatch bench-links bench-ceiling clean

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
	@echo "Admin pages: $(KAIDOKI_BASE_URL)/admin/ as admin@example.jp," \
	  "password: $$(cat instance/demo_admin_password 2>/dev/null || echo 'see admin create-user')"
	@echo "Serving on $(KAIDOKI_BASE_URL) (API docs: $(KAIDOKI_BASE_URL)/api/docs," \
	  "demo mailbox: $(KAIDOKI_BASE_URL)/admin/mailbox/)"
	rm -rf instance/prometheus && mkdir -p instance/prometheus
	KAIDOKI_ENV=demo $(BIN)/flask --app wsgi scheduler run & scheduler=$$!; \
	  trap 'kill $$scheduler 2>/dev/null; wait $$scheduler' EXIT INT TERM; \
	  KAIDOKI_ENV=demo PROMETHEUS_MULTIPROC_DIR=instance/prometheus \
	  $(BIN)/gunicorn --bind $(HOST):$(PORT) --workers 2 --access-logfile - wsgi:app

# Re-extract the customer-facing strings, merge them into the catalogues, compile.
translations: venv
	$(BIN)/pybabel extract -F babel.cfg --no-location --sort-output -o app/translations/messages.pot .
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations --no-fuzzy-matching --ignore-obsolete --width 100
	$(BIN)/pybabel compile -d app/translations

# Debian packages the tests need: a PostgreSQL server, Chromium for the browser tests, and a
# Japanese font so that screenshots show the Japanese text.
SYSTEM_PACKAGES := postgresql chromium fonts-ipafont-gothic
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages for the tests: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing \
	    || { echo "ERROR: cannot install $$missing; the tests need them" >&2; exit 1; }; \
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

# Gradient boosting as a bound on the forecaster's accuracy targets; LightGBM is installed into
# the venv for it (the optional `ceiling` extra), not needed by the service or the tests.
bench-ceiling: venv
	$(BIN)/pip install --quiet -c .ci/constraints.txt -e '.[dev,ceiling]'
	$(BIN)/python benchmarks/gbm_ceiling.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
