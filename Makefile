# Obol: `make run` serves the demo on http://127.0.0.1:8000, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.obol-installed
PYTEST_ARGS ?=

.PHONY: run test test-sqlite test-postgres venv system clean bench

venv: system $(STAMP)

# Invoice PDFs: WeasyPrint subsets the fonts it embeds with HarfBuzz when libharfbuzz-subset is
# installed (about 1 ms a font) and with fontTools otherwise (0.2 s a font: PDFs 6x slower).
# Installs Debian's package when it is missing and apt-get may (docs/billing-performance.md).
system:
	@ldconfig -p 2>/dev/null | grep -q 'libharfbuzz-subset\.so\.0' || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q libharfbuzz-subset0 >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libharfbuzz-subset0 >/dev/null 2>&1; } || \
	    echo "note: libharfbuzz-subset0 could not be installed: invoice PDFs will be 6x slower"; \
	  else echo "note: install HarfBuzz-Subset (Debian: libharfbuzz-subset0) for 6x faster invoice PDFs"; fi; }

# (Re)create the virtualenv and install Obol with its test tools whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: venv
	$(BIN)/obol run

test: test-sqlite test-postgres

test-sqlite: venv
	$(BIN)/pytest -q $(PYTEST_ARGS)

# Runs the whole suite again on PostgreSQL when OBOL_TEST_DATABASE_URL is set (.ci/run sets it).
test-postgres: venv
	@if [ -n "$(OBOL_TEST_DATABASE_URL)" ]; then \
		echo "== tests on PostgreSQL ($(OBOL_TEST_DATABASE_URL))"; \
		OBOL_DATABASE_URL="$(OBOL_TEST_DATABASE_URL)" $(BIN)/pytest -q $(PYTEST_ARGS); \
	elif [ "$(CI)" = "true" ]; then \
		echo "CI=true but OBOL_TEST_DATABASE_URL is not set: PostgreSQL tests cannot be skipped in CI"; exit 1; \
	else \
		echo "== PostgreSQL tests skipped: set OBOL_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test"; \
	fi

# Speed of the usage mass process (not a test, not part of `make test`): docs/usage-performance.md.
# BENCH_RECORDS=200000 BENCH_SUBSCRIBERS=20000 make bench for a quick run; BENCH_DB_MAX=10000000 also stores 10M.
# Then real-time charging under load over HTTP (bench/charging.py, PostgreSQL); BENCH_CHARGING=0 skips it.
# Then a mass bill run on SQLite and PostgreSQL (bench/billing.py, BENCH_BILLING_ACCOUNTS=10000); BENCH_BILLING=0 skips it.
bench: venv
	$(BIN)/python bench/run.py
	@if [ "$(BENCH_CHARGING)" != "0" ]; then $(BIN)/python bench/charging.py; \
	else echo "== charging bench skipped (BENCH_CHARGING=0)"; fi
	@if [ "$(BENCH_BILLING)" != "0" ]; then $(BIN)/python bench/billing.py; \
	else echo "== billing bench skipped (BENCH_BILLING=0)"; fi

clean:
	rm -rf $(VENV) var .pytest_cache
