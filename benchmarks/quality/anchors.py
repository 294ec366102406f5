"""The tools users would pick instead, on the same 20 checks over the same PostgreSQL table.

Soda Core, ``dbt test`` and Great Expectations, each measured two ways in the same run as Atlas:

* *check execution*: the time the tool itself reports (or we time around its one call) for running
  the checks, connection included, start-up excluded;
* *whole process*: a fresh process from ``exec`` to exit, as a scheduler or a shell would run it,
  two ways: with each tool's bytecode compiled (as an installed image has it: ``pip install``
  compiles every module; here the untimed warm-up run writes it into a private
  ``PYTHONPYCACHEPREFIX``), and compiling every module from source in every process (what this
  development environment does: ``PYTHONDONTWRITEBYTECODE=1`` and uv installs without bytecode).
  Both apply to every tool alike; the first is what a deployment pays.

Soda Core and Great Expectations live in a venv of their own under ``benchmarks/.anchors/`` (made
with uv from the package registry, pinned below), so their pins never touch Atlas's lock; dbt is
already in Atlas's dev extra. Telemetry is off for all three and nothing else is downloaded.

Each check is written the way that tool's users write it (SodaCL metrics, dbt generic tests with
the SQL of dbt_utils / dbt_expectations as project macros since packages need a download, GX core
expectations), with the same thresholds as Atlas's (the ~1 % NULL statuses are tolerated up to 2 %).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANCHORS = ROOT / "benchmarks" / ".anchors"
VENV = ANCHORS / "venv"
PINS = ["soda-core-postgres==3.5.6", "great_expectations==1.24.1", "psycopg2-binary==2.9.13", "sqlalchemy==2.1.9"]
TABLE, REF, SCHEMA = "bench_orders", "bench_customers", "chart"
PATTERN = "^[a-z0-9]+@[a-z]+[.][a-z]+$"
QUIET = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}


def anchor_python() -> Path:
    """The anchors' interpreter, installing it on first use (a minute from the registry, seconds from uv's cache)."""
    python = VENV / "bin" / "python"
    marker = VENV / ".pins"
    if not python.exists() or not marker.exists() or marker.read_text() != "\n".join(PINS):
        uv = Path(sys.executable).with_name("uv")
        subprocess.run([str(uv), "venv", "-q", "--clear", "--python", sys.executable, str(VENV)], check=True)
        subprocess.run([str(uv), "pip", "install", "-q", "--python", str(python), *PINS], check=True)
        marker.write_text("\n".join(PINS))
    return python


# -- Soda Core -------------------------------------------------------------------------------------

SODA_CHECKS = f"""
checks for {TABLE}:
  - missing_count(order_id) = 0
  - missing_count(customer_id) = 0
  - missing_percent(status) < 2
  - missing_count(amount) = 0
  - missing_count(email) = 0
  - missing_count(code) = 0
  - missing_count(created_at) = 0
  - duplicate_count(order_id) = 0
  - duplicate_count(customer_id, line_no) = 0
  - invalid_count(status) = 0:
      valid values: [placed, shipped, delivered, cancelled]
  - invalid_count(amount) = 0:
      valid min: 0
      valid max: 100
  - invalid_count(quantity) = 0:
      valid min: 1
      valid max: 9
  - invalid_count(email) = 0:
      name: email_regex
      valid regex: '{PATTERN}'
  - invalid_count(email) = 0:
      name: email_length
      valid min length: 5
      valid max length: 64
  - invalid_count(code) = 0:
      valid min length: 2
      valid max length: 4
  - row_count > 0
  - values in (customer_id) must exist in {REF} (customer_id)
  - failed rows:
      name: amount_vs_qty
      fail condition: NOT (amount >= 0 OR quantity > 0)
  - total_amount >= 0:
      total_amount expression: SUM(amount)
  - freshness(created_at) < 100000h
