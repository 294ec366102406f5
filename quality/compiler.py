"""Compile a dataset's checks into as few table scans as possible.

Every row check becomes a predicate that is TRUE for a failing row (NULL and
FALSE both mean "not failing", so NULL handling is part of each predicate);
what a predicate needs from outside the row — the duplicated keys of a
uniqueness check, the keys of a referenced dataset — is a LEFT JOIN onto a
derived table, so the whole set still reads the staged table once:

    SELECT count(*),
           count(*) FILTER (WHERE <check 1 fails>), ...,      -- row checks
           max(<freshness column>), CASE WHEN <agg cond> ...   -- table checks
    FROM staged AS s
    LEFT JOIN (SELECT k FROM staged GROUP BY k HAVING count(*) > 1) AS u1 ...
    LEFT JOIN (SELECT DISTINCT col FROM other) AS r2 ...

Uniqueness is found with GROUP BY ... HAVING (a hash aggregate), never with
``count(DISTINCT ...)``, which sorts on PostgreSQL; referential integrity is an
anti-join. Schema checks read the catalogue and no rows at all. The same
joins and predicates select the rows a drop check moves to quarantine, so
what is counted is exactly what is moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from atlas.warehouse import Warehouse, WarehouseError

from .models import Check, CheckKind

ALIAS = "s"


@dataclass
class RowCheck:
    """A row check: SQL true for failing rows, the joins it needs, its bind parameters."""

    check: Check
    bad: str
    params: list[Any] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)


@dataclass
class TableCheck:
    """A table check computed in the scan: one aggregate expression."""

    check: Check
    expr: str
    params: list[Any] = field(default_factory=list)


@dataclass
class Plan:
    schema: str
    table: str
    row: list[RowCheck]
    table_checks: list[TableCheck]
    catalog: list[Check]
    referenced: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def joins(self) -> list[str]:
        return [j for rc in self.row for j in rc.joins]


def _col(wh: Warehouse, name: str) -> str:
    return f"{ALIAS}.{wh.quote(name)}"


def _text(wh: Warehouse, name: str) -> str:
    return f"CAST({_col(wh, name)} AS text)"


def qualify(wh: Warehouse, sql: str) -> str:
    """An operator's expression (PostgreSQL dialect) for this engine, its columns bound to the staged row."""
    tree = sqlglot.parse_one(sql, read="postgres")
    for column in tree.find_all(exp.Column):
        column.set("table", exp.to_identifier(ALIAS))
    return wh.transpile(tree.sql("postgres"))


