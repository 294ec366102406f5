"""Lineage as a step hook: OpenLineage events stored with the state changes they report.

``LineageHook`` is contributed by this app (``LineageConfig.contributes``) and
runs last (``order`` 900), after the hooks that rewrite the SELECT
(compliance), so the lineage traced is the query that really ran. The runner
calls ``run_started``, ``run_finished`` and ``started`` inside the transaction
that stores the new status, so a status and its event are committed, or rolled
back, together; the terminal step events (``published``, ``skipped``,
``failed``) follow the stored end, and :func:`lineage.emit.reconcile` closes
any step run whose end was not recorded (the worker was killed in between).
The outbox delivers later.

Per pipeline run the outbox holds, in order: the pipeline's START, each
step's START and COMPLETE/FAIL (their ``parent`` facet names the pipeline
run), then the pipeline's COMPLETE, FAIL or ABORT. A lineage problem is
logged and never fails the step or undoes its status (a savepoint keeps it apart).
"""

from __future__ import annotations

import logging

from django.db import transaction

from pipelines.hooks import Origin, RunContext, StepContext
from pipelines.models import RunStatus

from . import events, graph, outbox
from .emit import declared_lineage, emit, emit_pipeline
from .models import OutboxEvent

logger = logging.getLogger(__name__)

PIPELINE_TERMINAL = {RunStatus.SUCCEEDED: "COMPLETE", RunStatus.FAILED: "FAIL", RunStatus.CANCELLED: "ABORT"}


def _has_start(**filters) -> bool:
    return OutboxEvent.objects.filter(event_type="START", **filters).exists()


def _safely(what: str, action) -> None:
    """Run ``action`` in a savepoint; a lineage failure is logged, never raised into the runner."""
    try:
        with transaction.atomic():
            action()
    except Exception:
        logger.exception("Lineage event of %s was not recorded.", what)


def _engine_facts(ctx: StepContext) -> dict:
    """What the warehouse engine ran for the step so far (``Warehouse.take_job_facts``); {} when it cannot tell."""
    try:
        return ctx.warehouse.take_job_facts(ctx.schema, ctx.target)
    except Exception:
        logger.warning("The engine's facts of step %r were not read.", ctx.step.name, exc_info=True)
        return {}


class LineageHook:
    """Events for every run and step, the graph kept current (see the module docstring)."""

    order = 900  # last: the query traced is the one the hooks before rewrote

    def run_started(self, ctx: RunContext) -> None:
        if outbox.keeping():
            _safely(f"pipeline run {ctx.run.pk} (start)", lambda: emit_pipeline(ctx.run, "START"))

    def run_finished(self, ctx: RunContext) -> None:
        run = ctx.run
        if not outbox.keeping():
            return

        def end() -> None:
            if ctx.status in PIPELINE_TERMINAL and _has_start(run_uuid=events.pipeline_run_uuid(run)):
                emit_pipeline(run, PIPELINE_TERMINAL[ctx.status], error=run.error, traceback=run.traceback)

        _safely(f"pipeline run {run.pk} ({ctx.status})", end)

    def started(self, ctx: StepContext) -> None:
        if not outbox.keeping():  # no event to store: nothing to read for it (the graph is refreshed when published)
            return
        ctx.step_run.run = ctx.run
        _engine_facts(ctx)  # the baseline: what ran before the step is not the step's
        _safely(self._what(ctx, "start"), lambda: emit(
            ctx.step_run, ctx.step, "START", lineage=declared_lineage(ctx.step), sql=ctx.select_sql
        ))

    def published(self, ctx: StepContext) -> None:
        step_run, step = ctx.step_run, ctx.step
        step_run.run = ctx.run
        if not outbox.keeping():  # no event: the graph only, in refresh_step's own savepoint
            if ctx.origin == Origin.RUN:
                try:
                    graph.refresh_step(step, sql=ctx.select_sql, masked=ctx.masked_columns)
                except Exception:
                    logger.exception("Lineage graph of step %r (run %s) not refreshed.", step.name, ctx.run.pk)
            return

        def complete() -> None:
            refreshed = None  # rows added to the published table (origin not RUN): the step's SQL did not run
            if ctx.origin == Origin.RUN:
                try:  # in a savepoint of its own (refresh_step is atomic)
                    refreshed = graph.refresh_step(step, sql=ctx.select_sql, masked=ctx.masked_columns)
                except Exception:
                    logger.exception("Lineage graph of step %r (run %s) not refreshed; the event names what it"
                                     " declares.", step.name, ctx.run.pk)
            if outbox.keeping():  # else no event is stored: nothing more to read for it
                emit(step_run, step, "COMPLETE", lineage=refreshed or declared_lineage(step), sql=ctx.select_sql,
                     assertions=events.contributed_assertions(step_run), engine=_engine_facts(ctx))

        _safely(self._what(ctx, "complete"), complete)

    def skipped(self, ctx: StepContext) -> None:
        # Nothing new to load: the run still ends (COMPLETE, no output written, lineage unchanged).
        if not outbox.keeping():
            return
        ctx.step_run.run = ctx.run
        _safely(self._what(ctx, "skipped"), lambda: emit(
            ctx.step_run, ctx.step, "COMPLETE", lineage=declared_lineage(ctx.step), sql=ctx.select_sql
        ))

    def failed(self, ctx: StepContext) -> None:
        if not outbox.keeping():
            return
        step_run, step = ctx.step_run, ctx.step
        step_run.run = ctx.run

        def fail() -> None:
            declared = declared_lineage(step)
            if not _has_start(step_run=step_run):
                emit(step_run, step, "START", lineage=declared, sql=ctx.select_sql)  # START always comes first
            emit(
                step_run, step, "FAIL" if step_run.status == RunStatus.FAILED else "ABORT", lineage=declared,
                sql=ctx.select_sql, error=step_run.error or ctx.error, traceback=step_run.traceback,
                assertions=events.contributed_assertions(step_run), engine=_engine_facts(ctx),
            )

        _safely(self._what(ctx, "failure"), fail)

    @staticmethod
    def _what(ctx: StepContext, stage: str) -> str:
        return f"step {ctx.step.name!r} (run {ctx.run.pk}, {stage})"


def step_saved(step) -> None:
    """A step's definition was saved (contributed as ``step_saved``): its SQL, source or output may have changed.

    Refreshes the step's lineage once the save is committed; a step that cannot be traced keeps the old graph.
    """
    from pipelines.models import Step

    step_id = step.pk

    def refresh() -> None:
        current = Step.objects.select_related("pipeline", "output", "source").filter(pk=step_id).first()
        if current is None:
            return
        try:
            graph.refresh_step(current)
        except Exception:
            logger.warning("Lineage of step %r not refreshed on save.", current.name, exc_info=True)

    transaction.on_commit(refresh)
