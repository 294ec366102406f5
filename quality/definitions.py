"""What each kind of check takes, and the validation that refuses a broken one on save.

Parameters per kind (``Check.params``):

* ``not_null``: none; fails rows where any of ``columns`` is NULL.
* ``unique``: none; fails rows whose (``columns``) value occurs more than once
  (rows with a NULL key column are not compared, as in SQL's UNIQUE).
* ``accepted_values``: ``{"values": [...]}`` (strings compare as text).
* ``range``: ``{"min": x, "max": y, "inclusive": true}``; either bound may be absent.
* ``regex``: ``{"pattern": "..."}``; rows whose text does not match fail.
* ``length``: ``{"min": n, "max": m}`` in characters.
* ``row_count``: ``{"min": n, "max": m}``.
* ``freshness``: ``{"max_age_hours": h}``; the newest value of the column must be younger.
* ``referential``: ``{"dataset": "<dataset name>", "column": "<column>"}``.
* ``schema``: ``{"columns": {"name": "type", ...}, "allow_extra": false}``.
* ``custom_row``: ``{"sql": "<boolean expression over the row>"}`` (PostgreSQL dialect).
* ``custom_aggregate``: ``{"sql": "<boolean expression over aggregates>"}``,
  e.g. ``sum(amount) >= 0``.

Everywhere except ``not_null``, NULL is not a violation (as in SQL CHECK
constraints): a NULL value, or a condition that evaluates to NULL, passes.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb
import sqlglot
from django.core.exceptions import ValidationError
from sqlglot import exp

from atlas.sql import SQLRefused, parse_statement
from atlas.sql.validate import check_expression

from .models import COLUMN_KINDS, ROW_KINDS, Check, CheckKind, Severity

# Type families: engine type names compared by meaning (schema checks).
TYPE_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("timestamptz", ("timestamp with time zone", "timestamptz")),
    ("timestamp", ("timestamp", "timestamp without time zone", "datetime", "timestamp_ns", "timestamp_ms", "timestamp_s")),
    ("date", ("date",)),
    ("time", ("time", "time without time zone")),
    ("interval", ("interval",)),
    ("boolean", ("boolean", "bool")),
    ("integer", ("smallint", "integer", "int", "int2", "int4", "int8", "bigint", "tinyint", "hugeint", "ubigint", "uinteger", "usmallint", "utinyint")),
    ("decimal", ("numeric", "decimal")),
    ("float", ("real", "double precision", "double", "float", "float4", "float8")),
    ("text", ("text", "varchar", "character varying", "character", "char", "string", "bpchar")),
    ("json", ("json", "jsonb")),
    ("uuid", ("uuid",)),
)


def type_family(type_name: str) -> str:
    """The family of an engine type name: ``DECIMAL(12,2)`` and ``numeric`` are both ``decimal``."""
    base = re.sub(r"\(.*\)$", "", str(type_name).strip().lower()).strip()
    for family, names in TYPE_FAMILIES:
        if base in names:
            return family
    return base


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(value: Any) -> bool:
    """A range bound: a number, or an ISO date/time string for temporal columns."""
    return _number(value) or (isinstance(value, str) and bool(re.match(r"^\d{4}-\d{2}-\d{2}", value)))


def regex_error(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used on every engine, or None.

    Python's ``re`` catches syntax errors; DuckDB (RE2, the embedded engine)
    refuses what RE2 lacks (backreferences, lookaround); PostgreSQL is asked
    when it is the warehouse. A pattern valid on one engine only would make the
    same pipeline fail on the other.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"The regex does not compile: {exc}."
    con = duckdb.connect()
    try:
        con.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
    except duckdb.Error as exc:
        return f"The regex is not supported by DuckDB (RE2): {str(exc).splitlines()[0]}"
    finally:
        con.close()
    from atlas.warehouse import WarehouseError, get_warehouse

    try:
        wh = get_warehouse()
    except WarehouseError:
        return None
    if wh.vendor == "postgresql":
        try:
            with wh.cursor() as cur:
                cur.execute("SELECT '' ~ %s", [pattern]).fetchall()
        except WarehouseError as exc:
            return f"The regex is not valid for PostgreSQL: {str(exc).splitlines()[0]}"
    return None


def parse_condition(sql: str, *, aggregate: bool, columns: set[str] | frozenset[str] | None = None) -> exp.Expression:
    """One boolean SQL expression (PostgreSQL dialect), read-only; raises ValueError why not.

    A row condition may use no aggregate; an aggregate condition must use one
    and may not name a column outside an aggregate. Neither may hold a
    subquery or a window function; every function, cast and construct must be
    on the allowlist of Atlas' SQL toolkit (the same as a step's SELECT), and
    when the dataset's ``columns`` are known every name must be one of them.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise ValueError("Write a SQL boolean expression.")
    try:
        root = parse_statement(sql, what="expression")
    except SQLRefused as exc:
        raise ValueError(str(exc).replace("Write exactly one statement", "Write one expression")) from exc
    while isinstance(root, exp.Paren):
        root = root.this
    if isinstance(root, exp.Query | exp.Subquery) or not isinstance(root, exp.Condition):
        raise ValueError("Write an expression (e.g. amount >= 0), not a statement or a query.")
    if not isinstance(root, exp.Predicate | exp.Connector | exp.Not | exp.Boolean):
        # the kind of expression, not its text: a literal in it may hold a value that must not be echoed
        raise ValueError(f"The expression must be a boolean condition (a comparison, AND/OR, IN, IS ...), not {root.key.upper()}.")
    for node in root.walk():
        if isinstance(node, exp.Query | exp.Subquery):
            raise ValueError("Subqueries are not allowed in a check; use a referential check to look into another dataset.")
        if isinstance(node, exp.Window):
            raise ValueError("Window functions are not allowed in a check.")
        if isinstance(node, exp.Column) and node.table:
            raise ValueError(f"Name columns without a table ({node.sql('postgres')}): the check runs on its dataset.")
    check_expression(root, columns=frozenset(columns) if columns else None)
    aggregates = list(root.find_all(exp.AggFunc))
    if aggregate:
        if not aggregates:
            raise ValueError("An aggregate condition needs an aggregate, e.g. sum(amount) >= 0.")
        for col in root.find_all(exp.Column):
            if col.find_ancestor(exp.AggFunc, exp.Filter) is None:
                raise ValueError(f"The column {col.name} must be inside an aggregate (sum, min, count ...).")
    elif aggregates:
        raise ValueError("A row condition cannot aggregate; use a custom aggregate check for that.")
    return root


