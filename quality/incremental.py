"""Append and merge gates: the new rows checked row by row, the table checks answered for the table after publish.

An append or a merge by keys stages only its new rows. Checking them alone would miss a
key already published and count rows wrong; checking the whole table again would cost the
whole table. So each kind of check is answered the cheapest way that is still exact — never
sampled — for the table as it will be once the step publishes:

=================  ============  =============================================================
kind               scope         how
=================  ============  =============================================================
not_null, range,   new rows      one scan of the staged rows (a published row was judged when
regex, length,                   it was published; the result covers the new rows)
accepted_values,
custom_row
referential        new rows      the new rows' values against the referenced table (anti-join)
unique             table after   the new keys grouped, each looked up in the rows already there
                                 (published, earlier batches of the step): a PostgreSQL btree on
                                 the key columns (``wh.ensure_key_index``), a hash semi-join on
                                 DuckDB; plus the published table's own duplicates, kept from the
                                 last gate (``CheckRun.table_after``) or counted exactly once.
                                 A merge replaces rows by key: the untouched rows and the new ones
                                 matter; keys other than the merge keys: one exact statement over
                                 the rows after publish
row_count          table after   the rows already there (kept from the last gate, else an exact
                                 ``count(*)``) plus the new, minus the rows a merge replaces
freshness          table after   an append: the newest value kept from the last gate (else read
                                 from the published rows) and the new rows' newest; a merge (rows
                                 replaced, a maximum cannot be taken back): as custom_aggregate
custom_aggregate   table after   one exact statement over the rows after publish: published
                                 UNION ALL new (a merge: the untouched published rows UNION ALL
                                 new); any kind this table does not name is answered so too
schema             table after   the staged columns (publishing refuses others than the table's)
=================  ============  =============================================================

What the gate kept (``CheckRun.table_after``: rows, and per unique check its failing rows and
duplicated keys) is used by the next gate only while it still describes the published table:
its check run must be the last of the step run that last published the dataset, and the
dataset's ``data_version`` (bumped by retention and erasure) unchanged; anything else (a
re-processing, a publish without the gate) makes the next gate count exactly again.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.utils import timezone

from atlas.warehouse import Warehouse, WarehouseError
from atlas.warehouse.base import WriteMode
from pipelines.models import Dataset, RunStatus, StepRun

from .compiler import ALIAS, Plan, compile_plan
from .kinds import get_kind
from .models import Check, CheckKind, CheckRun, Covers, Outcome


class Scope(enum.StrEnum):
    NEW_ROWS = "new_rows"  # row by row: the new rows only
    KEYS = "keys"  # uniqueness: new keys looked up in the rows already there
    COUNT = "count"  # row_count: the rows already there plus the new
    NEWEST = "newest"  # freshness: the newest value already there and the new rows' (a merge: AFTER)
    AFTER = "after"  # one exact statement over the rows after publish
    CATALOG = "catalog"  # the staged columns


SCOPES: dict[str, Scope] = {
    CheckKind.NOT_NULL: Scope.NEW_ROWS,
    CheckKind.ACCEPTED_VALUES: Scope.NEW_ROWS,
    CheckKind.RANGE: Scope.NEW_ROWS,
    CheckKind.REGEX: Scope.NEW_ROWS,
    CheckKind.LENGTH: Scope.NEW_ROWS,
    CheckKind.REFERENTIAL: Scope.NEW_ROWS,
    CheckKind.CUSTOM_ROW: Scope.NEW_ROWS,
    CheckKind.UNIQUE: Scope.KEYS,
    CheckKind.ROW_COUNT: Scope.COUNT,
    CheckKind.FRESHNESS: Scope.NEWEST,
    CheckKind.CUSTOM_AGGREGATE: Scope.AFTER,
    CheckKind.SCHEMA: Scope.CATALOG,
}


def scope_of(check: Check, mode: WriteMode = WriteMode.APPEND) -> Scope:
    """How ``check`` is answered on an append (:data:`SCOPES`); a kind it does not name: over the rows after publish."""
    scope = SCOPES.get(check.kind, Scope.AFTER)
    return Scope.AFTER if scope is Scope.NEWEST and mode is WriteMode.MERGE else scope


def _kept_value(value: Any) -> list[Any] | None:
    """A newest value as JSON that gives it back exactly (:func:`_restored`); None: not kept."""
    if value is None or isinstance(value, bool):
        return ["none", None] if value is None else None
    for tag, typ in (("datetime", datetime), ("date", date)):
        if isinstance(value, typ):
            return [tag, value.isoformat()]
    if isinstance(value, int | float | str):
        return [type(value).__name__, value]
    return None


def _restored(kept: list[Any]) -> Any:
    tag, value = kept
    if tag == "datetime":
        return datetime.fromisoformat(value)
    if tag == "date":
        return date.fromisoformat(value)
    return value


def _newest(values: Sequence[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


@dataclass
class Increment:
    """What a gate on an append or merge needs to know besides the staged table.

    ``published``: the published table exists (``schema.target``); ``earlier``: staging tables
    of the same step already gated (an ingest's earlier batches, published together with this
    one); ``base``: what the table holds before this batch, when the caller knows it (an
    ingest's running summary), else read from the last gate (:func:`kept_summary`).
    """

    mode: WriteMode
    target: str
    published: bool
    keys: Sequence[str] = ()
    earlier: Sequence[str] = ()
    base: dict[str, Any] | None = None
    batch_id: str | None = None
    # a merge whose delete takes its keys from another table than the staged rows (affected groups: a group
    # the recomputation no longer gives is replaced by nothing): the published rows of those keys are replaced
    replaced: str | None = None


@dataclass
class KeyCounts:
    """One key lookup: the new rows' keys grouped (``c``), each with its rows already there (``p``)."""

    keys_new: int = 0  # keys with c + p > 1
    rows_new: int = 0  # their rows, new and already there
    keys_self: int = 0  # keys with c > 1 (a merge: only the new rows count)
    rows_self: int = 0
    keys_base: int = 0  # keys with p > 1: duplicated among the rows already there
    rows_base: int = 0
    matched: int = 0  # rows already there with a new key (a merge replaces them)


def kept_summary(dataset: Dataset) -> dict[str, Any] | None:
    """``CheckRun.table_after`` of the last gate, while it still describes the published table; else None."""
    last = (
        StepRun.objects.filter(output_id=dataset.pk, status=RunStatus.SUCCEEDED)
        .order_by("-id").values_list("id", flat=True).first()
    )
    if last is None:
        return None
    kept = (
        CheckRun.objects.filter(step_run_id=last).order_by("-id").values_list("trigger", "table_after").first()
    )
    if not kept or kept[0] != CheckRun.Trigger.STEP or not kept[1]:
        return None
    version = Dataset.objects.filter(pk=dataset.pk).values_list("data_version", flat=True).first()
    return kept[1] if kept[1].get("data_version") == version else None


@dataclass
class IncrementalGate:
    """One append or merge gate: evaluates ``checks`` on ``schema.staging`` for the table after publish."""

    wh: Warehouse
    dataset: Dataset
    checks: list[Check]
    schema: str
    staging: str
    increment: Increment
    types: dict[str, str]
    layer: str
    queries: int = 0
    base: dict[str, Any] = field(default_factory=dict)
    unique_after: dict[int, tuple[int, int]] = field(default_factory=dict)
    rows_after: int | None = None
    newest_after: dict[str, Any] = field(default_factory=dict)

    # --- relations -----------------------------------------------------------------------
    @property
    def merging(self) -> bool:
        return self.increment.mode is WriteMode.MERGE

    def _base_tables(self) -> list[str]:
        inc = self.increment
        tables = [self.wh.table(self.schema, inc.target)] if inc.published else []
        return tables + [self.wh.table(self.schema, t) for t in inc.earlier]

    def _untouched(self, columns: str, staging: str | None = None) -> str:
        """A merge: the published rows whose merge key is not staged (the DELETE of ``publish`` keeps them)."""
        wh = self.wh
        if self.increment.replaced and staging is None:  # the keys the merge's delete takes, null-safe as it is
            keys, table = list(self.increment.keys), self.increment.replaced
            return (f"SELECT {columns} FROM {wh.table(self.schema, self.increment.target)} AS t"
                    f" WHERE NOT {wh.key_match(self.schema, table, keys)}"
                    f" AND NOT coalesce({wh.key_match(self.schema, table, keys, nulls=True)}, false)")
        match = " AND ".join(f"n.{wh.quote(k)} = p.{wh.quote(k)}" for k in self.increment.keys)
        return (
            f"SELECT {columns} FROM {wh.table(self.schema, self.increment.target)} AS p"
            f" WHERE NOT EXISTS (SELECT 1 FROM {wh.table(self.schema, staging or self.staging)} AS n WHERE {match})"
        )

    def before(self, columns: str) -> str | None:
        """A SELECT of ``columns`` from the rows the new ones join (None: there are none)."""
        if self.merging:
            return self._untouched(columns) if self.increment.published else None
        parts = [f"SELECT {columns} FROM {t}" for t in self._base_tables()]
        return " UNION ALL ".join(parts) or None

    def after(self, columns: str) -> str:
        """A SELECT of ``columns`` from the rows the table holds after publish."""
        staged = f"SELECT {columns} FROM {self.wh.table(self.schema, self.staging)}"
        before = self.before(columns)
        return f"{before} UNION ALL {staged}" if before else staged

    # --- counting --------------------------------------------------------------------------
    def _one(self, sql: str) -> tuple:
        self.queries += 1
        with self.wh.cursor() as cur:
            return cur.execute(sql).fetchone()

    def key_counts(self, columns: Sequence[str], staging: str | None = None) -> KeyCounts:
        """The new rows' keys, each looked up in the rows already there (published, earlier batches)."""
        wh = self.wh
        staged = wh.table(self.schema, staging or self.staging)
        keys = ", ".join(wh.quote(c) for c in columns)
        not_null = " AND ".join(f"{wh.quote(c)} IS NOT NULL" for c in columns)
        tables = [wh.table(self.schema, self.increment.target)] if self.merging and self.increment.published else (
            [] if self.merging else self._base_tables()
        )
        if self.increment.published:
            self.queries += 1
            wh.ensure_key_index(self.schema, self.increment.target, list(columns))
        lookups = [
            f"(SELECT count(*) FROM {t} AS b WHERE "
            + " AND ".join(f"b.{wh.quote(c)} = g.{wh.quote(c)}" for c in columns) + ")"
            for t in tables
        ]
        p = " + ".join(lookups) or "0"
        row = self._one(
            "SELECT count(*) FILTER (WHERE c + p > 1), coalesce(sum(c + p) FILTER (WHERE c + p > 1), 0),"
            " count(*) FILTER (WHERE c > 1), coalesce(sum(c) FILTER (WHERE c > 1), 0),"
            " count(*) FILTER (WHERE p > 1), coalesce(sum(p) FILTER (WHERE p > 1), 0), coalesce(sum(p), 0)"
            # OFFSET 0: the lookups run once per key, not once per use of ``p`` (PostgreSQL would inline them)
            f" FROM (SELECT g.c AS c, {p} AS p FROM (SELECT {keys}, count(*) AS c FROM {staged}"
            f" WHERE {not_null} GROUP BY {keys}) AS g OFFSET 0) AS x"
        )
        return KeyCounts(*(int(v or 0) for v in row))

    def duplicates(self, columns: Sequence[str], relation: str) -> tuple[int, int]:
        """Exactly: (failing rows, duplicated keys) of ``columns`` among the rows of ``relation`` (a SELECT)."""
        wh = self.wh
        keys = ", ".join(wh.quote(c) for c in columns)
        not_null = " AND ".join(f"{wh.quote(c)} IS NOT NULL" for c in columns)
        n = wh.quote("_n")
        row = self._one(
            f"SELECT coalesce(sum({n}), 0), count(*) FROM (SELECT {keys}, count(*) AS {n} FROM ({relation}) AS a"
            f" WHERE {not_null} GROUP BY {keys} HAVING count(*) > 1) AS d"
        )
        return int(row[0] or 0), int(row[1] or 0)

    def base_rows(self) -> int:
        """Rows already there: kept from the last gate, else counted exactly."""
        if "rows" in self.base:
            return int(self.base["rows"])
        total = 0
        inc = self.increment
        tables = ([self.wh.table(self.schema, inc.target)] if inc.published else []) + (
            [] if self.merging else [self.wh.table(self.schema, t) for t in inc.earlier]
        )
        for t in tables:
            total += int(self._one(f"SELECT count(*) FROM {t}")[0])
        self.base["rows"] = total
        return total

    def base_unique(self, check: Check) -> tuple[int, int]:
        """(failing rows, duplicated keys) of ``check`` among the published rows: kept, else counted once."""
        kept = (self.base.get("unique") or {}).get(str(check.pk))
        if kept and kept.get("columns") == list(check.columns):
            return int(kept["failing"]), int(kept["keys"])
        inc = self.increment
        tables = ([self.wh.table(self.schema, inc.target)] if inc.published else []) + (
            [] if self.merging else [self.wh.table(self.schema, t) for t in inc.earlier]
        )
        if not tables:
            return 0, 0
        cols = ", ".join(self.wh.quote(c) for c in check.columns)
        failing, keys = self.duplicates(check.columns, " UNION ALL ".join(f"SELECT {cols} FROM {t}" for t in tables))
        # counted once per gate: the rows already there do not change while it runs (the summary after drops asks again)
        self.base.setdefault("unique", {})[str(check.pk)] = {"columns": list(check.columns), "failing": failing,
                                                            "keys": keys}
        return failing, keys

    def unique(self, check: Check, staging: str | None = None) -> tuple[int, int]:
        """(failing rows, duplicated keys) of ``check`` in the table after publish, exactly."""
        cols = list(check.columns)
        if self.merging and sorted(cols) != sorted(self.increment.keys):
            # rows replaced by other keys than the checked ones: the rows after publish, counted
            quoted = ", ".join(self.wh.quote(c) for c in cols)
            staged = f"SELECT {quoted} FROM {self.wh.table(self.schema, staging or self.staging)}"
            untouched = self._untouched(quoted, staging) if self.increment.published else None
            return self.duplicates(cols, f"{untouched} UNION ALL {staged}" if untouched else staged)
        failing, keys = self.base_unique(check)
        k = self.key_counts(cols, staging)
        if self.merging:  # the published rows of a new key are replaced: theirs go, the new rows' own come
            return failing - k.rows_base + k.rows_self, keys - k.keys_base + k.keys_self
        return failing - k.rows_base + k.rows_new, keys - k.keys_base + k.keys_new

    def total_after(self, staged_rows: int, staging: str | None = None) -> int:
        """Rows in the table after publish: already there (minus those a merge replaces) plus the staged."""
        base = self.base_rows()
        if self.merging and self.increment.published and self.increment.replaced and staging is None:
            wh, keys, table = self.wh, list(self.increment.keys), self.increment.replaced
            base -= int(self._one(f"SELECT count(*) FROM {wh.table(self.schema, self.increment.target)} AS t WHERE"
                                  f" {wh.key_match(self.schema, table, keys)}"
                                  f" OR coalesce({wh.key_match(self.schema, table, keys, nulls=True)}, false)")[0])
        elif self.merging and self.increment.published:
            base -= self.key_counts(list(self.increment.keys), staging).matched
        return base + staged_rows

    def newest(self, checks: Sequence[Check]) -> dict[int, Any]:
        """By check: the newest value of its column after an append (kept, else read, and the new rows')."""
        wh, kept = self.wh, self.base.get("newest") or {}
        columns = sorted({c.columns[0] for c in checks})
        staged = dict(zip(columns, self._one(
            f"SELECT {', '.join(f'max({wh.quote(c)})' for c in columns)} FROM {wh.table(self.schema, self.staging)}"
        ), strict=True))
        before: dict[str, Any] = {}
        unknown = [c for c in columns if c not in kept]
        before.update({c: _restored(kept[c]) for c in columns if c in kept})
        for table in self._base_tables() if unknown else []:
            row = self._one(f"SELECT {', '.join(f'max({wh.quote(c)})' for c in unknown)} FROM {table}")
            for c, value in zip(unknown, row, strict=True):
                before[c] = _newest([before.get(c), value])
        # read once: a second look (after drops) reuses them
        self.base["newest"] = {**kept, **{c: v for c in unknown if (v := _kept_value(before.get(c))) is not None}}
        self.newest_after = {c: _newest([before.get(c), staged[c]]) for c in columns}
        return {check.pk: self.newest_after[check.columns[0]] for check in checks}

    # --- the evaluation ----------------------------------------------------------------------
    def evaluate(self) -> Any:
        """Every check measured for the table after publish (row checks: on the new rows); an ``Evaluation``."""
        from .service import Evaluation, _fetch_samples, _result, _row_outcome, evaluate, jsonable

        wh, now = self.wh, timezone.now()
        self.base = dict(self.increment.base if self.increment.base is not None else (kept_summary(self.dataset) or {}))
        by_scope: dict[Scope, list[Check]] = {s: [] for s in Scope}
        for check in self.checks:
            by_scope[scope_of(check, self.increment.mode)].append(check)
        staged = evaluate(wh, by_scope[Scope.NEW_ROWS] + by_scope[Scope.CATALOG], self.schema, self.staging,
                          types=self.types, layer=self.layer)
        self.queries += staged.queries
        results = staged.results
        for r in results:
            r.covers = Covers.TABLE_AFTER_PUBLISH if scope_of(r.check_ref) is Scope.CATALOG else Covers.NEW_ROWS
        new_rows = staged.total
        failed: dict[Check, str] = {}
        keys_plan = compile_plan(wh, by_scope[Scope.KEYS], self.schema, self.staging, errors=failed,
                                 types=self.types, against=self.before)
        after_plan = compile_plan(wh, by_scope[Scope.AFTER], self.schema, self.staging, errors=failed, types=self.types)
        results += [_result(c, outcome=Outcome.ERROR, message=m, covers=Covers.TABLE_AFTER_PUBLISH)
                    for c, m in failed.items()]
        plan = staged.plan or Plan(self.schema, self.staging, [], [], [])
        total: int | None = None
        if after_plan.table_checks:
            # one exact statement over the rows after publish; its count(*) is the row count too
            columns = ", ".join(wh.quote(c) for c in self.types)
            exprs, params = ["count(*)"], []
            for tc in after_plan.table_checks:
                exprs.append(tc.expr)
                params += list(tc.params)
            started = time.perf_counter()
            try:
                self.queries += 1
                row = wh.operator_query(f"SELECT {', '.join(exprs)} FROM ({self.after(columns)}) AS {ALIAS}",
                                        params or None, layer=self.layer)[1][0]
            except WarehouseError as exc:
                for tc in after_plan.table_checks:
                    results.append(_result(tc.check, outcome=Outcome.ERROR, covers=Covers.TABLE_AFTER_PUBLISH,
                                           message=f"The check query failed on the data: {str(exc).strip()}"))
            else:
                total = int(row[0])
                seconds = time.perf_counter() - started
                for tc, value in zip(after_plan.table_checks, row[1:], strict=True):
                    outcome, observed, message = get_kind(tc.check.kind).outcome(tc.check, value, total, now)
                    results.append(_result(tc.check, outcome=outcome, observed=jsonable(observed), message=message,
                                           query_group="after publish", query_seconds=seconds,
                                           covers=Covers.TABLE_AFTER_PUBLISH))
        try:
            if total is None and (by_scope[Scope.COUNT] or by_scope[Scope.NEWEST] or keys_plan.row):
                total = self.total_after(new_rows)
            for check in by_scope[Scope.COUNT]:
                outcome, observed, message = get_kind(check.kind).outcome(check, total, total or 0, now)
                results.append(_result(check, outcome=outcome, observed=jsonable(observed), message=message,
                                       query_group="after publish", covers=Covers.TABLE_AFTER_PUBLISH))
            if by_scope[Scope.NEWEST]:
                started = time.perf_counter()
                newest = self.newest(by_scope[Scope.NEWEST])
                for check in by_scope[Scope.NEWEST]:
                    outcome, observed, message = get_kind(check.kind).outcome(check, newest[check.pk], total or 0, now)
                    results.append(_result(check, outcome=outcome, observed=jsonable(observed), message=message,
                                           query_group="newest", query_seconds=time.perf_counter() - started,
                                           covers=Covers.TABLE_AFTER_PUBLISH))
            for rc in keys_plan.row:
                started = time.perf_counter()
                failing, keys = self.unique(rc.check)
                self.unique_after[rc.check.pk] = (failing, keys)
                outcome, message = _row_outcome(rc.check, failing, total or 0, keys if failing else None, rc.keys_label)
                results.append(_result(rc.check, outcome=outcome, message=message, observed=keys if failing else 0,
                                       failing_rows=failing, failing_share=(failing / total) if total else 0.0,
                                       query_group="keys", query_seconds=time.perf_counter() - started,
                                       covers=Covers.TABLE_AFTER_PUBLISH))
        except WarehouseError as exc:
            done = {r.check_ref.pk for r in results if r.check_ref}
            for check in by_scope[Scope.COUNT] + by_scope[Scope.NEWEST] + [rc.check for rc in keys_plan.row]:
                if check.pk not in done:
                    results.append(_result(check, outcome=Outcome.ERROR, covers=Covers.TABLE_AFTER_PUBLISH,
                                           message=f"The check query failed on the data: {str(exc).strip()}"))
        self.rows_after = total
        plan.row = plan.row + keys_plan.row
        new_failing = [r for r in results if r.kind == CheckKind.UNIQUE and r.outcome not in (Outcome.PASS, Outcome.ERROR)]
        if new_failing:
            self.queries += _fetch_samples(wh, keys_plan, new_failing, layer=self.layer)
        order = {c.pk: i for i, c in enumerate(self.checks)}
        results.sort(key=lambda r: order.get(r.check_ref.pk if r.check_ref else None, len(order)))
        return Evaluation(results, new_rows, self.queries, plan)

    def summary(self, *, staged_rows: int, moved: int) -> dict[str, Any]:
        """What the table holds after publish (``CheckRun.table_after``), once drops moved ``moved`` rows."""
        version = Dataset.objects.filter(pk=self.dataset.pk).values_list("data_version", flat=True).first()
        out: dict[str, Any] = {"data_version": version, "unique": {}}
        try:
            if self.newest_after:  # the staged rows' newest after drops: read again when rows moved
                if moved:
                    self.newest([c for c in self.checks if scope_of(c, self.increment.mode) is Scope.NEWEST])
                kept = {c: _kept_value(v) for c, v in self.newest_after.items()}
                out["newest"] = {c: v for c, v in kept.items() if v is not None}
            if moved:  # the staged rows changed: counted again on what is left (cheap: the new keys only)
                out["rows"] = self.total_after(staged_rows - moved)
                for check in self.checks:
                    if check.pk in self.unique_after:
                        failing, keys = self.unique(check)
                        out["unique"][str(check.pk)] = {"columns": list(check.columns), "failing": failing, "keys": keys}
            else:
                if self.rows_after is not None:
                    out["rows"] = self.rows_after
                for check in self.checks:
                    if check.pk in self.unique_after:
                        failing, keys = self.unique_after[check.pk]
                        out["unique"][str(check.pk)] = {"columns": list(check.columns), "failing": failing, "keys": keys}
        except WarehouseError:
            return {}  # not known: the next gate counts exactly
        return out


def whole_table_summary(dataset: Dataset, results: Sequence[Any], *, rows: int, moved: int) -> dict[str, Any]:
    """``CheckRun.table_after`` of a gate whose staged table is the whole table after publish (a refine or
    aggregate that replaces its output), so that the merge gate after it need not count the table again.

    Exact by construction: the rows are the staged rows less those the drops moved; a unique check is kept
    only when it passed (no duplicates among the staged rows, hence none among what the drops left); a
    failing one is left out (the next gate counts it exactly), as are the newest values (read again).
    """
    version = Dataset.objects.filter(pk=dataset.pk).values_list("data_version", flat=True).first()
    unique: dict[str, Any] = {}
    for r in results:
        check = r.check_ref
        if check is None or r.kind != CheckKind.UNIQUE or r.outcome == Outcome.ERROR or r.failing_rows:
            continue
        unique[str(check.pk)] = {"columns": list(check.columns), "failing": 0, "keys": 0}
    return {"data_version": version, "rows": rows - moved, "unique": unique}


__all__ = ["SCOPES", "IncrementalGate", "Increment", "KeyCounts", "Scope", "kept_summary", "scope_of", "whole_table_summary"]
