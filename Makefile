# Atlas — the two commands that matter: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# uv (from PyPI, into the venv) installs the dependencies: parallel downloads, no bytecode compiled up
# front; a fresh install takes well under a minute where pip took about four.
UV     := $(VENV)/bin/uv
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/atlas
# pytest-xdist workers per pass (each gets its own test database; 0 runs in one process). The PostgreSQL
# pass has three: with two, the machine was 20 % idle once the Spark pass had ended (its tests wait on
# worker processes, faults and subprocesses); with three it stays busy (make test 962 s against 979 s, 2 CPUs).
# loadgroup: tests spread one by one, except the browser tests, which share one worker and one Chromium;
# in collection order (no reorder), which keeps pytest-django's: database tests, transactional, the rest.
TEST_WORKERS ?= 2
TEST_WORKERS_POSTGRES ?= 3
PYTEST := $(PY) -m pytest -q --dist loadgroup --no-loadscope-reorder

.PHONY: demo test test-embedded test-postgres test-spark install lint check bench clean screenshots

# The versions CI tests are requirements/dev.lock's (made from pyproject.toml by uv, hashes checked;
# the command is at its top), the same as the image's requirements/prod.lock for what both hold.
$(VENV)/.installed: pyproject.toml requirements/dev.lock
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv
	$(UV) pip install --quiet --python $(PY) -r requirements/dev.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

install: $(VENV)/.installed

## Run Atlas on its embedded default (SQLite + DuckDB, tasks in-process) with the demo loaded.
demo: install
	DEBUG=true $(PY) manage.py migrate --noinput -v 0
	DEBUG=true $(PY) manage.py load_demo
	DEBUG=true $(PY) manage.py run_pipeline ecommerce
	DEBUG=true $(PY) manage.py ensure_admin
	@echo "Atlas admin: http://127.0.0.1:8000/admin/"
	DEBUG=true $(PY) manage.py runserver 127.0.0.1:8000

## The whole suite: the embedded default then PostgreSQL, with the Spark warehouse's pass beside both (each
## skipped with a reason where its server or Java is missing; under CI=true they must run). atlas/tests/passes.py
## runs the three targets below, with the Spark Connect server started first, niced, in the background;
## TEST_SIDE_BY_SIDE=1 runs all three at the same time.
TEST_SIDE_BY_SIDE ?=
test: install
	$(PY) -m atlas.tests.passes --make "$(MAKE)" $(if $(filter 1 true yes,$(TEST_SIDE_BY_SIDE)),--side-by-side)

test-embedded: install
	$(PYTEST) -n $(TEST_WORKERS)

## Tests that cannot depend on the engine ran in the embedded pass: this one leaves them out (atlas/tests/engine_free.py).
test-postgres: install
	ATLAS_TEST_ENGINE=postgres ATLAS_TEST_ENGINE_BOUND_ONLY=1 DATABASE_URL=$(PG_TEST_URL) $(PYTEST) -n $(TEST_WORKERS_POSTGRES)

## The Spark warehouse's tests on a local Spark Connect server started from the pyspark package (Java 17):
## its contract tests and the differential corpus on Spark (PostgreSQL at 127.0.0.1:5432 is the reference).
SPARK_TESTS ?= atlas/tests/test_warehouse_spark.py atlas/tests/test_warehouse_spark_rows.py atlas/tests/test_warehouse_spark_ingest.py \
	atlas/tests/test_sql_differential.py privacy/tests/test_erasure_spark.py retention/tests/test_expiry_spark.py \
	demo/tests/test_demo_spark.py pipelines/tests/test_incremental_spark.py pipelines/tests/test_source_s3_spark.py \
	atlas/tests/test_spark_local_server.py
test-spark: install
	ATLAS_TEST_ENGINE=spark $(PY) -m pytest -q -n 0 -k "spark" $(SPARK_TESTS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

check: install
	DEBUG=true $(PY) manage.py check
	DEBUG=true $(PY) manage.py makemigrations --check --dry-run

bench: install
	$(UV) pip install --quiet --python $(PY) -e '.[bench]'
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) var .pytest_cache

## PNGs of the overview, a pipeline, a run, a dataset and its data, taken by the Chromium test on the demo (docs/screenshots).
screenshots: install
	ATLAS_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest -q -p no:cacheprovider -n 0 \
		atlas/tests/test_console_browser.py -k overview
