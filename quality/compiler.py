"""Compile a dataset's checks into as few table scans as possible.

Every row check becomes a predicate that is TRUE for a failing row (NULL and
FALSE both mean "not failing", so NULL handling is part of each predicate).
Checks that only look at the row are counted in one aggregate over one scan;
what needs more than the row — uniqueness, referential integrity — is counted
by its own scalar subquery in the same statement (one round trip):

    SELECT count(*),
           count(*) FILTER (WHERE <check 1 fails>), ...,          -- row checks
           (SELECT count(k) - count(DISTINCT k) FROM staged),       -- unique: surplus rows
           (SELECT count(*) FROM staged LEFT JOIN other ... IS NULL), -- referential: anti-join
           max(<freshness column>), CASE WHEN <agg cond> ...        -- table checks
    FROM staged AS s

Measured (``benchmarks/quality``), the subqueries beat LEFT JOINs onto derived
tables in the scan: PostgreSQL rebuilds a joined derived table in every
parallel worker. Uniqueness first counts the surplus rows (``count(k) -
count(DISTINCT k)``, a datum sort, several times faster than a hash GROUP BY
of a million keys on PostgreSQL); zero surplus proves the check passes, and
only a check that fails pays for the exact failing-row count (a GROUP BY ...
HAVING). Several key columns are compared as one text key on PostgreSQL when
every column's text form is canonical (same value, same text), else grouped.
Schema checks read the catalogue and no rows at all.

Each kind of check compiles itself (:mod:`quality.kinds`); how an engine says
what a strategy needs (regex, key bitmaps, hashed or text keys) is the
warehouse backend's (:mod:`atlas.warehouse.quality_ops`). Where the warehouse
has them (DuckDB, measured in ``benchmarks/quality``), an integer key whose
range, read when compiling, is dense enough is counted with a bitmap of that
range, a foreign key onto such a key probes a bitmap of the referenced keys in
the scan itself, and several key columns are counted as one hash. Each stays
exact: a key outside the range read, or a hash collision, can only overstate a
surplus (the exact count then runs), and the foreign-key count is NULL (the
anti-join then counts) if the referenced table changed since its range was read.

Samples and the drop split select failing rows with the same predicates, the
derived tables (duplicated keys, referenced keys) joined in, so what is
counted is exactly what is moved.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot.errors import SqlglotError

from atlas.warehouse import Warehouse, WarehouseError

from .kinds import ALIAS, RowCheck, TableCheck, Target, get_kind, qualify
from .models import Check

__all__ = ["ALIAS", "Plan", "RowCheck", "TableCheck", "compile_plan", "item_sql", "qualify", "sample_sql", "scan_sql", "standalone"]


@dataclass
class Plan:
    schema: str
    table: str
    row: list[RowCheck]
    table_checks: list[TableCheck]
    catalog: list[Check]
    referenced: dict[int, tuple[str, str]] = field(default_factory=dict)

    def items(self) -> list[tuple[Check, str, list[Any]]]:
        """Every value the scan computes after ``count(*)``, in order: row checks, then table checks."""
        return [(rc.check, *rc.scan_item()) for rc in self.row] + [
            (tc.check, tc.expr, list(tc.params)) for tc in self.table_checks
        ]


def compile_plan(
    wh: Warehouse, checks: list[Check], schema: str, table: str, errors: dict[Check, str] | None = None,
    unique_against: tuple[str, str] | None = None, types: dict[str, str] | None = None,
    against: Callable[[str], str] | None = None,
) -> Plan:
    """The checks as one plan; with ``errors``, a check that cannot compile is left out and its reason kept there.

    ``types``: the table's column types by name, when the caller has read them already.
    """
    plan = Plan(schema=schema, table=table, row=[], table_checks=[], catalog=[])
    if types is None:
        types = {}
        if any(_needs_types(wh, c) for c in checks):
            types = {c.name: c.type for c in wh.columns(schema, table)}
    for index, check in enumerate(checks):
        try:
            target = Target(wh, schema, table, index=index, types=types, unique_against=unique_against, against=against)
            compiled = get_kind(check.kind).compile(check, target)
        except (WarehouseError, ValueError, SqlglotError) as exc:
            if errors is None:
                raise
            errors[check] = f"The check cannot be compiled: {exc}"
            continue
        if isinstance(compiled, RowCheck):
            plan.row.append(compiled)
        elif isinstance(compiled, TableCheck):
            plan.table_checks.append(compiled)
        else:
            plan.catalog.append(check)
    return plan


def _needs_types(wh: Warehouse, check: Check) -> bool:
    try:
        return get_kind(check.kind).needs_types(check, wh)
    except ValueError:
        return False  # an unknown kind: reported when it is compiled


def scan_sql(wh: Warehouse, plan: Plan) -> tuple[str, list[Any]]:
    """The one statement: total rows, then one value per row check and per table check."""
    return item_sql(wh, plan, plan.items())


def item_sql(wh: Warehouse, plan: Plan, items: list[tuple[Check, str, list[Any]]]) -> tuple[str, list[Any]]:
    """``SELECT count(*), <item>, ... FROM staged``: the scan, or a part of it (error isolation)."""
    exprs, params = ["count(*)"], []
    for _check, expr, values in items:
        exprs.append(expr)
        params += values
    return f"SELECT {', '.join(exprs)} FROM {wh.table(plan.schema, plan.table)} AS {ALIAS}", params


_OUTER = re.compile(rf'(?<![\w."])(?:{ALIAS}|"{ALIAS}")\.')


def standalone(expr: str) -> bool:
    """Whether a scan item is a subquery of its own: parenthesised whole, reading nothing of the scanned row.

    Such an item (a uniqueness count, a foreign-key anti-join) may run as ``SELECT <item>``
    beside the scan. Judged on the text; a wrong "yes" fails as its own statement and the
    caller falls back to the one statement, so the answer is never wrong, only slower.
    """
    if not expr.startswith("(SELECT ") or _OUTER.search(expr):
        return False
    depth, quote = 0, ""
    for i, ch in enumerate(expr):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i == len(expr) - 1
    return False


def sample_sql(wh: Warehouse, plan: Plan, rc: RowCheck, limit: int) -> tuple[str, list[Any]]:
    bad, joins = (rc.sample_bad, []) if rc.sample_bad else (rc.bad, rc.joins)
    return (
        f"SELECT {ALIAS}.* FROM {wh.table(plan.schema, plan.table)} AS {ALIAS} {' '.join(joins)}"
        f" WHERE {bad} LIMIT {int(limit)}",
        list(rc.params),
    )
