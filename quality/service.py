"""Run a dataset's checks on a table, record every outcome, quarantine what drop checks refuse.

:func:`run_checks` is the one service every door calls: the step hook (on the
staged table, before publishing), the admin action and ``manage.py
check_quality`` (on the published table), the freshness schedule, and the
quarantine re-processing. It never raises for a failing check: the returned
:class:`CheckRun` says whether publishing is blocked (``status == failed``),
and :func:`gate_message` says why.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from atlas.warehouse import Warehouse, WarehouseError, get_warehouse
from pipelines.models import Dataset

from . import quarantine
from .compiler import Plan, RowCheck, compile_plan, item_sql, sample_sql, standalone
from .incremental import Increment, IncrementalGate, whole_table_summary
from .kinds import get_kind
from .kinds.base import violated
from .models import Check, CheckKind, CheckResult, CheckRun, Outcome, Severity

logger = logging.getLogger(__name__)
BLOCKING = (Severity.FAIL, Severity.DROP)


def sample_limit() -> int:
    return int(getattr(settings, "ATLAS_QUALITY_SAMPLE_ROWS", 10))


def jsonable(value: Any) -> Any:
    """A warehouse value as JSON keeps it (numbers stay numbers where exact; NaN and infinities, not JSON, as text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


@dataclass
class Evaluation:
    """What one run measured, before it is stored."""

    results: list[CheckResult]
    total: int
    queries: int
    plan: Plan | None


def _row_outcome(check: Check, failing: int, total: int, keys: int | None = None,
                 label: str = "duplicated key") -> tuple[str, str]:
    """The outcome by the failing rows' share; ``keys``: the failing keys too (uniqueness), named first."""
    share = failing / total if total else 0.0
    if failing == 0:
        return Outcome.PASS, "No failing rows." if total else "The table is empty; nothing to check."
    described = f"{failing} of {total} rows ({share:.2%}) fail"
    if keys is not None:
        described = f"{keys} {label}{'s' if keys != 1 else ''}: {described}"
    if check.severity == Severity.DROP:
        if check.tolerance is not None and share > check.tolerance:
            return Outcome.FAIL, f"{described}, above the drop limit of {check.tolerance:.2%}: the step is blocked."
        return Outcome.WARN, f"{described}; they are moved to quarantine."
    tolerance = check.tolerance or 0.0
    if share <= tolerance:
        return Outcome.PASS, f"{described}, within the tolerance of {tolerance:.2%}."
    return violated(check), f"{described} (tolerance {tolerance:.2%})."


def _schema_result(
    wh: Warehouse, check: Check, schema: str, table: str, types: dict[str, str] | None = None
) -> tuple[str, Any, str]:
    actual = {c.name: c.type for c in wh.columns(schema, table)} if types is None else types
    return get_kind(check.kind).outcome(check, actual, 0, timezone.now())


def _result(check: Check, **fields: Any) -> CheckResult:
    return CheckResult(check_ref=check, check_name=check.name, kind=check.kind, severity=check.severity, **fields)


def _operator_row(wh: Warehouse, sql: str, params: Any = None, *, layer: str) -> tuple:
    """The one row of a check statement, run with the rights of the checked layer's operator-SQL role.

    It holds custom SQL: on PostgreSQL it reads only what SQL producing that layer may read.
    """
    return wh.operator_query(sql, params, layer=layer)[1][0]


def _side_by_side(wh: Warehouse, plan: Plan, items: list) -> list[int]:
    """The items to run beside the scan, from one snapshot: its self-contained subqueries, on a big enough table."""
    limit = settings.ATLAS_QUALITY_CONCURRENT_SCAN_BYTES
    if not wh.features_concurrent_scan or limit < 0:
        return []
    alone = [i for i, (_check, expr, _params) in enumerate(items) if standalone(expr)]
    if alone and limit and (wh.table_bytes(plan.schema, plan.table) or 0) < limit:
        return []
    return alone


def _scan(wh: Warehouse, plan: Plan, *, layer: str) -> tuple[int | None, dict[int, Any], dict[int, str], int, float]:
    """Run the scan; if it fails, run each check's part alone so one broken check cannot hide the others.

    Returns the total rows (None if even ``count(*)`` failed), values and errors by check
    position in ``plan.items()``, the queries run, and the seconds of the scan.
    """
    items = plan.items()
    sql, params = item_sql(wh, plan, items)
    started = time.perf_counter()
    alone = _side_by_side(wh, plan, items)
    if alone:
        together = [i for i in range(len(items)) if i not in alone]
        statements = [item_sql(wh, plan, [items[i] for i in together])]
        statements += [(f"SELECT {items[i][1]}", list(items[i][2])) for i in alone]
        try:
            rows = wh.operator_rows_in_one_snapshot(
                statements, layer=layer, work_mem=getattr(settings, "ATLAS_QUALITY_SCAN_WORK_MEM", "")
            )
        except WarehouseError:
            pass  # the one statement below says what failed, then each check alone
        else:
            values = {i: rows[0][1 + k] for k, i in enumerate(together)}
            values.update({i: rows[1 + k][0] for k, i in enumerate(alone)})
            return int(rows[0][0]), values, {}, len(statements), time.perf_counter() - started
    try:
        row = _operator_row(wh, sql, params, layer=layer)
        return int(row[0]), dict(enumerate(row[1:])), {}, 1, time.perf_counter() - started
    except WarehouseError as exc:
        first_error = str(exc)
    values: dict[int, Any] = {}
    errors: dict[int, str] = {}
    queries = 1
    total: int | None = None
    try:
        with wh.cursor() as cur:
            total = int(cur.execute(f"SELECT count(*) FROM {wh.table(plan.schema, plan.table)}").fetchone()[0])
        queries += 1
    except WarehouseError as exc:
        return None, {}, dict.fromkeys(range(len(items)), f"The check query failed: {first_error or exc}"), queries + 1, 0.0
    for i, item in enumerate(items):
        sql, params = item_sql(wh, plan, [item])
        queries += 1
        try:
            values[i] = _operator_row(wh, sql, params, layer=layer)[1]
        except WarehouseError as exc:
            errors[i] = f"The check's query failed on the data: {str(exc).strip()}"
    return total, values, errors, queries, time.perf_counter() - started


def evaluate(
    wh: Warehouse, checks: list[Check], schema: str, table: str, *, unique_against: tuple[str, str] | None = None,
    types: dict[str, str] | None = None, layer: str | None = None,
) -> Evaluation:
    """Measure every check: one scan for rows and table checks, the catalogue for schemas, samples for failures.

    A check that cannot be compiled or whose SQL fails on the data gets an ``error``
    outcome with the reason; the others are still measured and recorded. ``types``: the
    table's column types by name, when the caller has read them already. ``layer``: the
    checked dataset's layer, whose operator-SQL role runs the check statements (default
    ``schema``: a dataset's tables, staged or published, live in its layer's schema).
    """
    layer = layer or schema
    now = timezone.now()
    results: list[CheckResult] = []
    failed: dict[Check, str] = {}
    plan = compile_plan(wh, checks, schema, table, errors=failed, unique_against=unique_against, types=types)
    results += [_result(check, outcome=Outcome.ERROR, message=message) for check, message in failed.items()]
    total, queries = 0, 0
    if plan.row or plan.table_checks or not plan.catalog:
        counted, values, errors, queries, seconds = _scan(wh, plan, layer=layer)
        total = counted or 0
        for i, (check, _expr, _params) in enumerate(plan.items()):
            if i in errors:
                results.append(_result(check, outcome=Outcome.ERROR, message=errors[i], query_group="scan"))
                continue
            if i < len(plan.row):
                rc = plan.row[i]
                failing, keys = int(values[i] or 0), None
                # An upper bound (surplus rows): the exact count, for failing checks only; with the
                # failing keys (uniqueness, counted as dbt and Soda count it) in the same statement.
                exact = rc.needs_exact(values[i])
                with_keys = bool(rc.keys) and bool(failing or exact)
                wanted = ([rc.exact] if exact else []) + ([rc.keys] if with_keys else [])
                if wanted:
                    try:
                        row = _operator_row(wh, f"SELECT {', '.join(wanted)}", (rc.keys_params if with_keys else None)
                                            or None, layer=layer)
                    except WarehouseError as exc:
                        results.append(_result(check, outcome=Outcome.ERROR, message=str(exc), query_group="scan"))
                        continue
                    finally:
                        queries += 1
                    failing = int(row[0] or 0) if exact else failing
                    keys = int(row[-1] or 0) if rc.keys else None
                outcome, message = _row_outcome(check, failing, total, keys if failing else None, rc.keys_label)
                results.append(
                    _result(
                        check, outcome=outcome, message=message, observed=failing if keys is None else keys,
                        failing_rows=failing,
                        failing_share=(failing / total) if total else 0.0, query_group="scan", query_seconds=seconds,
                    )
                )
            else:
                outcome, observed, message = get_kind(check.kind).outcome(check, values[i], total, now)
                results.append(
                    _result(check, outcome=outcome, observed=jsonable(observed), message=message,
                            query_group="scan", query_seconds=seconds)
                )
    for check in plan.catalog:
        started = time.perf_counter()
        outcome, observed, message = _schema_result(wh, check, schema, table, types)
        queries += 1
        results.append(
            _result(check, outcome=outcome, observed=observed, message=message, query_group="catalog",
                    query_seconds=time.perf_counter() - started)
        )
    queries += _fetch_samples(wh, plan, results, layer=layer)
    order = {c.pk: i for i, c in enumerate(checks)}
    results.sort(key=lambda r: order.get(r.check_ref.pk if r.check_ref else None, len(order)))
    return Evaluation(results, total, queries, plan)


def _fetch_samples(wh: Warehouse, plan: Plan, results: list[CheckResult], *, layer: str) -> int:
    """Up to N failing rows, only for row checks that did not pass."""
    by_check = {rc.check.pk: rc for rc in plan.row}
    queries = 0
    for result in results:
        rc = by_check.get(result.check_ref.pk) if result.check_ref else None
        if rc is None or result.outcome in (Outcome.PASS, Outcome.ERROR) or not result.failing_rows:
            continue
        sql, params = sample_sql(wh, plan, rc, sample_limit())
        columns, rows = wh.operator_query(sql, params, layer=layer)
        queries += 1
        result.sample_columns = columns
        result.sample_rows = [{c: jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    return queries


def is_blocking(result: CheckResult) -> bool:
    return result.severity in BLOCKING and result.outcome in (Outcome.FAIL, Outcome.ERROR)


def run_checks(
    dataset: Dataset,
    *,
    trigger: str,
    schema: str | None = None,
    table: str | None = None,
    step_run=None,
    actor=None,
    run_id: int | None = None,
    batch_id: str | None = None,
    source: str = "",
    apply_drops: bool = True,
    checks: list[Check] | None = None,
    warehouse: Warehouse | None = None,
    increment: Increment | None = None,
    whole_table: bool = False,
) -> CheckRun:
    """Evaluate ``dataset``'s enabled checks on ``schema.table`` (default: the published table).

    ``increment``: ``schema.table`` holds the new rows of an append or merge; the row checks judge
    them and the table checks the table as it will be after publish (:mod:`quality.incremental`).
    ``whole_table``: ``schema.table`` is the whole table after publish (a transform's replace): what
    it holds is kept (``table_after``) for the merge gate that follows (``whole_table_summary``).

    With ``apply_drops`` (a staged table), rows failing drop checks are moved
    to quarantine — unless a blocking check failed, in which case nothing is
    moved and the run's status is ``failed``. On a published table (on demand,
    schedule) drops are only reported: reading must not rewrite published data.
    """
    wh = warehouse or get_warehouse()
    schema = schema or dataset.layer
    table = table or dataset.table
    checks = list(Check.objects.for_dataset(dataset).enabled()) if checks is None else checks
    check_run = CheckRun.objects.create(
        dataset=dataset,
        step_run=step_run,
        trigger=trigger,
        triggered_by=actor if getattr(actor, "is_authenticated", False) else None,
        table=f"{schema}.{table}",
        batch_id=batch_id or (increment.batch_id if increment is not None else None) or "",
    )
    gate: IncrementalGate | None = None
    try:
        # one catalogue query: the column types (for the compiler and schema checks) also say the table exists
        types = {c.name: c.type for c in wh.columns(schema, table)}
        if not types and not wh.table_exists(schema, table):
            raise WarehouseError(f"{schema}.{table} does not exist (not loaded yet?).")
        if increment is not None:
            gate = IncrementalGate(wh, dataset, checks, schema, table, increment, types, dataset.layer)
            evaluation = gate.evaluate()
        else:
            evaluation = evaluate(wh, checks, schema, table, types=types, layer=dataset.layer)
        moved = 0
        blocked = any(is_blocking(r) for r in evaluation.results)
        drop_ids = {
            r.check_ref.pk for r in evaluation.results
            if r.severity == Severity.DROP and r.outcome == Outcome.WARN and r.failing_rows
        }
        if drop_ids and apply_drops and not blocked and evaluation.plan is not None:
            drops: list[RowCheck] = [rc for rc in evaluation.plan.row if rc.check.pk in drop_ids]
            # A check that moves fewer rows than fail it (uniqueness keeps one per key): counted first.
            fewer = {rc.check.pk: quarantine.count_moved(wh, evaluation.plan, rc) for rc in drops if rc.drop_bad}
            moved = quarantine.split(
                wh, evaluation.plan, drops, target=dataset.table, check_run_id=check_run.pk,
                run_id=run_id, batch_id=batch_id, source=source,
            )
            evaluation.queries += 1 + len(fewer)
            for r in evaluation.results:
                if r.check_ref and r.check_ref.pk in drop_ids:
                    r.rows_quarantined = fewer.get(r.check_ref.pk, r.failing_rows or 0)
        if gate is not None and not blocked:
            before = gate.queries
            check_run.table_after = gate.summary(staged_rows=evaluation.total, moved=moved)
            evaluation.queries += gate.queries - before
        elif whole_table and increment is None and not blocked:
            check_run.table_after = whole_table_summary(dataset, evaluation.results, rows=evaluation.total, moved=moved)
    except WarehouseError as exc:
        check_run.status, check_run.error = CheckRun.Status.ERROR, str(exc)
        check_run.finished_at = timezone.now()
        check_run.save()
        return check_run
    for r in evaluation.results:
        r.check_run = check_run
    errors = [r for r in evaluation.results if r.outcome == Outcome.ERROR]
    if blocked:
        status = CheckRun.Status.FAILED
    elif errors:
        status = CheckRun.Status.ERROR
    elif any(r.outcome != Outcome.PASS for r in evaluation.results):
        status = CheckRun.Status.WARNED
    else:
        status = CheckRun.Status.PASSED
    with transaction.atomic():
        CheckResult.objects.bulk_create(evaluation.results)
        check_run.status = status
        check_run.error = "; ".join(f"{r.check_name}: {r.message}" for r in errors)
        check_run.rows_checked = evaluation.total
        check_run.rows_quarantined = moved
        check_run.queries = evaluation.queries
        check_run.finished_at = timezone.now()
        check_run.save()
    return check_run


def blocks_publishing(check_run: CheckRun, checks: list[Check]) -> bool:
    """Whether a gate's check run must stop the step (fail closed on errors of fail/drop checks)."""
    if check_run.status == CheckRun.Status.FAILED:
        return True
    # the whole evaluation could not run (e.g. the staged table is gone): block if any check could
    return (
        check_run.status == CheckRun.Status.ERROR
        and not check_run.results.exists()
        and any(c.severity in BLOCKING for c in checks)
    )


def gate_message(check_run: CheckRun) -> str:
    """Why a check run blocks publishing, naming every blocking check."""
    if check_run.status == CheckRun.Status.ERROR and check_run.error and not check_run.results.exists():
        return f"Quality checks on {check_run.table_shown} could not run: {check_run.error}"
    blocking = [r for r in check_run.results.all() if is_blocking(r)]
    listed = "; ".join(f"{r.check_name} ({r.kind}, {r.outcome}): {r.message}" for r in blocking)
    return f"Quality gate failed on {check_run.table_shown} ({len(blocking)} blocking check(s)): {listed} Published data is unchanged."


def check_freshness(*, actor=None, trigger: str = CheckRun.Trigger.SCHEDULE) -> list[CheckRun]:
    """Evaluate every enabled freshness check against its published table (the beat schedule's job)."""
    runs = []
    checks = Check.objects.enabled().filter(kind=CheckKind.FRESHNESS).select_related("dataset")
    by_dataset: dict[int, list[Check]] = {}
    for check in checks:
        by_dataset.setdefault(check.dataset_id, []).append(check)
    for group in by_dataset.values():
        runs.append(run_checks(group[0].dataset, trigger=trigger, actor=actor, checks=group, apply_drops=False))
    return runs
