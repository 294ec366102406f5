"""Re-process quarantined rows after a fix: the same checks again, then publish what passes.

After an operator fixes what made rows fail — a check's definition (an accepted
value added, a tolerance), the referenced data (the missing customer loaded) —
:func:`reprocess` sends the selected check-quarantined rows of a dataset back
through the dataset's enabled row checks, as they are now:

* a row that passes every drop and fail check is inserted into the published
  table (uniqueness counts the keys already published, so a row cannot come
  back as a duplicate);
* a row that still fails stays in the quarantine, with the checks it fails now
  and the new check run in its reason;
* in one warehouse transaction: the selected quarantine rows are deleted, the
  still-failing ones re-inserted, the passing ones published — every selected
  row ends up in exactly one of the two tables, or nothing changes at all.

Ingest rejects (records that could not be parsed, ``_check_run_id`` empty) are
not re-processed here: they are raw lines, not rows of the dataset; fix the
file and load it again. A blocking check that cannot be evaluated stops the
re-processing before anything moves (fail closed).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from atlas import audit
from atlas.warehouse import Warehouse, WarehouseError, get_warehouse
from pipelines import hooks, runner
from pipelines.hooks import GateFailed, Origin, StepContext
from pipelines.ingest import StepOutcome
from pipelines.models import Dataset, RunStatus, Step

from . import quarantine
from .models import Check, CheckResult, CheckRun, Outcome
from .service import BLOCKING, evaluate


class ReprocessError(Exception):
    """Re-processing cannot start or could not finish; nothing was moved."""


@dataclass
class Reprocessed:
    check_run: CheckRun | None
    selected: int
    published: int
    requarantined: int

    def __str__(self) -> str:
        if not self.selected:
            return "No check-quarantined rows were selected; nothing to re-process."
        return (
            f"{self.selected} row(s) re-processed: {self.published} published,"
            f" {self.requarantined} still failing and kept in quarantine."
        )


def eligible_rows(wh: Warehouse, dataset: Dataset, check_run_ids: list[int] | None = None) -> int:
    """How many check-quarantined rows of ``dataset`` (of these check runs) could be re-processed."""
    return quarantine.count_rows(wh, dataset.layer, dataset.table, check_run_ids)


def current_check_runs(dataset: Dataset) -> list[int] | None:
    """The check runs whose quarantined rows belong to the published table as it is (None: all of them).

    A dataset its step rebuilds (write mode ``replace``) starts afresh with every publish:
    rows quarantined before the latest published rebuild were superseded by it (that run
    quarantined its own copy), so by default only the rows of that run and of later
    re-processing count. Appended and merged datasets keep every quarantined row.
    """
    from atlas.warehouse.base import WriteMode

    if not Step.objects.filter(output=dataset, write_mode=WriteMode.REPLACE).exists():
        return None
    latest = (
        CheckRun.objects.filter(
            dataset=dataset, trigger=CheckRun.Trigger.STEP, status__in=[CheckRun.Status.PASSED, CheckRun.Status.WARNED]
        )
        .order_by("-started_at", "-id")
        .first()
    )
    if latest is None:
        return None
    return list(
        CheckRun.objects.filter(
            dataset=dataset, trigger__in=[CheckRun.Trigger.STEP, CheckRun.Trigger.REPROCESS], id__gte=latest.pk
        ).values_list("pk", flat=True)
    )


def _typed_select(wh: Warehouse, dataset: Dataset, have: set[str]) -> str:
    """The published table's columns, cast back from the quarantine's text (NULL where it kept none)."""
    items = []
    for column in wh.columns(dataset.layer, dataset.table):
        source = wh.quote(column.name) if column.name in have else "NULL"
        items.append(f"CAST({source} AS {column.type}) AS {wh.quote(column.name)}")
    return ", ".join(items)


def reprocess(
    dataset: Dataset, *, check_run_ids: list[int] | None = None, actor=None, warehouse: Warehouse | None = None
) -> Reprocessed:
    """Send the check-quarantined rows of ``dataset`` through its checks again.

    ``check_run_ids`` selects the rows those check runs quarantined; without it, the
    rows of the published table as it is (:func:`current_check_runs`).

    When a step produces the dataset, the rows go through the runner as that step
    (:func:`pipelines.runner.run_work`): a run of its pipeline with one step run,
    the step hooks called on the staged rows (compliance's PII gate, lineage's
    events; the quality gate leaves the checks to this function). A dataset no
    step produces has no step hooks to run.
    """
    wh = warehouse or get_warehouse()
    schema, table = dataset.layer, dataset.table
    if not wh.table_exists(schema, table):
        raise ReprocessError(f"{dataset.qualified_table} has not been published yet; there is nothing to add rows to.")
    if check_run_ids is not None and not all(isinstance(i, int) for i in check_run_ids):
        raise ReprocessError("Select check runs by their numeric ids.")
    if check_run_ids is None:
        check_run_ids = current_check_runs(dataset)
    selected = eligible_rows(wh, dataset, check_run_ids)
    if not selected:
        return Reprocessed(None, 0, 0, 0)
    work = ReprocessWork(dataset, check_run_ids, actor=actor, warehouse=wh)
    step = Step.objects.filter(output=dataset).select_related("pipeline", "output", "source").first()
    if step is None:
        work.move(None)
    else:
        try:
            runner.run_work(step, work, origin=Origin.REPROCESS, actor=actor)
        except runner.RunRefused as exc:
            raise ReprocessError(f"Nothing was moved: {exc}") from exc
        if work.error is not None:
            if isinstance(work.error, ReprocessError):
                raise work.error
            raise ReprocessError(f"Nothing was moved: {work.error}") from work.error
        if work.result is None:
            raise ReprocessError(f"Nothing was moved: the pipeline {step.pipeline.name!r} could not run.")
    return work.result


class ReprocessWork:
    """The runner's work (see :func:`pipelines.runner.run_step`) that re-processes quarantined rows.

    Stages the selected rows as the published table's columns, lets the ``staged``
    hooks see them, evaluates the checks, then moves every row in one warehouse
    transaction: the passing ones into the published table, the rest back to quarantine.
    """

    def __init__(self, dataset: Dataset, check_run_ids: list[int] | None, *, actor, warehouse: Warehouse) -> None:
        self.dataset, self.check_run_ids, self.actor, self.wh = dataset, check_run_ids, actor, warehouse
        self.result: Reprocessed | None = None
        self.error: Exception | None = None

    def begin(self, ctx: StepContext) -> None:
        return None

    def run(self, ctx: StepContext, *, progress=None) -> StepOutcome:
        try:
            done = self.move(ctx)
        except Exception as exc:
            self.error = exc
            raise
        return StepOutcome(
            status=RunStatus.SUCCEEDED, rows_in=done.selected, rows_out=done.published, rows_rejected=done.requarantined
        )

    def move(self, ctx: StepContext | None) -> Reprocessed:
        """Re-process now; ``ctx``: the step run the runner gives (its ``staged`` hooks are called)."""
        wh, dataset, actor, check_run_ids = self.wh, self.dataset, self.actor, self.check_run_ids
        schema, table = dataset.layer, dataset.table
        qname = quarantine.quarantine_name(table)
        checks = [c for c in Check.objects.for_dataset(dataset).enabled() if c.is_row_level]
        check_run = CheckRun.objects.create(
            dataset=dataset,
            trigger=CheckRun.Trigger.REPROCESS,
            triggered_by=actor if getattr(actor, "is_authenticated", False) else None,
            table=f"{schema}.{qname}",
            step_run=ctx.step_run if ctx is not None else None,
        )
        prefix = table[:40]
        locators, candidates = f"{prefix}__rloc{check_run.pk}", f"{prefix}__reproc{check_run.pk}"
        where, params = quarantine._run_filter(wh, check_run_ids)
        try:
            try:
                with wh.cursor() as cur:
                    cur.execute(
                        f"CREATE TABLE {wh.table(schema, locators)} AS SELECT {wh.locator_columns()}"
                        f" FROM {wh.table(schema, qname)} WHERE {where}",
                        params,
                    )
                    have = {c.name for c in wh.columns(schema, qname)}
                    cur.execute(
                        f"CREATE TABLE {wh.table(schema, candidates)} AS SELECT {_typed_select(wh, dataset, have)}"
                        f" FROM {wh.table(schema, qname)}"
                        f" WHERE {wh.locator_in(wh.table(schema, locators))}"
                    )
            except WarehouseError as exc:
                raise ReprocessError(
                    f"The quarantined rows cannot be read back as {dataset.qualified_table}'s columns: {exc}"
                ) from exc
            if ctx is not None:
                ctx.staging, ctx.staged_tables = candidates, [locators, candidates]
                try:
                    hooks.after_staging(ctx)  # e.g. compliance's PII gate; the quality gate leaves it to us
                except GateFailed as exc:
                    raise ReprocessError(f"Nothing was moved: {exc}") from exc
            selected = wh.row_count(schema, candidates)
            evaluation = evaluate(wh, checks, schema, candidates, unique_against=(schema, table))
            broken = [r for r in evaluation.results if r.outcome == Outcome.ERROR and r.severity in BLOCKING]
            if broken:
                raise ReprocessError(
                    "Nothing was moved: blocking check(s) could not be evaluated: "
                    + "; ".join(f"{r.check_name}: {r.message}" for r in broken)
                )
            failing = {r.check_ref.pk for r in evaluation.results if r.severity in BLOCKING and r.failing_rows}
            drops = [rc for rc in evaluation.plan.row if rc.check.pk in failing]
            statements = [
                (
                    f"DELETE FROM {wh.table(schema, qname)}"
                    f" WHERE {wh.locator_in(wh.table(schema, locators))}",
                    [],
                )
            ]
            if drops:
                statements += quarantine.split_statements(
                    wh, evaluation.plan, drops, target=table, check_run_id=check_run.pk, run_id=None, batch_id=None,
                    source=f"re-processing (check run {check_run.pk})",
                )
            columns = ", ".join(wh.quote(c.name) for c in wh.columns(dataset.layer, dataset.table))
            statements.append(
                (
                    f"INSERT INTO {wh.table(schema, table)} ({columns})"
                    f" SELECT {columns} FROM {wh.table(schema, candidates)}",
                    [],
                )
            )
            try:
                with wh.transaction() as cur:
                    quarantine.execute(cur, statements)
            except WarehouseError as exc:
                raise ReprocessError(f"Nothing was moved: {exc}") from exc
            published = wh.row_count(schema, candidates)
        except ReprocessError as exc:
            check_run.status, check_run.error, check_run.finished_at = CheckRun.Status.ERROR, str(exc), timezone.now()
            check_run.save()
            raise
        finally:
            for name in (locators, candidates):
                with contextlib.suppress(WarehouseError):
                    wh.drop_table(schema, name)
            if ctx is not None:
                ctx.staging, ctx.staged_tables = None, []
        requarantined = selected - published
        for r in evaluation.results:
            r.check_run = check_run
            if r.check_ref and r.check_ref.pk in failing:
                r.rows_quarantined = r.failing_rows or 0
        with transaction.atomic():
            CheckResult.objects.bulk_create(evaluation.results)
            check_run.status = (
                CheckRun.Status.PASSED
                if all(r.outcome == Outcome.PASS for r in evaluation.results)
                else CheckRun.Status.WARNED
            )
            check_run.rows_checked = selected
            check_run.rows_quarantined = requarantined
            check_run.queries = evaluation.queries + 3
            check_run.finished_at = timezone.now()
            check_run.save()
            audit.record(
                "quality.reprocess", actor=actor, target=dataset, check_run=check_run.pk, selected=selected,
                published=published, requarantined=requarantined, from_check_runs=check_run_ids,
            )
        self.result = Reprocessed(check_run, selected, published, requarantined)
        return self.result
