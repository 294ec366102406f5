"""Celery entrypoints: load by id, call one service function."""

from __future__ import annotations

import logging

from celery import shared_task

from . import runner
from .models import Pipeline, Trigger

logger = logging.getLogger(__name__)


@shared_task(name="pipelines.execute_run", acks_late=True)
def execute_run_task(run_id: int) -> str | None:
    run = runner.execute_run(run_id)
    return run.status if run else None


@shared_task(name="pipelines.trigger_scheduled_run")
def trigger_scheduled_run(pipeline_id: int) -> int | None:
    """Beat's door: start a run unless one is active (then it is refused and logged)."""
    pipeline = Pipeline.objects.filter(pk=pipeline_id).first()
    if pipeline is None:
        logger.warning("Scheduled pipeline %s no longer exists.", pipeline_id)
        return None
    try:
        return runner.start_run(pipeline, trigger=Trigger.SCHEDULE).pk
    except runner.RunRefused as exc:
        logger.warning("Scheduled run refused: %s", exc)
        return None


@shared_task(name="pipelines.reap_stale_runs")
def reap_stale_runs_task() -> int:
    return runner.reap_stale_runs()


@shared_task(name="pipelines.advance_backfills")
def advance_backfills_task() -> int:
    """Beat's sweep: start the next interval of every backfill that may run now."""
    from .backfills import advance_backfills

    return advance_backfills()