def condition_columns(sql: str) -> set[str]:
    return {c.name for c in sqlglot.parse_one(sql, read="postgres").find_all(exp.Column)}


def _min_max(params: dict, *, integer: bool, errors: dict[str, str], required: bool = True) -> None:
    lo, hi = params.get("min"), params.get("max")
    if required and lo is None and hi is None:
        errors["params"] = 'Give "min", "max" or both.'
        return
    for key, value in (("min", lo), ("max", hi)):
        if value is None:
            continue
        ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0) if integer else _bound(value)
        if not ok:
            kind = "a whole number of 0 or more" if integer else "a number or an ISO date/time"
            errors["params"] = f'"{key}" must be {kind}; got {value!r}.'
            return
    if lo is not None and hi is not None:
        if type(lo) is not type(hi) and not (_number(lo) and _number(hi)):
            errors["params"] = '"min" and "max" must be of the same kind (both numbers or both dates).'
        elif lo > hi:
            errors["params"] = f'"min" ({lo}) is above "max" ({hi}).'


def validate_check(check: Check) -> None:
    """Raise ValidationError (by field) unless ``check`` can run; nothing is stored otherwise."""
    errors: dict[str, str] = {}
    kind, params, columns = check.kind, check.params, check.columns
    if kind not in CheckKind.values:
        raise ValidationError({"kind": f"Choose one of: {', '.join(CheckKind.values)}."})
    if not isinstance(params, dict):
        raise ValidationError({"params": "Parameters must be a JSON object."})
    if not isinstance(columns, list) or not all(isinstance(c, str) and c.strip() for c in columns):
        raise ValidationError({"columns": 'Give columns as a list of names, e.g. ["email"].'})
    if len(set(columns)) != len(columns):
        errors["columns"] = "A column is listed twice."
    if kind in COLUMN_KINDS and not columns:
        errors["columns"] = f"A {kind} check needs at least one column."
    if kind not in COLUMN_KINDS and columns:
        errors["columns"] = f"A {kind} check does not take columns."
    if kind in (CheckKind.FRESHNESS, CheckKind.REFERENTIAL, CheckKind.REGEX, CheckKind.LENGTH,
                CheckKind.RANGE, CheckKind.ACCEPTED_VALUES) and len(columns) > 1:
        errors["columns"] = f"A {kind} check reads one column; declare one check per column."
    if check.severity == Severity.DROP and kind not in ROW_KINDS:
        errors["severity"] = f"Only row checks can drop rows; a {kind} check can warn or fail."
    if check.tolerance is not None and not 0 <= check.tolerance <= 1:
        errors["tolerance"] = "Give a share between 0 and 1 (0.01 is 1%)."
    if check.tolerance is not None and kind not in ROW_KINDS:
        errors["tolerance"] = f"A tolerance applies to row checks; a {kind} check passes or not."
    if check.name and "," in check.name:
        errors["name"] = "A check name cannot contain a comma (quarantined rows list them comma-separated)."

    allowed: set[str] = set()
    if kind in (CheckKind.NOT_NULL, CheckKind.UNIQUE):
        allowed = set()
    elif kind == CheckKind.ACCEPTED_VALUES:
        allowed = {"values"}
        values = params.get("values")
        if not isinstance(values, list) or not values:
            errors["params"] = 'Give the accepted values as a non-empty list: {"values": ["a", "b"]}.'
        elif not (all(isinstance(v, str) for v in values) or all(_number(v) for v in values)):
            errors["params"] = "Accepted values must be all strings or all numbers."
    elif kind == CheckKind.RANGE:
        allowed = {"min", "max", "inclusive"}
        _min_max(params, integer=False, errors=errors)
        if "inclusive" in params and not isinstance(params["inclusive"], bool):
            errors["params"] = '"inclusive" must be true or false.'
    elif kind == CheckKind.LENGTH or kind == CheckKind.ROW_COUNT:
        allowed = {"min", "max"}
        _min_max(params, integer=True, errors=errors)
    elif kind == CheckKind.REGEX:
        allowed = {"pattern"}
        pattern = params.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            errors["params"] = 'Give the pattern: {"pattern": "^[A-Z]{3}$"}.'
        elif problem := regex_error(pattern):
            errors["params"] = problem
    elif kind == CheckKind.FRESHNESS:
        allowed = {"max_age_hours"}
        age = params.get("max_age_hours")
        if not _number(age) or age <= 0:
            errors["params"] = 'Give the maximum age in hours: {"max_age_hours": 24}.'
    elif kind == CheckKind.REFERENTIAL:
        allowed = {"dataset", "column"}
        errors.update(_validate_reference(params))
    elif kind == CheckKind.SCHEMA:
        allowed = {"columns", "allow_extra"}
        expected = params.get("columns")
        if not isinstance(expected, dict) or not expected or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in expected.items()
        ):
            errors["params"] = 'Give the expected columns and types: {"columns": {"id": "bigint", "email": "text"}}.'
        if "allow_extra" in params and not isinstance(params["allow_extra"], bool):
            errors["params"] = '"allow_extra" must be true or false.'
    elif kind in (CheckKind.CUSTOM_ROW, CheckKind.CUSTOM_AGGREGATE):
        allowed = {"sql"}
        try:
            parse_condition(
                params.get("sql", ""), aggregate=kind == CheckKind.CUSTOM_AGGREGATE,
                columns=_dataset_columns(check),
            )
        except ValueError as exc:
            errors["params"] = str(exc)
    unknown = set(params) - allowed
    if unknown and "params" not in errors:
        errors["params"] = f"Unknown parameter(s) for a {kind} check: {', '.join(sorted(unknown))}."
    if check.dataset_id and "columns" not in errors:
        known = set(check.dataset.columns.values_list("name", flat=True))
        missing = [c for c in columns if known and c not in known]
        if missing:
            errors["columns"] = f"{check.dataset.name} has no column(s) {', '.join(missing)} (known: {', '.join(sorted(known))})."
    if errors:
        raise ValidationError(errors)


def _dataset_columns(check: Check) -> frozenset[str] | None:
    """The columns of the check's dataset when known (published once), else None."""
    if not check.dataset_id:
        return None
    return frozenset(check.dataset.columns.values_list("name", flat=True)) or None


def _validate_reference(params: dict) -> dict[str, str]:
    from pipelines.models import Dataset

    name, column = params.get("dataset"), params.get("column")
    if not isinstance(name, str) or not isinstance(column, str) or not name or not column:
        return {"params": 'Name the referenced dataset and column: {"dataset": "customers", "column": "customer_id"}.'}
    target = Dataset.objects.filter(name=name).first()
    if target is None:
        return {"params": f"Unknown dataset {name!r}."}
    known = set(target.columns.values_list("name", flat=True))
    if known and column not in known:
        return {"params": f"{name} has no column {column!r} (known: {', '.join(sorted(known))})."}
    return {}
