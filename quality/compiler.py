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

DuckDB (columnar, hash-based) gets its own strategies where measured faster
(``benchmarks/quality``: uniqueness of a million dense integer keys 6x faster,
the foreign key 2x): an integer key whose range, read when compiling, is dense
enough is counted with a bitmap of that range (``bitstring_agg``: one bit per
possible value, no hash table), a foreign key onto such a key probes a bitmap of
the referenced keys in the scan itself (``get_bit``), and several key columns
are counted as one 64-bit ``hash()``. Each stays exact: a key outside the range
read, or a hash collision, can only overstate a surplus (the exact count then
runs), and the foreign-key count is NULL (the anti-join then counts) if the
referenced table changed since its range was read.

Samples and the drop split select failing rows with the same predicates, the
derived tables (duplicated keys, referenced keys) joined in, so what is
counted is exactly what is moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from atlas.warehouse import Warehouse, WarehouseError

from .models import Check, CheckKind

ALIAS = "s"


@dataclass
class RowCheck:
    """A row check: SQL true for failing rows, the joins it needs, its bind parameters.

    ``count`` is set when the failing rows are not counted by a FILTER in the
    scan's aggregate but by another expression (a scalar subquery, a bitmap
    probe); with ``count_is_exact`` false it counts an upper bound of them
    (surplus rows; zero: passes) and ``exact`` counts the failing rows. A
    ``count`` that is NULL could not decide (a shortcut whose premise no longer
    held): ``exact`` counts then too.
    """

    check: Check
    bad: str
    params: list[Any] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)
    count: str | None = None
    count_params: list[Any] = field(default_factory=list)
    count_is_exact: bool = True
    exact: str | None = None

    def needs_exact(self, value: Any) -> bool:
        """Whether the scan's ``value`` for this check must be replaced by the ``exact`` count."""
        return self.exact is not None and (value is None or (bool(value) and not self.count_is_exact))

    def scan_item(self) -> tuple[str, list[Any]]:
        """The select-list item that counts this check's failing (or surplus) rows."""
        if self.count is not None:
            return self.count, list(self.count_params)
        return f"count(*) FILTER (WHERE {self.bad})", list(self.params)


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

    def items(self) -> list[tuple[Check, str, list[Any]]]:
        """Every value the scan computes after ``count(*)``, in order: row checks, then table checks."""
        return [(rc.check, *rc.scan_item()) for rc in self.row] + [
            (tc.check, tc.expr, list(tc.params)) for tc in self.table_checks
        ]


def _col(wh: Warehouse, name: str) -> str:
    return f"{ALIAS}.{wh.quote(name)}"


def _text(wh: Warehouse, name: str) -> str:
    return f"CAST({_col(wh, name)} AS text)"


# Type families whose text form is canonical: equal values always give equal text.
TEXT_CANONICAL = frozenset({"integer", "text", "date", "timestamp", "uuid", "boolean"})
# Type families whose DuckDB hash() is canonical: equal values always hash alike (DuckDB hashes
# -0.0 as 0.0 and every NaN alike, and compares NaN equal to NaN).
HASH_CANONICAL = TEXT_CANONICAL | {"decimal", "float", "timestamptz", "time"}
# Bitmaps (DuckDB bitstring_agg) over integer keys: signed types up to 64 bits, at most this many
# bits, and at most BITMAP_DENSITY bits per counted value (sparser keys hash faster than they set bits).
BITMAP_TYPES = frozenset({"tinyint", "smallint", "integer", "int", "int2", "int4", "int8", "bigint"})
BITMAP_MAX_BITS = 1 << 27
BITMAP_MIN_BITS = 1 << 16
BITMAP_DENSITY = 8


def _bitmap_span(
    wh: Warehouse, schema: str, table: str, column: str, types: dict[str, str] | None = None
) -> tuple[int, int] | None:
    """``(min, max)`` of an integer column when a bitmap of its range is cheaper than hashing it, else None.

    Read when compiling (DuckDB: about a millisecond for a million rows); the compiled SQL stays exact
    when the table changes afterwards (see the callers). Without ``types``, the column is taken for an
    integer one when its minimum and maximum come back as integers.
    """
    if types is not None and types.get(column, "").strip().lower() not in BITMAP_TYPES:
        return None
    with wh.cursor() as cur:
        col = wh.quote(column)
        lo, hi, n = cur.execute(f"SELECT min({col}), max({col}), count({col}) FROM {wh.table(schema, table)}").fetchone()
    if not n or not all(isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63 for v in (lo, hi)):
        return None
    if hi - lo + 1 > min(BITMAP_MAX_BITS, max(BITMAP_MIN_BITS, BITMAP_DENSITY * int(n))):
        return None
    return lo, hi