"""

SODA_SCRIPT = """
import json, sys, time
from soda.scan import Scan
scan = Scan()
scan.set_data_source_name("bench")
scan.add_configuration_yaml_file(sys.argv[1])
scan.add_sodacl_yaml_file(sys.argv[2])
started = time.perf_counter()
exit_code = scan.execute()
elapsed = time.perf_counter() - started
failed = [c.name for c in scan.get_checks_fail()] + (["errors in the logs"] if scan.has_error_logs() else [])
print(json.dumps({"execution_s": elapsed, "checks": len(scan._checks), "exit_code": exit_code, "failed": failed}))
"""


def soda_files(work: Path, database: str) -> tuple[Path, Path]:
    config = work / "soda_configuration.yml"
    config.write_text(
        "data_source bench:\n  type: postgres\n  host: 127.0.0.1\n  port: '5432'\n  username: postgres\n"
        f"  password: ''\n  database: {database}\n  schema: {SCHEMA}\n"
    )
    (work / ".soda").mkdir(exist_ok=True)  # Soda reads its telemetry switch from $HOME/.soda/config.yml
    (work / ".soda" / "config.yml").write_text("send_anonymous_usage_stats: false\n")
    checks = work / "soda_checks.yml"
    checks.write_text(SODA_CHECKS)
    return config, checks


# -- dbt test --------------------------------------------------------------------------------------

DBT_MACROS = """
{% test unique_combination(model, combination) %}
select {{ combination | join(', ') }} from {{ model }} group by {{ combination | join(', ') }} having count(*) > 1
{% endtest %}
{% test accepted_range(model, column_name, min_value, max_value) %}
select * from {{ model }} where not ({{ column_name }} >= {{ min_value }} and {{ column_name }} <= {{ max_value }})
{% endtest %}
{% test matches_regex(model, column_name, regex) %}
select * from {{ model }} where not ({{ column_name }} ~ '{{ regex }}')
{% endtest %}
{% test length_between(model, column_name, min_value, max_value) %}
select * from {{ model }}
where not (length({{ column_name }}) >= {{ min_value }} and length({{ column_name }}) <= {{ max_value }})
{% endtest %}
{% test has_rows(model) %}
select 1 where (select count(*) from {{ model }}) < 1
{% endtest %}
{% test expression_is_true(model, expression) %}
select * from {{ model }} where not ({{ expression }})
{% endtest %}
{% test aggregate_is_true(model, expression) %}
select 1 from (select {{ expression }} as ok from {{ model }}) a where not ok
{% endtest %}
{% test recency(model, field, hours) %}
select 1 from (select max({{ field }}) as newest from {{ model }}) a
where newest is null or newest < now() - interval '{{ hours }} hours'
{% endtest %}
"""

DBT_SOURCES = f"""
version: 2
sources:
  - name: {SCHEMA}
    schema: {SCHEMA}
    tables:
      - name: {REF}
      - name: {TABLE}
        tests:
          - unique_combination: {{combination: [customer_id, line_no]}}
          - has_rows
          - expression_is_true: {{expression: "amount >= 0 or quantity > 0"}}
          - aggregate_is_true: {{expression: "sum(amount) >= 0"}}
          - recency: {{field: created_at, hours: 100000}}
        columns:
          - name: order_id
            tests: [not_null, unique]
          - name: customer_id
            tests:
              - not_null
              - relationships: {{to: "source('{SCHEMA}', '{REF}')", field: customer_id}}
          - name: status
            tests:
              - not_null: {{config: {{warn_if: "> TOLERATED", error_if: "> TOLERATED"}}}}
              - accepted_values: {{values: [placed, shipped, delivered, cancelled]}}
          - name: amount
            tests: [not_null, accepted_range: {{min_value: 0, max_value: 100}}]
          - name: quantity
            tests: [accepted_range: {{min_value: 1, max_value: 9}}]
          - name: email
            tests:
              - not_null
              - matches_regex: {{regex: "{PATTERN}"}}
              - length_between: {{min_value: 5, max_value: 64}}
          - name: code
            tests: [not_null, length_between: {{min_value: 2, max_value: 4}}]
          - name: created_at
            tests: [not_null]