def compile_row_check(wh: Warehouse, check: Check, schema: str, table: str, index: int) -> RowCheck:
    kind, params, cols = check.kind, check.params, check.columns
    if kind == CheckKind.NOT_NULL:
        return RowCheck(check, "(" + " OR ".join(f"{_col(wh, c)} IS NULL" for c in cols) + ")")
    if kind == CheckKind.UNIQUE:
        alias = f"u{index}"
        keys = ", ".join(wh.quote(c) for c in cols)
        not_null = " AND ".join(f"{wh.quote(c)} IS NOT NULL" for c in cols)
        on = " AND ".join(f"{alias}.{wh.quote(c)} = {_col(wh, c)}" for c in cols)
        join = (
            f"LEFT JOIN (SELECT {keys}, 1 AS {wh.quote('_hit')} FROM {wh.table(schema, table)}"
            f" WHERE {not_null} GROUP BY {keys} HAVING count(*) > 1) AS {alias} ON {on}"
        )
        return RowCheck(check, f"({alias}.{wh.quote('_hit')} IS NOT NULL)", joins=[join])
    if kind == CheckKind.ACCEPTED_VALUES:
        values = params["values"]
        target = _text(wh, cols[0]) if isinstance(values[0], str) else _col(wh, cols[0])
        marks = ", ".join(["%s"] * len(values))
        return RowCheck(check, f"(NOT ({target} IN ({marks})))", list(values))
    if kind == CheckKind.RANGE:
        col, parts, values = _col(wh, cols[0]), [], []
        inclusive = params.get("inclusive", True)
        if params.get("min") is not None:
            parts.append(f"{col} {'<' if inclusive else '<='} %s")
            values.append(params["min"])
        if params.get("max") is not None:
            parts.append(f"{col} {'>' if inclusive else '>='} %s")
            values.append(params["max"])
        return RowCheck(check, "(" + " OR ".join(parts) + ")", values)
    if kind == CheckKind.REGEX:
        return RowCheck(check, f"(NOT {wh.regex_match(_text(wh, cols[0]))})", [params["pattern"]])
    if kind == CheckKind.LENGTH:
        length, parts, values = f"length({_text(wh, cols[0])})", [], []
        if params.get("min") is not None:
            parts.append(f"{length} < %s")
            values.append(params["min"])
        if params.get("max") is not None:
            parts.append(f"{length} > %s")
            values.append(params["max"])
        return RowCheck(check, "(" + " OR ".join(parts) + ")", values)
    if kind == CheckKind.REFERENTIAL:
        from pipelines.models import Dataset

        target = Dataset.objects.filter(name=params["dataset"]).first()
        if target is None:
            raise WarehouseError(f"Check {check.name!r}: the referenced dataset {params['dataset']!r} no longer exists.")
        if not wh.table_exists(target.layer, target.table):
            raise WarehouseError(
                f"Check {check.name!r}: the referenced dataset {target.qualified_table} has not been loaded yet."
            )
        alias, key = f"r{index}", wh.quote("_key")
        ref = wh.quote(params["column"])
        join = (
            f"LEFT JOIN (SELECT DISTINCT {ref} AS {key} FROM {wh.table(target.layer, target.table)}"
            f" WHERE {ref} IS NOT NULL) AS {alias} ON {alias}.{key} = {_col(wh, cols[0])}"
        )
        return RowCheck(check, f"({_col(wh, cols[0])} IS NOT NULL AND {alias}.{key} IS NULL)", joins=[join])
    if kind == CheckKind.CUSTOM_ROW:
        return RowCheck(check, f"(NOT ({qualify(wh, params['sql'])}))")
    raise ValueError(f"{kind} is not a row check")


def compile_table_check(wh: Warehouse, check: Check) -> TableCheck | None:
    if check.kind == CheckKind.ROW_COUNT:
        return TableCheck(check, "count(*)")
    if check.kind == CheckKind.FRESHNESS:
        return TableCheck(check, f"max({_col(wh, check.columns[0])})")
    if check.kind == CheckKind.CUSTOM_AGGREGATE:
        cond = qualify(wh, check.params["sql"])
        return TableCheck(check, f"CASE WHEN ({cond}) THEN 1 WHEN NOT ({cond}) THEN 0 END")
    return None


def compile_plan(wh: Warehouse, checks: list[Check], schema: str, table: str) -> Plan:
    plan = Plan(schema=schema, table=table, row=[], table_checks=[], catalog=[])
    for index, check in enumerate(checks):
        if check.is_row_level:
            plan.row.append(compile_row_check(wh, check, schema, table, index))
        elif check.kind == CheckKind.SCHEMA:
            plan.catalog.append(check)
        else:
            compiled = compile_table_check(wh, check)
            if compiled is not None:
                plan.table_checks.append(compiled)
    return plan


def scan_sql(wh: Warehouse, plan: Plan) -> tuple[str, list[Any]]:
    """The one aggregate query: total rows, then one value per row check and per table check."""
    items, params = ["count(*)"], []
    for rc in plan.row:
        items.append(f"count(*) FILTER (WHERE {rc.bad})")
        params += rc.params
    for tc in plan.table_checks:
        items.append(tc.expr)
        params += tc.params
    joins = " ".join(plan.joins)
    return f"SELECT {', '.join(items)} FROM {wh.table(plan.schema, plan.table)} AS {ALIAS} {joins}".strip(), params


def sample_sql(wh: Warehouse, plan: Plan, rc: RowCheck, limit: int) -> tuple[str, list[Any]]:
    return (
        f"SELECT {ALIAS}.* FROM {wh.table(plan.schema, plan.table)} AS {ALIAS} {' '.join(rc.joins)}"
        f" WHERE {rc.bad} LIMIT {int(limit)}",
        list(rc.params),
    )