def _unique(
    wh: Warehouse, check: Check, schema: str, table: str, index: int, types: dict[str, str],
    against: tuple[str, str] | None = None,
) -> RowCheck:
    from .definitions import type_family

    cols = check.columns
    src = wh.table(schema, table)
    alias = f"u{index}"
    keys = ", ".join(wh.quote(c) for c in cols)
    not_null = " AND ".join(f"{wh.quote(c)} IS NOT NULL" for c in cols)
    on = " AND ".join(f"{alias}.{wh.quote(c)} = {_col(wh, c)}" for c in cols)
    if against is not None:  # keys must also be unique together with the rows already in ``against``
        src = f"(SELECT {keys} FROM {src} UNION ALL SELECT {keys} FROM {wh.table(*against)}) AS {alias}a"
    join = (
        f"LEFT JOIN (SELECT {keys}, 1 AS {wh.quote('_hit')} FROM {src}"
        f" WHERE {not_null} GROUP BY {keys} HAVING count(*) > 1) AS {alias} ON {on}"
    )
    if against is not None:
        bad = f"({alias}.{wh.quote('_hit')} IS NOT NULL)"
        count = f"(SELECT count(*) FROM {wh.table(schema, table)} AS {ALIAS} {join} WHERE {bad})"
        return RowCheck(check, bad, joins=[join], count=count)
    exact = (
        f"(SELECT coalesce(sum({wh.quote('_n')}), 0) FROM (SELECT count(*) AS {wh.quote('_n')} FROM {src}"
        f" WHERE {not_null} GROUP BY {keys} HAVING count(*) > 1) AS {alias})"
    )
    rc = RowCheck(check, f"({alias}.{wh.quote('_hit')} IS NOT NULL)", joins=[join], exact=exact)
    if len(cols) == 1:
        key = wh.quote(cols[0])
        span = _bitmap_span(wh, schema, table, cols[0], types) if wh.vendor == "duckdb" else None
        if span is not None:
            # Integer keys in a dense range: one bit per possible value, no hash table. A key outside
            # [lo, hi] (the table changed since the range was read) counts as surplus: the exact count.
            lo, hi = span
            rc.count = (
                f"(SELECT count({key}) - coalesce(bit_count(bitstring_agg({key}, {lo}, {hi})"
                f" FILTER (WHERE {key} BETWEEN {lo} AND {hi})), 0) FROM {src})"
            )
            rc.count_is_exact = False
            return rc
    elif wh.vendor == "duckdb" and all(type_family(types.get(c, "")) in HASH_CANONICAL for c in cols):
        # One 64-bit hash per key instead of a hash table of key tuples; equal keys hash alike, so a
        # collision can only overstate the surplus, which sends the check to the exact count.
        key = "hash(" + ", ".join(wh.quote(c) for c in cols) + ")"
    elif wh.vendor == "postgresql" and all(type_family(types.get(c, "")) in TEXT_CANONICAL for c in cols):
        # One text key in the byte order of the "C" collation: a cheap datum sort. Distinct keys
        # may collide (a separator inside a value), which only sends the check to the exact count.
        key = "(" + " || chr(31) || ".join(f"CAST({wh.quote(c)} AS text)" for c in cols) + ') COLLATE "C"'
    else:
        rc.count = exact  # a hash aggregate of the key tuples is as fast as their distinct count
        return rc
    rc.count = f"(SELECT count({key}) - count(DISTINCT {key}) FROM {src} WHERE {not_null})"
    rc.count_is_exact = False
    return rc


def qualify(wh: Warehouse, sql: str) -> str:
    """An operator's expression (PostgreSQL dialect) for this engine, its columns bound to the staged row."""
    return _qualified(wh, sql)


@lru_cache(maxsize=256)
def _qualified(wh: Warehouse, sql: str) -> str:
    # parsing and transpiling is the costliest part of compiling a plan: once per warehouse and expression
    tree = sqlglot.parse_one(sql, read="postgres")
    for column in tree.find_all(exp.Column):
        column.set("table", exp.to_identifier(ALIAS))
    return wh.transpile(tree.sql("postgres"))


