"""Operator SQL: parsed with sqlglot and refused unless it is one read-only query.

Steps are written in the PostgreSQL dialect and refer to datasets as
``layer.table`` (``explore.orders``); the warehouse backend transpiles them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from django.core.exceptions import ValidationError
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from atlas.warehouse.base import LAYER_SCHEMAS

# Statements (or parts of one) that write, change the catalogue or leave SQL.
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Insert", "Update", "Delete", "Merge", "Drop", "Create", "Alter", "AlterColumn", "Command",
        "Copy", "TruncateTable", "Into", "Set", "Grant", "Use", "Pragma", "Transaction", "Commit",
        "Rollback", "LoadData", "Attach", "Detach", "Install", "Analyze", "Lock",
    )
    if hasattr(exp, name)
)
# Functions that read files, sleep, change settings or sequences, or reach other servers.
_FORBIDDEN_FUNCTIONS = {
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_sleep", "pg_sleep_for",
    "pg_sleep_until", "lo_import", "lo_export", "lo_get", "lo_put", "dblink", "dblink_exec",
    "set_config", "current_setting", "nextval", "setval", "pg_terminate_backend", "pg_cancel_backend",
    "pg_reload_conf", "pg_advisory_lock", "pg_advisory_xact_lock", "query_to_xml", "query_to_json",
    "read_csv", "read_csv_auto", "read_json", "read_json_auto", "read_ndjson", "read_parquet",
    "parquet_scan", "read_text", "read_blob", "glob", "query", "query_table", "sniff_csv",
    "duckdb_secrets", "getenv", "load_extension",
}


class SQLValidationError(ValidationError):
    """The SQL is not one read-only SELECT over known datasets; the message says why."""

    def __str__(self) -> str:
        return "; ".join(self.messages)


@dataclass(frozen=True)
class CheckedSelect:
    sql: str
    tables: tuple[tuple[str, str], ...]  # (schema, table), in order of appearance


def _parse_one(sql: str) -> exp.Expression:
    if not sql or not sql.strip():
        raise SQLValidationError("The SQL is empty; write one SELECT.")
    try:
        statements = [s for s in sqlglot.parse(sql, read="postgres") if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" (line {first.get('line')}, column {first.get('col')})" if first.get("line") else ""
        raise SQLValidationError(f"The SQL does not parse{where}: {first.get('description') or exc}.") from exc
    except SqlglotError as exc:  # the tokenizer's errors (an unclosed quote) are not ParseErrors
        raise SQLValidationError(f"The SQL does not parse: {exc}.") from exc
    if len(statements) != 1:
        raise SQLValidationError(f"Write exactly one statement; found {len(statements)}.")
    return statements[0]


def _refuse_writes(root: exp.Expression) -> None:
    if not isinstance(root, exp.Query):
        raise SQLValidationError(f"Only a SELECT (or WITH ... SELECT) is allowed, not {root.key.upper()}.")
    for node in root.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise SQLValidationError(f"Only read-only queries are allowed; found {node.key.upper()}.")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in _FORBIDDEN_FUNCTIONS:
                raise SQLValidationError(f"The function {name}() is not allowed in a step.")
        if isinstance(node, exp.Lock) or (isinstance(node, exp.Select) and node.args.get("locks")):
            raise SQLValidationError("Locking clauses (FOR UPDATE/SHARE) are not allowed.")


def _tables(root: exp.Expression) -> list[tuple[str, str]]:
    ctes = {cte.alias_or_name.lower() for cte in root.find_all(exp.CTE)}
    found: list[tuple[str, str]] = []
    for table in root.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise SQLValidationError(
                f"Read datasets by name (layer.table); table functions such as {table.this.sql()} are not allowed."
            )
        name, schema = table.name, table.db
        if table.catalog:
            raise SQLValidationError(f"Refer to datasets as layer.table, not {table.sql()}.")
        if not schema:
            if name.lower() in ctes:
                continue
            raise SQLValidationError(
                f"Qualify the table {name!r} with its layer, e.g. explore.{name} or chart.{name}."
            )
        if schema not in LAYER_SCHEMAS:
            raise SQLValidationError(f"Unknown layer {schema!r} in {schema}.{name}; use {', '.join(LAYER_SCHEMAS)}.")
        if (schema, name) not in found:
            found.append((schema, name))
    return found


def check_single_select(sql: str) -> exp.Expression:
    """One read-only query, whatever it reads (for SQL sources on other databases)."""
    root = _parse_one(sql)
    _refuse_writes(root)
    return root


def check_select(sql: str, known: Iterable[tuple[str, str]]) -> CheckedSelect:
    """Validate a step's SELECT; every table it reads must be a known dataset."""
    root = check_single_select(sql)
    tables = _tables(root)
    known_set = set(known)
    unknown = [f"{s}.{t}" for s, t in tables if (s, t) not in known_set]
    if unknown:
        raise SQLValidationError(f"Unknown dataset(s): {', '.join(unknown)}. Declare them as datasets first.")
    if not tables:
        raise SQLValidationError("The query reads no dataset.")
    for dialect in ("duckdb",):
        try:
            sqlglot.transpile(sql, read="postgres", write=dialect)
        except sqlglot.errors.SqlglotError as exc:
            raise SQLValidationError(f"The SQL cannot be rendered for {dialect}: {exc}.") from exc
    return CheckedSelect(sql=sql.strip().rstrip(";"), tables=tuple(tables))
