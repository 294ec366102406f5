"""Emitting a step run's OpenLineage events into the outbox, and closing runs whose end was never told.

The hook emits as the step goes; :func:`reconcile` (run before every delivery)
finds step runs that ended without their terminal event — the worker was
killed between the step's state change and the hook, or the run was reaped —
and emits it then, so every START has its COMPLETE, FAIL or ABORT and nothing
is lost. It comes after everything else the run emitted, as it happened.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from atlas.warehouse.base import LOAD_COLUMNS
from pipelines.models import FINISHED_STATUSES, PipelineRun, RunStatus, Step, StepRun
from pipelines.transform import step_inputs

from . import events, graph, outbox
from .models import OutboxEvent

logger = logging.getLogger(__name__)
TERMINAL = ("COMPLETE", "FAIL", "ABORT")
RECONCILE_GRACE = timedelta(minutes=5)
TERMINAL_FOR = {
    RunStatus.SUCCEEDED: "COMPLETE",
    RunStatus.SKIPPED: "COMPLETE",
    RunStatus.FAILED: "FAIL",
    RunStatus.CANCELLED: "ABORT",
}


def emit(step_run: StepRun, step: Step, event_type: str, **kwargs) -> OutboxEvent | None:
    """Build one event of ``step_run`` and store it in the outbox (the caller's transaction); None when not kept."""
    if not outbox.keeping():
        return None
    payload = events.step_event(event_type, step_run, step=step, **kwargs)
    return outbox.store(payload, ordering_key=events.pipeline_run_uuid(step_run.run), step_run=step_run)


def emit_pipeline(run: PipelineRun, event_type: str, **kwargs) -> OutboxEvent | None:
    """Store an event of the pipeline run itself (the parent of its steps' events), first or last of its run."""
    if not outbox.keeping():
        return None
    payload = events.pipeline_event(event_type, run, **kwargs)
    return outbox.store(payload, ordering_key=payload["run"]["runId"])


def declared_lineage(step: Step) -> graph.StepLineage | None:
    """Inputs and output as the step declares them, without refreshing its edges (a failed step changes nothing)."""
    try:
        out = graph.dataset_node(step.output)
        result = graph.StepLineage(step=step, output=out)
        if step.kind == Step.Kind.INGEST:
            if step.source_id:
                names = [c.column for c in out.children.all() if c.column not in LOAD_COLUMNS]
                result.inputs = [graph.source_node(step.source, names)]
        else:
            result.inputs = [graph.dataset_node(d) for d in step_inputs(step)]
        return result
    except Exception:
        logger.exception("Lineage of step %r could not be read; the event names no datasets.", step.name)
        return None


def reconcile(*, now: datetime | None = None, limit: int = 200) -> list[OutboxEvent]:
    """Emit the missing terminal event of every finished step run that has a START and no end.

    Only step runs finished ``RECONCILE_GRACE`` ago: a hook that is still
    recording the end of a step that just finished must not be doubled.
    """
    cutoff = (now or timezone.now()) - RECONCILE_GRACE
    open_runs = (
        StepRun.objects.filter(status__in=FINISHED_STATUSES, lineage_events__event_type="START")
        .filter(Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, run__finished_at__lt=cutoff))
        .exclude(lineage_events__event_type__in=TERMINAL)
        .select_related("run", "step__pipeline", "step__output", "step__source")
        .distinct()
        .order_by("id")[:limit]
    )
    emitted: list[OutboxEvent] = []
    for step_run in open_runs:
        if step_run.step is None:
            logger.warning("Step run %s ended without its terminal event and its step is gone.", step_run.pk)
            continue
        with transaction.atomic():
            event = emit(
                step_run, step_run.step, TERMINAL_FOR[step_run.status],
                lineage=declared_lineage(step_run.step),
                error=step_run.error or None, traceback=step_run.traceback,
                assertions=events.contributed_assertions(step_run),
            )
        if event is not None:
            emitted.append(event)
    return emitted
