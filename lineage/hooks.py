"""Lineage joins the runner: OpenLineage events stored with the state changes they report.

Enable it with ``ATLAS_STEP_HOOKS = [..., "lineage.hooks.LineageHook"]`` after
the hooks that rewrite the SELECT (compliance), so the lineage traced is the
query that really ran. The runner stores every new status of a step run or
pipeline run in a transaction and sends ``step_state_changed`` /
``run_state_changed`` inside it (:mod:`pipelines.runner`); the receivers here
write the event row (the outbox) in that same transaction, so a status and
its event are committed, or rolled back, together. The outbox delivers later.

Per pipeline run the outbox holds, in order: the pipeline's START, each
step's START and COMPLETE/FAIL (their ``parent`` facet names the pipeline
run), then the pipeline's COMPLETE, FAIL or ABORT.
"""

from __future__ import annotations

import logging

from django.db import transaction

from pipelines import hooks as step_hooks
from pipelines.hooks import StepContext
from pipelines.models import PipelineRun, RunStatus, StepRun

from . import events, graph
from .emit import declared_lineage, emit, emit_pipeline
from .models import OutboxEvent

logger = logging.getLogger(__name__)

# What compliance's hook records in ``ctx.extra["pii_policies"]`` ({column: action}); these leave PII in clear.
CLEAR_ACTIONS = {"keep", "absent"}
PIPELINE_TERMINAL = {RunStatus.SUCCEEDED: "COMPLETE", RunStatus.FAILED: "FAIL", RunStatus.CANCELLED: "ABORT"}


def masked_columns(ctx: StepContext) -> set[str]:
    """Output columns a PII policy protected in this step (set by compliance before us)."""
    applied = ctx.extra.get("pii_policies") or {}
    return {column for column, action in applied.items() if action not in CLEAR_ACTIONS}


class LineageHook:
    """Naming it in ``ATLAS_STEP_HOOKS`` turns lineage on: events for every run and step, the graph kept current.

    It needs no stage method: the work happens in the state-change receivers
    below, inside the runner's transactions. A lineage problem is logged and
    never fails the step or undoes its status (a savepoint keeps it apart);
    :func:`lineage.emit.reconcile` closes any step run whose end was not recorded.
    """


def enabled() -> bool:
    return any(isinstance(hook, LineageHook) for hook in step_hooks.hooks())


def _has_start(**filters) -> bool:
    return OutboxEvent.objects.filter(event_type="START", **filters).exists()


def _step_events(ctx: StepContext, status: str) -> None:
    step_run, step = ctx.step_run, ctx.step
    step_run.run = ctx.run
    sql = ctx.select_sql
    if status == RunStatus.RUNNING:
        emit(step_run, step, "START", lineage=declared_lineage(step), sql=sql)
    elif status == RunStatus.SUCCEEDED:
        try:
            with transaction.atomic():
                lineage = graph.refresh_step(step, sql=sql, masked=masked_columns(ctx))
        except Exception:
            logger.exception("Lineage graph of step %r (run %s) not refreshed; the event names what it declares.",
                             step.name, ctx.run.pk)
            lineage = declared_lineage(step)
        emit(step_run, step, "COMPLETE", lineage=lineage, sql=sql, assertions=events.quality_assertions(step_run))
    elif status == RunStatus.SKIPPED:
        # Nothing new to load: the run still ends (COMPLETE, no output written, lineage unchanged).
        emit(step_run, step, "COMPLETE", lineage=declared_lineage(step), sql=sql)
    elif status in (RunStatus.FAILED, RunStatus.CANCELLED):
        declared = declared_lineage(step)
        if not _has_start(step_run=step_run):
            emit(step_run, step, "START", lineage=declared, sql=sql)  # START always comes first
        emit(
            step_run, step, "FAIL" if status == RunStatus.FAILED else "ABORT", lineage=declared, sql=sql,
            error=step_run.error or ctx.error, traceback=step_run.traceback,
            assertions=events.quality_assertions(step_run),
        )


def step_state_changed(sender, *, step_run: StepRun, ctx: StepContext, status: str, **kwargs) -> None:
    """Receiver of ``pipelines.runner.step_state_changed``: the step run's event, in the caller's transaction."""
    try:
        if not enabled():
            return
        with transaction.atomic():  # a savepoint: a lineage failure leaves the state change alone
            _step_events(ctx, status)
    except Exception:
        logger.exception("Lineage event of step %r (run %s, %s) was not recorded.", ctx.step.name, ctx.run.pk, status)


def run_state_changed(sender, *, run: PipelineRun, status: str, **kwargs) -> None:
    """Receiver of ``pipelines.runner.run_state_changed``: the pipeline run's own START and end."""
    try:
        if not enabled():
            return
        with transaction.atomic():
            if status == RunStatus.RUNNING:
                emit_pipeline(run, "START")
            elif status in PIPELINE_TERMINAL and _has_start(run_uuid=events.pipeline_run_uuid(run)):
                emit_pipeline(run, PIPELINE_TERMINAL[status], error=run.error, traceback=run.traceback)
    except Exception:
        logger.exception("Lineage event of pipeline run %s (%s) was not recorded.", run.pk, status)
