"""Celery entrypoints: thin doors onto :mod:`retention.services`."""

from __future__ import annotations

import logging

from celery import shared_task

from . import services
from .models import RetentionRun

logger = logging.getLogger(__name__)


@shared_task(name="retention.apply_all")
def apply_all_task() -> dict:
    """The daily beat job: apply every enabled policy; check the disabled ones (they may be overdue)."""
    summary = services.apply_all(trigger=RetentionRun.Trigger.SCHEDULE)
    for run in summary.failed:
        logger.error("Retention of %s failed: %s", run.dataset.name, run.error)
    services.refresh_all(enabled=False)
    overdue = services.RetentionPolicy.objects.filter(
        status=services.RetentionPolicy.Status.OVERDUE
    ).count()
    return {
        "runs": len(summary.runs),
        "failed": len(summary.failed),
        "rows_removed": summary.rows_removed,
        "overdue": overdue,
    }