def compile_row_check(
    wh: Warehouse, check: Check, schema: str, table: str, index: int, types: dict[str, str] | None = None,
    unique_against: tuple[str, str] | None = None,
) -> RowCheck:
    """``unique_against`` (schema, table): uniqueness also counts the keys of that table (re-processing)."""
    kind, params, cols = check.kind, check.params, check.columns
    if kind == CheckKind.NOT_NULL:
        rc = RowCheck(check, "(" + " OR ".join(f"{_col(wh, c)} IS NULL" for c in cols) + ")")
        if len(cols) == 1:  # DuckDB answers count(column) from its null statistics; PostgreSQL as fast as FILTER
            rc.count = f"count(*) - count({_col(wh, cols[0])})"
        return rc
    if kind == CheckKind.UNIQUE:
        return _unique(wh, check, schema, table, index, types or {}, unique_against)
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
        span: tuple[int, int] | None = None
        if wh.vendor == "duckdb" and (types or {}).get(cols[0], "").strip().lower() in BITMAP_TYPES:
            try:  # the referenced keys' range, for a bitmap (below); it also says that the table exists
                span = _bitmap_span(wh, target.layer, target.table, params["column"])
                exists = True
            except WarehouseError:
                exists = wh.table_exists(target.layer, target.table)
                if exists:
                    raise
        else:
            exists = wh.table_exists(target.layer, target.table)
        if not exists:
            raise WarehouseError(
                f"Check {check.name!r}: the referenced dataset {target.qualified_table} has not been loaded yet."
            )
        alias, key = f"r{index}", wh.quote("_key")
        ref, col, other = wh.quote(params["column"]), wh.quote(cols[0]), wh.table(target.layer, target.table)
        join = (
            f"LEFT JOIN (SELECT DISTINCT {ref} AS {key} FROM {other}"
            f" WHERE {ref} IS NOT NULL) AS {alias} ON {alias}.{key} = {_col(wh, cols[0])}"
        )
        # An anti-join: unmatched rows come out of a LEFT JOIN once, whatever the duplicates on the
        # other side (PostgreSQL plans it as a hash anti join; DuckDB runs it twice as fast as NOT EXISTS).
        count = (
            f"(SELECT count(*) FROM {wh.table(schema, table)} AS {alias}s LEFT JOIN {other} AS {alias}"
            f" ON {alias}.{ref} = {alias}s.{col} WHERE {alias}s.{col} IS NOT NULL AND {alias}.{ref} IS NULL)"
        )
        rc = RowCheck(check, f"({_col(wh, cols[0])} IS NOT NULL AND {alias}.{key} IS NULL)", joins=[join], count=count)
        if span is not None:
            # The referenced keys as a bitmap of their range [lo, hi], probed in the scan: a key
            # outside it is referenced by nothing. Exact while the referenced keys all lie in
            # [lo, hi], some of them; if the referenced table changed since the range was read,
            # the value is NULL and the anti-join above counts instead. (CASE, not AND/OR: DuckDB
            # evaluates a THEN only for the rows its WHEN selects, so get_bit never sees a key
            # outside the bitmap; measured cheaper than clamping the index.)
            lo, hi = span
            probe = _col(wh, cols[0])
            bitmap = f"(SELECT bitstring_agg({ref}, {lo}, {hi}) FROM {other} WHERE {ref} BETWEEN {lo} AND {hi})"
            rc.count = (
                f"CASE WHEN (SELECT count({ref}) > 0 AND count(*) FILTER (WHERE {ref} NOT BETWEEN {lo} AND {hi}) = 0"
                f" FROM {other}) THEN count(*) FILTER (WHERE {probe} IS NOT NULL AND CASE WHEN {probe} BETWEEN {lo}"
                f" AND {hi} THEN get_bit({bitmap}, CAST({probe} - {lo} AS INTEGER)) = 0 ELSE true END) END"
            )
            rc.exact = count
        return rc
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


def compile_plan(
    wh: Warehouse, checks: list[Check], schema: str, table: str, errors: dict[Check, str] | None = None,
    unique_against: tuple[str, str] | None = None, types: dict[str, str] | None = None,
) -> Plan:
    """The checks as one plan; with ``errors``, a check that cannot compile is left out and its reason kept there.

    ``types``: the table's column types by name, when the caller has read them already.
    """
    plan = Plan(schema=schema, table=table, row=[], table_checks=[], catalog=[])
    if types is None:
        types = {}
        if any(c.kind == CheckKind.UNIQUE and len(c.columns) > 1 for c in checks) or (
            wh.vendor == "duckdb" and any(c.kind in (CheckKind.UNIQUE, CheckKind.REFERENTIAL) for c in checks)
        ):
            types = {c.name: c.type for c in wh.columns(schema, table)}
    for index, check in enumerate(checks):
        try:
            if check.is_row_level:
                plan.row.append(compile_row_check(wh, check, schema, table, index, types, unique_against))
            elif check.kind == CheckKind.SCHEMA:
                plan.catalog.append(check)
            else:
                compiled = compile_table_check(wh, check)
                if compiled is not None:
                    plan.table_checks.append(compiled)
        except (WarehouseError, ValueError, SqlglotError) as exc:
            if errors is None:
                raise
            errors[check] = f"The check cannot be compiled: {exc}"
    return plan


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


def sample_sql(wh: Warehouse, plan: Plan, rc: RowCheck, limit: int) -> tuple[str, list[Any]]:
    return (
        f"SELECT {ALIAS}.* FROM {wh.table(plan.schema, plan.table)} AS {ALIAS} {' '.join(rc.joins)}"
        f" WHERE {rc.bad} LIMIT {int(limit)}",
        list(rc.params),
    )