"""


def dbt_project(work: Path, database: str, rows: int) -> Path:
    project = work / "dbt_bench"
    (project / "models").mkdir(parents=True, exist_ok=True)
    (project / "macros").mkdir(exist_ok=True)
    (project / "dbt_project.yml").write_text(
        "name: bench\nversion: '1.0'\nconfig-version: 2\nprofile: bench\n"
        "flags:\n  send_anonymous_usage_stats: false\n  partial_parse: false\n"
    )
    (project / "profiles.yml").write_text(
        "bench:\n  target: pg\n  outputs:\n    pg:\n      type: postgres\n      host: 127.0.0.1\n      port: 5432\n"
        f"      user: postgres\n      password: ''\n      dbname: {database}\n      schema: dbt_bench\n      threads: 4\n"
    )
    (project / "macros" / "tests.sql").write_text(DBT_MACROS)
    # Atlas's tolerance is 2 % NULL statuses; dbt counts failing rows, so 2 % of the table's rows
    (project / "models" / "sources.yml").write_text(DBT_SOURCES.replace("TOLERATED", str(rows * 2 // 100)))
    return project


def dbt_command(project: Path) -> list[str]:
    dbt = Path(sys.executable).with_name("dbt")
    return [str(dbt), "test", "--project-dir", str(project), "--profiles-dir", str(project), "--quiet"]


def dbt_execution(project: Path) -> dict:
    results = json.loads((project / "target" / "run_results.json").read_text())
    failed = [r["unique_id"] for r in results["results"] if r["status"] != "pass"]
    return {"execution_s": results["elapsed_time"], "checks": len(results["results"]), "failed": failed}


# -- Great Expectations ----------------------------------------------------------------------------

GX_SCRIPT = f"""
import json, sys, time
import great_expectations as gx
import great_expectations.expectations as e
context = gx.get_context(mode="ephemeral")
source = context.data_sources.add_postgres("pg", connection_string=sys.argv[1])
asset = source.add_table_asset("orders", table_name="{TABLE}", schema_name="{SCHEMA}")
batch_definition = asset.add_batch_definition_whole_table("all")
suite = context.suites.add(gx.ExpectationSuite(name="bench"))
for column in ("order_id", "customer_id", "amount", "email", "code", "created_at"):
    suite.add_expectation(e.ExpectColumnValuesToNotBeNull(column=column))
suite.add_expectation(e.ExpectColumnValuesToNotBeNull(column="status", mostly=0.98))
suite.add_expectation(e.ExpectColumnValuesToBeUnique(column="order_id"))
suite.add_expectation(e.ExpectCompoundColumnsToBeUnique(column_list=["customer_id", "line_no"]))
suite.add_expectation(e.ExpectColumnValuesToBeInSet(column="status", value_set=["placed", "shipped", "delivered", "cancelled"]))
suite.add_expectation(e.ExpectColumnValuesToBeBetween(column="amount", min_value=0, max_value=100))
suite.add_expectation(e.ExpectColumnValuesToBeBetween(column="quantity", min_value=1, max_value=9))
suite.add_expectation(e.ExpectColumnValuesToMatchRegex(column="email", regex="{PATTERN}"))
suite.add_expectation(e.ExpectColumnValueLengthsToBeBetween(column="email", min_value=5, max_value=64))
suite.add_expectation(e.ExpectColumnValueLengthsToBeBetween(column="code", min_value=2, max_value=4))
suite.add_expectation(e.ExpectTableRowCountToBeBetween(min_value=1))
suite.add_expectation(e.UnexpectedRowsExpectation(unexpected_rows_query=(
    "SELECT o.customer_id FROM {{batch}} o LEFT JOIN {SCHEMA}.{REF} c ON c.customer_id = o.customer_id"
    " WHERE o.customer_id IS NOT NULL AND c.customer_id IS NULL")))
