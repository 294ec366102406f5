"""What each kind of check takes, and the validation that refuses a broken one on save.

Parameters per kind (``Check.params``):

* ``not_null``: none; fails rows where any of ``columns`` is NULL.
* ``unique``: ``{"order_by": "updated_at desc"}`` optional; fails rows whose (``columns``)
  value occurs more than once (rows with a NULL key column are not compared, as in SQL's
  UNIQUE), counted in duplicated keys; as a drop check it keeps the first row of each key by
  ``order_by``, else the first loaded.
* ``accepted_values``: ``{"values": [...]}`` (strings compare as text); ``"count": "values"``
  observes the distinct failing values (as dbt counts) instead of the failing rows.
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

import sqlglot
from django.core.exceptions import ValidationError
from sqlglot import exp

from atlas.sql import SQLRefused, parse_statement
from atlas.sql.validate import DIALECT as OPERATOR_DIALECT
from atlas.sql.validate import check_expression
from atlas.warehouse.quality_ops import portable_regex_problem, type_family

from .models import Check, Severity

__all__ = ["condition_columns", "parse_condition", "regex_error", "type_family", "validate_check"]


def number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(value: Any) -> bool:
    """A range bound: a number, or an ISO date/time string for temporal columns."""
    return number(value) or (isinstance(value, str) and bool(re.match(r"^\d{4}-\d{2}-\d{2}", value)))


def regex_error(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used on every engine, or None.

    Python's ``re`` catches syntax errors; the warehouse backends say what their
    engines refuse (DuckDB's RE2: backreferences, lookaround; PostgreSQL when it is
    the warehouse). A pattern valid on one engine only would make the same
    pipeline fail on the other.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"The regex does not compile: {exc}."
    return portable_regex_problem(pattern)


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
            raise ValueError(f"Name columns without a table ({node.sql(OPERATOR_DIALECT)}): the check runs on its dataset.")
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
    return {c.name for c in sqlglot.parse_one(sql, read=OPERATOR_DIALECT).find_all(exp.Column)}


def min_max(params: dict, *, integer: bool, errors: dict[str, str], required: bool = True) -> None:
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
        if type(lo) is not type(hi) and not (number(lo) and number(hi)):
            errors["params"] = '"min" and "max" must be of the same kind (both numbers or both dates).'
        elif lo > hi:
            errors["params"] = f'"min" ({lo}) is above "max" ({hi}).'


def validate_check(check: Check) -> None:
    """Raise ValidationError (by field) unless ``check`` can run; nothing is stored otherwise.

    What every kind shares is checked here (columns, severity, tolerance, name);
    what is particular to a kind, by its class in :mod:`quality.kinds`.
    """
    from .kinds import COLUMNS, NO_COLUMNS, ONE_COLUMN, REGISTRY

    errors: dict[str, str] = {}
    kind, params, columns = check.kind, check.params, check.columns
    spec = REGISTRY.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise ValidationError({"kind": f"Choose one of: {', '.join(REGISTRY)}."})
    if not isinstance(params, dict):
        raise ValidationError({"params": "Parameters must be a JSON object."})
    if not isinstance(columns, list) or not all(isinstance(c, str) and c.strip() for c in columns):
        raise ValidationError({"columns": 'Give columns as a list of names, e.g. ["email"].'})
    if len(set(columns)) != len(columns):
        errors["columns"] = "A column is listed twice."
    if spec.columns in (ONE_COLUMN, COLUMNS) and not columns:
        errors["columns"] = f"A {kind} check needs at least one column."
    if spec.columns == NO_COLUMNS and columns:
        errors["columns"] = f"A {kind} check does not take columns."
    if spec.columns == ONE_COLUMN and len(columns) > 1:
        errors["columns"] = f"A {kind} check reads one column; declare one check per column."
    if check.severity == Severity.DROP and not spec.row_level:
        errors["severity"] = f"Only row checks can drop rows; a {kind} check can warn or fail."
    if check.tolerance is not None and not 0 <= check.tolerance <= 1:
        errors["tolerance"] = "Give a share between 0 and 1 (0.01 is 1%)."
    if check.tolerance is not None and not spec.row_level:
        errors["tolerance"] = f"A tolerance applies to row checks; a {kind} check passes or not."
    if check.name and "," in check.name:
        errors["name"] = "A check name cannot contain a comma (quarantined rows list them comma-separated)."
    errors.update(spec.validate(check))
    if "params" not in errors:
        from .dependencies import cycle_error

        if problem := cycle_error(check):
            errors["params"] = problem
    unknown = set(params) - spec.params
    if unknown and "params" not in errors:
        errors["params"] = f"Unknown parameter(s) for a {kind} check: {', '.join(sorted(unknown))}."
    if check.dataset_id and "columns" not in errors:
        known = set(check.dataset.columns.values_list("name", flat=True))
        missing = [c for c in columns if known and c not in known]
        if missing:
            errors["columns"] = f"{check.dataset.name} has no column(s) {', '.join(missing)} (known: {', '.join(sorted(known))})."
    if errors:
        raise ValidationError(errors)


def dataset_columns(check: Check) -> frozenset[str] | None:
    """The columns of the check's dataset when known (published once), else None."""
    if not check.dataset_id:
        return None
    return frozenset(check.dataset.columns.values_list("name", flat=True)) or None


def validate_reference(params: dict, layer: str | None = None) -> dict[str, str]:
    """The referenced dataset and column exist, in a layer a check on ``layer`` may read.

    The check's SQL runs as the operator-SQL role of the checked dataset's layer
    (``LAYER_READS``: a Navigate check reads Chart and Navigate, never raw Explore), so a
    reference it could not read is refused here, when the check is saved, not at run time.
    """
    from atlas.warehouse.privileges import LAYER_READS
    from pipelines.models import Dataset

    name, column = params.get("dataset"), params.get("column")
    if not isinstance(name, str) or not isinstance(column, str) or not name or not column:
        return {"params": 'Name the referenced dataset and column: {"dataset": "customers", "column": "customer_id"}.'}
    target = Dataset.objects.filter(name=name).first()
    if target is None:
        return {"params": f"Unknown dataset {name!r}."}
    readable = LAYER_READS.get(layer or "", ())
    if layer and target.layer not in readable:
        return {
            "params": f"A check on a {layer} dataset may read {' and '.join(readable)} datasets only;"
            f" {name} is in {target.layer}."
        }
    known = set(target.columns.values_list("name", flat=True))
    if known and column not in known:
        return {"params": f"{name} has no column {column!r} (known: {', '.join(sorted(known))})."}
    return {}
