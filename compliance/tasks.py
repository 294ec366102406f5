"""Celery entrypoints: load by id, call one service function (``compliance.scan_tasks``)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import scan_tasks


@shared_task(name="compliance.run_pii_scan", bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def run_pii_scan(self, scan_id: int) -> str:
    """Run a queued post-ingest PII scan on a worker of ``ATLAS_PII_SCAN_QUEUE`` (once: a conditional claim).

    Delivered again while a scan worker still marks the scan alive (a duplicate, or its worker just
    killed), it looks again once that worker could be silent, and runs the scan again if it is.
    """
    outcome = scan_tasks.run_dispatched(scan_id)
    if outcome == scan_tasks.RUNNING_ELSEWHERE:
        looks = max(1, int(settings.ATLAS_PII_SCAN_WAIT_SECONDS // settings.ATLAS_PII_SCAN_LOST_SECONDS))
        if self.request.retries < looks:
            raise self.retry(countdown=settings.ATLAS_PII_SCAN_LOST_SECONDS)
    return outcome


@shared_task(name="compliance.reap_lost_scans")
def reap_lost_scans() -> int:
    """Beat's sweep: scans whose scan worker went silent are failed with the reason and queued again."""
    return len(scan_tasks.reap_lost())
