"""Table kinds: one aggregate in the scan (row count, freshness, custom aggregate) or the catalogue (schema)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from atlas.warehouse.quality_ops import type_family

from ..definitions import number
from ..models import CheckKind, Outcome
from .base import (
    ONE_COLUMN,
    Kind,
    TableCheck,
    Target,
    as_datetime,
    bounds_errors,
    condition_errors,
    qualify,
    register,
    violated,
)

if TYPE_CHECKING:
    from atlas.warehouse import Warehouse

    from ..models import Check


@register
class RowCount(Kind):
    name = CheckKind.ROW_COUNT
    params = frozenset({"min", "max"})

    def validate(self, check: Check) -> dict[str, str]:
        return bounds_errors(check, integer=True)

    def compile(self, check: Check, target: Target) -> TableCheck:
        return TableCheck(check, "count(*)")

    def outcome(self, check: Check, value: Any, total: int, now: datetime) -> tuple[str, Any, str]:
        lo, hi = check.params.get("min"), check.params.get("max")
        if (lo is not None and total < lo) or (hi is not None and total > hi):
            return violated(check), total, f"{total} rows, outside [{lo if lo is not None else '-'}, {hi if hi is not None else '-'}]."
        return Outcome.PASS, total, f"{total} rows."

    def describe(self, check: Check) -> str:
        lo, hi = check.params.get("min"), check.params.get("max")
        if lo is not None and hi is not None:
            return f"The row count is between {lo} and {hi}."
        return f"The row count is at least {lo}." if lo is not None else f"The row count is at most {hi}."


@register
class Freshness(Kind):
    name = CheckKind.FRESHNESS
    columns = ONE_COLUMN
    # max_age_hours: the error age (the check's severity applies beyond it); warn_after_hours, optional: a
    # younger age beyond which the outcome is a warning (a freshness expectation's warn and error ages).
    params = frozenset({"max_age_hours", "warn_after_hours"})

    def validate(self, check: Check) -> dict[str, str]:
        age = check.params.get("max_age_hours")
        if not number(age) or age <= 0:
            return {"params": 'Give the maximum age in hours: {"max_age_hours": 24}.'}
        warn = check.params.get("warn_after_hours")
        if warn is not None and (not number(warn) or not 0 < warn < age):
            return {"params": 'warn_after_hours is an age in hours below max_age_hours: {"warn_after_hours": 12,'
                              ' "max_age_hours": 24}.'}
        return {}

    def compile(self, check: Check, target: Target) -> TableCheck:
        return TableCheck(check, f"max({target.col(check.columns[0])})")

    def outcome(self, check: Check, value: Any, total: int, now: datetime) -> tuple[str, Any, str]:
        newest = as_datetime(value)
        if value is None:
            return violated(check), None, "No value at all (empty table or only NULLs): nothing is fresh."
        if newest is None:
            return Outcome.ERROR, value, f"The newest value {value!r} is not a date or time."
        age_hours = (now - newest).total_seconds() / 3600
        limit = check.params["max_age_hours"]
        observed = {"newest": newest.isoformat(), "age_hours": round(age_hours, 3)}
        if age_hours > limit:
            return violated(check), observed, f"The newest value is {age_hours:.1f} h old, above {limit} h."
        warn = check.params.get("warn_after_hours")
        if warn is not None and age_hours > warn:
            return Outcome.WARN, observed, f"The newest value is {age_hours:.1f} h old, above the warn age {warn} h."
        return Outcome.PASS, observed, f"The newest value is {age_hours:.1f} h old."

    def describe(self, check: Check) -> str:
        warn = check.params.get("warn_after_hours")
        also = f" (a warning beyond {warn} h)" if warn is not None else ""
        return f"The newest {check.columns[0]} is at most {check.params.get('max_age_hours')} h old{also}."


@register
class CustomAggregate(Kind):
    name = CheckKind.CUSTOM_AGGREGATE
    params = frozenset({"sql"})

    def validate(self, check: Check) -> dict[str, str]:
        return condition_errors(check, aggregate=True)

    def needs_types(self, check: Check, wh: Warehouse) -> bool:
        return True  # the condition keeps PostgreSQL's meaning on every engine (typed transpiling)

    def compile(self, check: Check, target: Target) -> TableCheck:
        cond = qualify(target.wh, check.params["sql"], target)
        return TableCheck(check, f"CASE WHEN ({cond}) THEN 1 WHEN NOT ({cond}) THEN 0 END")

    def outcome(self, check: Check, value: Any, total: int, now: datetime) -> tuple[str, Any, str]:
        # 1 true, 0 false, NULL unknown (passes, as in SQL CHECK constraints).
        sql = check.params["sql"]
        if value is not None and int(value) == 0:
            return violated(check), False, f"The condition {sql} is false."
        if value is None:
            return Outcome.PASS, None, f"The condition {sql} is unknown (NULL); that is not a violation."
        return Outcome.PASS, True, f"The condition {sql} holds."

    def describe(self, check: Check) -> str:
        return f"The table as a whole satisfies {check.params.get('sql', '')}."


@register
class Schema(Kind):
    """Expected columns and types, compared by type family; reads the catalogue, no rows."""

    name = CheckKind.SCHEMA
    params = frozenset({"columns", "allow_extra"})

    def validate(self, check: Check) -> dict[str, str]:
        errors: dict[str, str] = {}
        expected = check.params.get("columns")
        if not isinstance(expected, dict) or not expected or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in expected.items()
        ):
            errors["params"] = 'Give the expected columns and types: {"columns": {"id": "bigint", "email": "text"}}.'
        if "allow_extra" in check.params and not isinstance(check.params["allow_extra"], bool):
            errors["params"] = '"allow_extra" must be true or false.'
        return errors

    def compile(self, check: Check, target: Target) -> None:
        return None

    def outcome(self, check: Check, value: Any, total: int, now: datetime) -> tuple[str, Any, str]:
        """``value``: the table's column types by name."""
        actual: dict[str, str] = value
        expected: dict[str, str] = check.params["columns"]
        added = [] if check.params.get("allow_extra") else sorted(set(actual) - set(expected))
        removed = sorted(set(expected) - set(actual))
        retyped = {
            name: {"expected": want, "actual": actual[name]}
            for name, want in expected.items()
            if name in actual and type_family(want) != type_family(actual[name])
        }
        drift = {"added": added, "removed": removed, "retyped": retyped}
        if not (added or removed or retyped):
            return Outcome.PASS, drift, "The columns and types are as expected."
        parts = []
        if added:
            parts.append("added " + ", ".join(added))
        if removed:
            parts.append("removed " + ", ".join(removed))
        if retyped:
            parts.append("retyped " + ", ".join(f"{n} ({v['expected']} → {v['actual']})" for n, v in retyped.items()))
        return violated(check), drift, "Schema drift: " + "; ".join(parts) + "."

    def describe(self, check: Check) -> str:
        expected = check.params.get("columns") or {}
        listed = ", ".join(f"{name} {type_}" for name, type_ in expected.items())
        extra = " (others allowed)" if check.params.get("allow_extra") else " and no others"
        return f"The table has the columns {listed}{extra}."
