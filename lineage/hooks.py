"""The lineage step hook: START at prepare, the graph and COMPLETE at publish, FAIL on failure.

Enable it with ``ATLAS_STEP_HOOKS = [..., "lineage.hooks.LineageHook"]`` after
the hooks that rewrite the SELECT (compliance), so the lineage traced is the
query that really ran. Each event row is written in a transaction with the
graph refresh it reports; the outbox delivers it later.
"""

from __future__ import annotations

import logging

from django.db import transaction

from pipelines.hooks import StepContext

from . import events, graph
from .emit import declared_lineage, emit

logger = logging.getLogger(__name__)
_STARTED = "lineage_started"


def _emit(ctx: StepContext, event_type: str, **kwargs) -> None:
    ctx.step_run.run = ctx.run
    emit(ctx.step_run, ctx.step, event_type, **kwargs)


# What compliance's hook records in ``ctx.extra["pii_policies"]`` ({column: action}); these leave PII in clear.
CLEAR_ACTIONS = {"keep", "absent"}


def masked_columns(ctx: StepContext) -> set[str]:
    """Output columns a PII policy protected in this step (set by compliance before us)."""
    applied = ctx.extra.get("pii_policies") or {}
    return {column for column, action in applied.items() if action not in CLEAR_ACTIONS}


class LineageHook:
    """Emits OpenLineage events for every step run and keeps the lineage graph current.

    A lineage problem is logged and never fails the step: the data matters
    more than its record, and :func:`lineage.emit.reconcile` closes any run
    whose end was not recorded.
    """

    def prepare(self, ctx: StepContext) -> None:
        if ctx.extra.get(_STARTED):
            return
        try:
            with transaction.atomic():
                _emit(ctx, "START", lineage=declared_lineage(ctx.step), sql=ctx.select_sql)
            ctx.extra[_STARTED] = True
        except Exception:
            logger.exception("START of step %r (run %s) was not recorded.", ctx.step.name, ctx.run.pk)

    def published(self, ctx: StepContext) -> None:
        try:
            with transaction.atomic():
                ctx.step_run.refresh_from_db()
                result = graph.refresh_step(ctx.step, sql=ctx.select_sql, masked=masked_columns(ctx))
                _emit(
                    ctx, "COMPLETE", lineage=result, sql=ctx.select_sql,
                    assertions=events.quality_assertions(ctx.step_run),
                )
        except Exception:
            logger.exception("Lineage of step %r (run %s) was not recorded.", ctx.step.name, ctx.run.pk)

    def skipped(self, ctx: StepContext) -> None:
        """Nothing new to load: the run still ends (COMPLETE, no output written, lineage unchanged)."""
        try:
            with transaction.atomic():
                ctx.step_run.refresh_from_db()
                _emit(ctx, "COMPLETE", lineage=declared_lineage(ctx.step), sql=ctx.select_sql)
        except Exception:
            logger.exception("Lineage event of skipped step %r (run %s) was not recorded.", ctx.step.name, ctx.run.pk)

    def failed(self, ctx: StepContext) -> None:
        with transaction.atomic():
            ctx.step_run.refresh_from_db()
            declared = declared_lineage(ctx.step)
            if not ctx.extra.get(_STARTED):
                # Failed before prepare (e.g. an input never loaded): START still comes first.
                _emit(ctx, "START", lineage=declared, sql=ctx.select_sql)
                ctx.extra[_STARTED] = True
            _emit(
                ctx, "FAIL", lineage=declared, sql=ctx.select_sql,
                error=ctx.step_run.error or ctx.error, traceback=ctx.step_run.traceback,
                assertions=events.quality_assertions(ctx.step_run),
            )
