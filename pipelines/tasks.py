"""Celery entrypoints: load by id, call one service function."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from . import attempts, runner
from .models import Pipeline, Trigger

logger = logging.getLogger(__name__)


@shared_task(name="pipelines.execute_run", bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def execute_run_task(self, run_id: int) -> str | None:
    """Execute (or resume) the run; a message delivered again after its worker died resumes it.

    The redelivered message finds its run still marked running, by the attempt it
    started: it comes back once the heartbeat has gone silent, then takes the run over.
    """
    task_id = self.request.id
    run = runner.execute_run(run_id, task_id=task_id)
    if run is None and task_id and runner.awaiting_takeover(run_id, task_id):
        if self.request.retries >= settings.ATLAS_RUN_MAX_ATTEMPTS * 3:
            return None  # the reaper has it
        logger.info("Run %s: redelivered while marked running; resuming once its heartbeat is silent.", run_id)
        raise self.retry(countdown=settings.ATLAS_RUN_HEARTBEAT_SECONDS)
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


@shared_task(name="pipelines.clean_up_attempts")
def clean_up_attempts_task() -> int:
    done = attempts.clean_up_attempts()
    return len(done.relations) + len(done.directories) + done.quarantine_rows
@shared_task(name="pipelines.advance_backfills")
def advance_backfills_task() -> int:
    """Beat's sweep: start the next interval of every backfill that may run now."""
    from .backfills import advance_backfills

    return advance_backfills()