suite.add_expectation(e.UnexpectedRowsExpectation(unexpected_rows_query=(
    "SELECT * FROM {{batch}} WHERE NOT (amount >= 0 OR quantity > 0)")))
suite.add_expectation(e.ExpectColumnSumToBeBetween(column="amount", min_value=0))
suite.add_expectation(e.ExpectColumnMaxToBeBetween(column="created_at", min_value="2014-01-01T00:00:00"))
started = time.perf_counter()
result = batch_definition.get_batch().validate(suite)
elapsed = time.perf_counter() - started
failed = [r.expectation_config.type for r in result.results if not r.success]
print(json.dumps({{"execution_s": elapsed, "checks": len(result.results), "failed": failed}}))
"""


# -- running them ----------------------------------------------------------------------------------

def process_env(extra: dict, pycache: Path | None) -> dict:
    """A tool's environment: with ``pycache``, bytecode read from (and written to) that private prefix;
    without it, none written, so a tool whose install has no bytecode compiles every module each time."""
    env = {**os.environ, **QUIET, **extra}
    env.pop("PYTHONPYCACHEPREFIX", None)
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(pycache_none())
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def pycache_none() -> Path:
    """An empty prefix no one writes to: the bytecode next to the sources (none, under uv) is not read either."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / "atlas-bench-no-pycache"
    path.mkdir(exist_ok=True)
    return path


def _timed_json(cmd: list[str], env: dict, cwd: Path, pycache: Path | None) -> tuple[float, dict, str]:
    started = time.perf_counter()
    out = subprocess.run(cmd, env=process_env(env, pycache), cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = out.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        data = {}
    return wall, data, (out.stderr or out.stdout)[-3000:] if out.returncode or not data else ""


def contenders(work: Path, database: str, rows: int, atlas_env: dict) -> dict:
    """name -> a callable running one whole process and returning (whole-process s, check-execution s, facts).

    Each callable takes ``bytecode``: True reads the bytecode its first such run wrote under
    ``work/pycache``; False compiles every module from source (see the module's docstring).
    """
    python = anchor_python()
    soda_config, soda_checks = soda_files(work, database)
    soda_script = work / "soda_scan.py"
    soda_script.write_text(SODA_SCRIPT)
    gx_script = work / "gx_validate.py"
    gx_script.write_text(GX_SCRIPT)
    project = dbt_project(work, database, rows)
    pg_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
    pycache = work / "pycache"

    def cache(bytecode: bool) -> Path | None:
        return pycache if bytecode else None

    def soda(bytecode: bool = True):
        wall, data, err = _timed_json([str(python), str(soda_script), str(soda_config), str(soda_checks)],
                                      {"HOME": str(work)}, work, cache(bytecode))
        return wall, data.get("execution_s"), {**data, "error": err}

    def dbt(bytecode: bool = True):
        started = time.perf_counter()
        out = subprocess.run(dbt_command(project), env=process_env({}, cache(bytecode)), cwd=work,
                             capture_output=True, text=True)
        wall = time.perf_counter() - started
        data = dbt_execution(project)
        return wall, data["execution_s"], {**data, "error": out.stdout[-3000:] if out.returncode else ""}

    def gx(bytecode: bool = True):
        wall, data, err = _timed_json([str(python), str(gx_script), pg_url], {}, work, cache(bytecode))
        return wall, data.get("execution_s"), {**data, "error": err}

    def atlas(bytecode: bool = True):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "manage.py", "check_quality", TABLE], cwd=ROOT,
                             env=process_env(atlas_env, cache(bytecode)), capture_output=True, text=True)
        wall = time.perf_counter() - started
        return wall, None, {"checks": out.stdout.count("\n  "), "error": out.stderr[-3000:] if out.returncode else ""}

    return {"soda_core": soda, "dbt_test": dbt, "great_expectations": gx, "atlas_command": atlas}
