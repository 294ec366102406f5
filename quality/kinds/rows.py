"""Row kinds: each compiles to a predicate TRUE for a failing row.

NULL and FALSE both mean "not failing", so NULL handling is part of each
predicate: everywhere except ``not_null``, a NULL value passes (as in SQL CHECK
constraints). What needs more than the row — uniqueness, a foreign key — is
counted by a scalar subquery (or a key bitmap, where the warehouse has them)
and joined in for samples and the drop split.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from atlas.warehouse import Warehouse, WarehouseError

from ..definitions import (
    dataset_columns,
    number,
    regex_error,
    validate_reference,
)
from ..models import CheckKind, Severity
from .base import (
    ALIAS,
    COLUMNS,
    ONE_COLUMN,
    Kind,
    RowCheck,
    Target,
    bounds_errors,
    condition_errors,
    names,
    outside,
    qualify,
    register,
)

if TYPE_CHECKING:
    from ..models import Check

# Key bitmaps over integer keys: at most this many bits, and at most BITMAP_DENSITY bits per
# counted value (sparser keys hash faster than they set bits).
BITMAP_MAX_BITS = 1 << 27
BITMAP_MIN_BITS = 1 << 16
BITMAP_DENSITY = 8


def bitmap_span(
    wh: Warehouse, schema: str, table: str, column: str, types: dict[str, str] | None = None
) -> tuple[int, int] | None:
    """``(min, max)`` of an integer column when a bitmap of its range is cheaper than hashing it, else None.

    Read when compiling (DuckDB: about a millisecond for a million rows); the compiled SQL stays exact
    when the table changes afterwards (see the callers). Without ``types``, the column is taken for an
    integer one when its minimum and maximum come back as integers.
    """
    if types is not None and not wh.is_bitmap_type(types.get(column, "")):
        return None
    with wh.cursor() as cur:
        col = wh.quote(column)
        lo, hi, n = cur.execute(f"SELECT min({col}), max({col}), count({col}) FROM {wh.table(schema, table)}").fetchone()
    if not n or not all(isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63 for v in (lo, hi)):
        return None
    if hi - lo + 1 > min(BITMAP_MAX_BITS, max(BITMAP_MIN_BITS, BITMAP_DENSITY * int(n))):
        return None
    return lo, hi


def _bounds(params: dict, low: str, high: str) -> str:
    lo, hi = params.get("min"), params.get("max")
    if lo is not None and hi is not None:
        return f"{low} {lo} and {high} {hi}"
    return f"{low} {lo}" if lo is not None else f"{high} {hi}"


@register
class NotNull(Kind):
    name = CheckKind.NOT_NULL
    row_level = True
    columns = COLUMNS

    def compile(self, check: Check, target: Target) -> RowCheck:
        cols = check.columns
        rc = RowCheck(check, "(" + " OR ".join(f"{target.col(c)} IS NULL" for c in cols) + ")")
        if len(cols) == 1:  # DuckDB answers count(column) from its null statistics; PostgreSQL as fast as FILTER
            rc.count = f"count(*) - count({target.col(cols[0])})"
        return rc

    def describe(self, check: Check) -> str:
        return f"{names(check.columns)} {'is' if len(check.columns) == 1 else 'are'} never NULL."


ORDER_TERM_RE = re.compile(r"^\s*([a-z_][a-z0-9_]*)(?:\s+(asc|desc))?(?:\s+nulls\s+(first|last))?\s*$", re.I)


def order_terms(value: Any) -> list[tuple[str, str, str]]:
    """``order_by`` (``"updated_at desc, id"`` or a list of such terms) as (column, direction, nulls).

    Columns only (no expressions): an allowlist an operator cannot escape. NULLs sort as on
    PostgreSQL (last ascending, first descending), said explicitly so DuckDB sorts them alike.
    """
    terms = value if isinstance(value, list) else str(value or "").split(",")
    out = []
    for term in terms:
        m = ORDER_TERM_RE.match(str(term)) if isinstance(term, str) else None
        if not m:
            raise ValueError(
                f"Cannot read the order term {term!r}: give a column with an optional asc/desc and"
                ' nulls first/last, e.g. "updated_at desc, id".'
            )
        direction = (m[2] or "asc").lower()
        out.append((m[1], direction, (m[3] or ("last" if direction == "asc" else "first")).lower()))
    return out


@register
class Unique(Kind):
    """Rows whose key occurs more than once fail; rows with a NULL key column are not compared.

    Counted as dbt and Soda count it, in duplicated keys (``RowCheck.keys``), with the
    failing rows — every copy — alongside. As a drop check it keeps one row per key and
    quarantines the others: the first by ``order_by`` (columns, e.g. ``"updated_at desc"``),
    else the first loaded (file order in Explore, the order the SELECT staged its rows
    elsewhere); when re-processing, a key the published table already holds keeps that row.

    First the surplus rows (``count(k) - count(DISTINCT k)``, a datum sort, several
    times faster than a hash GROUP BY of a million keys on PostgreSQL): zero proves
    the check passes, and only a failing check pays for the exact count (GROUP BY
    ... HAVING). Several key columns become one key where the warehouse has one
    (``wh.unique_key``); a dense integer key a bitmap where it has them.
    """

    name = CheckKind.UNIQUE
    row_level = True
    columns = COLUMNS
    params = frozenset({"order_by"})

    def validate(self, check: Check) -> dict[str, str]:
        if check.params.get("order_by") in (None, "", []):
            return {}
        try:
            terms = order_terms(check.params["order_by"])
        except ValueError as exc:
            return {"params": str(exc)}
        known = dataset_columns(check)
        missing = [c for c, _, _ in terms if known is not None and c not in known]
        if missing:
            return {"params": f"order_by names no column of the dataset: {', '.join(missing)}."}
        return {}

    def needs_types(self, check: Check, wh: Warehouse) -> bool:
        # a drop check also asks whether the table has a load order (``_row_number``)
        return len(check.columns) > 1 or wh.features_key_bitmaps or check.severity == Severity.DROP

    def compile(self, check: Check, target: Target) -> RowCheck:
        wh, cols = target.wh, check.columns
        src = target.source
        alias = f"u{target.index}"
        keys = ", ".join(wh.quote(c) for c in cols)
        against = target.against_keys(keys)
        not_null = " AND ".join(f"{wh.quote(c)} IS NOT NULL" for c in cols)
        on = " AND ".join(f"{alias}.{wh.quote(c)} = {target.col(c)}" for c in cols)
        if against is not None:  # keys must also be unique together with the rows already in ``against``
            src = f"(SELECT {keys} FROM {src} UNION ALL {against}) AS {alias}a"
        join = (
            f"LEFT JOIN (SELECT {keys}, 1 AS {wh.quote('_hit')} FROM {src}"
            f" WHERE {not_null} GROUP BY {keys} HAVING count(*) > 1) AS {alias} ON {on}"
        )
        bad = f"({alias}.{wh.quote('_hit')} IS NOT NULL)"
        duplicated = f"(SELECT {keys} FROM {src} WHERE {not_null} GROUP BY {keys} HAVING count(*) > 1) AS {alias}k"
        if against is not None:
            count = f"(SELECT count(*) FROM {target.source} AS {ALIAS} {join} WHERE {bad})"
            rc = RowCheck(check, bad, joins=[join], count=count, keys=f"(SELECT count(*) FROM {duplicated})")
            self._keep_one(rc, target, keys, not_null)
            return rc
        exact = (
            f"(SELECT coalesce(sum({wh.quote('_n')}), 0) FROM (SELECT count(*) AS {wh.quote('_n')} FROM {src}"
            f" WHERE {not_null} GROUP BY {keys} HAVING count(*) > 1) AS {alias})"
        )
        rc = RowCheck(check, bad, joins=[join], exact=exact, keys=f"(SELECT count(*) FROM {duplicated})")
        self._keep_one(rc, target, keys, not_null)
        if len(cols) == 1:
            key = wh.quote(cols[0])
            span = bitmap_span(wh, target.schema, target.table, cols[0], target.types) if wh.features_key_bitmaps else None
            if span is not None:
                rc.count = wh.bitmap_surplus(key, *span, src)
                rc.count_is_exact = False
                return rc
        else:
            key = wh.unique_key(cols, [target.types.get(c, "") for c in cols])
            if key is None:
                rc.count = exact  # a hash aggregate of the key tuples is as fast as their distinct count
                return rc
        rc.count = f"(SELECT count({key}) - count(DISTINCT {key}) FROM {src} WHERE {not_null})"
        rc.count_is_exact = False
        return rc

    @staticmethod
    def _keep_one(rc: RowCheck, target: Target, keys: str, not_null: str) -> None:
        """A drop check moves every copy of a key but the first (``order_by``, else load order)."""
        if rc.check.severity != Severity.DROP:
            return
        wh, alias = target.wh, f"u{target.index}r"
        order = [f"{wh.quote(c)} {d} NULLS {n}" for c, d, n in order_terms(rc.check.params.get("order_by") or [])]
        if "_row_number" in target.types:
            order.append(wh.quote("_row_number"))
        order += list(wh.row_locator)  # the first staged; and a total order whatever the terms
        rank, locs = wh.quote("_rank"), [wh.quote(f"_atlas_loc{i}") for i in range(len(wh.row_locator))]
        on = " AND ".join(f"{alias}.{loc} = {ALIAS}.{c}" for loc, c in zip(locs, wh.row_locator, strict=True))
        ranked = (
            f"LEFT JOIN (SELECT {wh.locator_columns()}, row_number() OVER (PARTITION BY {keys}"
            f" ORDER BY {', '.join(order)}) AS {rank} FROM {target.source} WHERE {not_null}) AS {alias} ON {on}"
        )
        moved = f"({alias}.{rank} > 1)"
        against = target.against_keys(keys)
        if against is not None:  # a key already published keeps the published row
            cols = rc.check.columns
            published = f"{alias}p"
            hit = " AND ".join(f"{published}.{wh.quote(c)} = {target.col(c)}" for c in cols)
            ranked += (
                f" LEFT JOIN (SELECT DISTINCT {keys}, 1 AS {wh.quote('_hit')} FROM ({against}) AS {published}a"
                f" WHERE {not_null}) AS {published} ON {hit}"
            )
            moved = f"({moved} OR {published}.{wh.quote('_hit')} IS NOT NULL)"
        rc.drop_bad, rc.drop_joins = moved, [ranked]

    def describe(self, check: Check) -> str:
        keep = ""
        if check.severity == Severity.DROP:
            order = check.params.get("order_by")
            keep = f" Dropping keeps the first row of each key by {order}." if order else (
                " Dropping keeps the first row loaded of each key."
            )
        if len(check.columns) == 1:
            return f"{check.columns[0]} is unique.{keep}"
        return f"({names(check.columns)}) is unique together.{keep}"


@register
class AcceptedValues(Kind):
    """Rows whose value is not one of ``values`` fail (NULL passes, as in dbt).

    The observed value is the failing rows, or with ``{"count": "values"}`` the distinct failing
    values, as dbt's ``accepted_values`` test counts them (the failing rows stay alongside).
    """

    name = CheckKind.ACCEPTED_VALUES
    row_level = True
    columns = ONE_COLUMN
    params = frozenset({"values", "count"})

    def validate(self, check: Check) -> dict[str, str]:
        if check.params.get("count", "rows") not in ("rows", "values"):
            return {"params": 'count is "rows" (the default) or "values" (distinct failing values, as dbt counts).'}
        values = check.params.get("values")
        if not isinstance(values, list) or not values:
            return {"params": 'Give the accepted values as a non-empty list: {"values": ["a", "b"]}.'}
        if not (all(isinstance(v, str) for v in values) or all(number(v) for v in values)):
            return {"params": "Accepted values must be all strings or all numbers."}
        return {}

    def compile(self, check: Check, target: Target) -> RowCheck:
        values, col = check.params["values"], check.columns[0]
        value = target.text(col) if isinstance(values[0], str) else target.col(col)
        marks = ", ".join(["%s"] * len(values))
        rc = RowCheck(check, f"(NOT ({value} IN ({marks})))", list(values))
        if check.params.get("count") == "values":
            rc.keys = f"(SELECT count(DISTINCT {value}) FROM {target.source} AS {ALIAS} WHERE NOT ({value} IN ({marks})))"
            rc.keys_params, rc.keys_label = list(values), "failing value"
        return rc

    def describe(self, check: Check) -> str:
        values = ", ".join(repr(v) for v in check.params.get("values", []))
        counted = " Counted in distinct failing values." if check.params.get("count") == "values" else ""
        return f"{check.columns[0]} is one of {values}.{counted}"


@register
class Range(Kind):
    name = CheckKind.RANGE
    row_level = True
    columns = ONE_COLUMN
    params = frozenset({"min", "max", "inclusive"})

    def validate(self, check: Check) -> dict[str, str]:
        errors = bounds_errors(check, integer=False)
        if "inclusive" in check.params and not isinstance(check.params["inclusive"], bool):
            errors["params"] = '"inclusive" must be true or false.'
        return errors

    def compile(self, check: Check, target: Target) -> RowCheck:
        inclusive = check.params.get("inclusive", True)
        return RowCheck(check, *outside(target.col(check.columns[0]), check.params, inclusive=inclusive))

    def describe(self, check: Check) -> str:
        if check.params.get("inclusive", True):
            return f"{check.columns[0]} is {_bounds(check.params, 'at least', 'at most')}."
        return f"{check.columns[0]} is {_bounds(check.params, 'above', 'below')}."


@register
class Regex(Kind):
    name = CheckKind.REGEX
    row_level = True
    columns = ONE_COLUMN
    params = frozenset({"pattern"})

    def validate(self, check: Check) -> dict[str, str]:
        pattern = check.params.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            return {"params": 'Give the pattern: {"pattern": "^[A-Z]{3}$"}.'}
        if problem := regex_error(pattern):
            return {"params": problem}
        return {}

    def compile(self, check: Check, target: Target) -> RowCheck:
        return RowCheck(check, f"(NOT {target.wh.regex_match(target.text(check.columns[0]))})", [check.params["pattern"]])

    def describe(self, check: Check) -> str:
        return f"{check.columns[0]} matches the regex {check.params.get('pattern', '')}."


@register
class Length(Kind):
    name = CheckKind.LENGTH
    row_level = True
    columns = ONE_COLUMN
    params = frozenset({"min", "max"})

    def validate(self, check: Check) -> dict[str, str]:
        return bounds_errors(check, integer=True)

    def compile(self, check: Check, target: Target) -> RowCheck:
        return RowCheck(check, *outside(f"length({target.text(check.columns[0])})", check.params))

    def describe(self, check: Check) -> str:
        return f"{check.columns[0]} has {_bounds(check.params, 'at least', 'at most')} characters."


@register
class Referential(Kind):
    """Every non-NULL value is a key of another dataset: an anti-join, or a key bitmap probed in the scan."""

    name = CheckKind.REFERENTIAL
    row_level = True
    columns = ONE_COLUMN
    params = frozenset({"dataset", "column"})

    def validate(self, check: Check) -> dict[str, str]:
        return validate_reference(check.params, check.dataset.layer if check.dataset_id else None)

    def needs_types(self, check: Check, wh: Warehouse) -> bool:
        return wh.features_key_bitmaps

    def reads(self, check: Check) -> frozenset[str]:
        name = check.params.get("dataset") if isinstance(check.params, dict) else None
        return frozenset({name}) if isinstance(name, str) and name else frozenset()

    def compile(self, check: Check, target: Target) -> RowCheck:
        from pipelines.models import Dataset

        wh, params, column = target.wh, check.params, check.columns[0]
        other_ds = Dataset.objects.filter(name=params["dataset"]).first()
        if other_ds is None:
            raise WarehouseError(f"Check {check.name!r}: the referenced dataset {params['dataset']!r} no longer exists.")
        span: tuple[int, int] | None = None
        if wh.is_bitmap_type(target.types.get(column, "")):
            try:  # the referenced keys' range, for a bitmap (below); it also says that the table exists
                span = bitmap_span(wh, other_ds.layer, other_ds.table, params["column"])
                exists = True
            except WarehouseError:
                exists = wh.table_exists(other_ds.layer, other_ds.table)
                if exists:
                    raise
        else:
            exists = wh.table_exists(other_ds.layer, other_ds.table)
        if not exists:
            raise WarehouseError(
                f"Check {check.name!r}: the referenced dataset {other_ds.qualified_table} has not been loaded yet."
            )
        alias, key = f"r{target.index}", wh.quote("_key")
        ref, col, other = wh.quote(params["column"]), wh.quote(column), wh.table(other_ds.layer, other_ds.table)
        join = (
            f"LEFT JOIN (SELECT DISTINCT {ref} AS {key} FROM {other}"
            f" WHERE {ref} IS NOT NULL) AS {alias} ON {alias}.{key} = {target.col(column)}"
        )
        # An anti-join: unmatched rows come out of a LEFT JOIN once, whatever the duplicates on the
        # other side (PostgreSQL plans it as a hash anti join; DuckDB runs it twice as fast as NOT EXISTS).
        count = (
            f"(SELECT count(*) FROM {target.source} AS {alias}s LEFT JOIN {other} AS {alias}"
            f" ON {alias}.{ref} = {alias}s.{col} WHERE {alias}s.{col} IS NOT NULL AND {alias}.{ref} IS NULL)"
        )
        rc = RowCheck(check, f"({target.col(column)} IS NOT NULL AND {alias}.{key} IS NULL)", joins=[join], count=count)
        # The same rows, for a sample: a NOT EXISTS in the WHERE is planned as an anti-join that stops at the
        # LIMIT, probing the referenced key's index where there is one (a Chart output of an incremental step),
        # where the DISTINCT above reads the whole referenced table first.
        rc.sample_bad = (f"({target.col(column)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {other} AS {alias}x"
                         f" WHERE {alias}x.{ref} = {target.col(column)}))")
        if span is not None:
            # The referenced keys as a bitmap of their range, probed in the scan; NULL (then the
            # anti-join above counts) if the referenced table changed since its range was read.
            rc.count = wh.bitmap_orphans(target.col(column), ref, other, *span)
            rc.exact = count
        return rc

    def describe(self, check: Check) -> str:
        return f"{check.columns[0]} refers to {check.params.get('dataset')}.{check.params.get('column')}."


@register
class CustomRow(Kind):
    name = CheckKind.CUSTOM_ROW
    row_level = True
    params = frozenset({"sql"})

    def validate(self, check: Check) -> dict[str, str]:
        return condition_errors(check, aggregate=False)

    def needs_types(self, check: Check, wh: Warehouse) -> bool:
        return True  # the condition keeps PostgreSQL's meaning on every engine (typed transpiling)

    def compile(self, check: Check, target: Target) -> RowCheck:
        return RowCheck(check, f"(NOT ({qualify(target.wh, check.params['sql'], target)}))")

    def describe(self, check: Check) -> str:
        return f"Every row satisfies {check.params.get('sql', '')}."
