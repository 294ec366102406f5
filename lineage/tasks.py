"""Celery entrypoints: thin doors onto the outbox."""

from __future__ import annotations

from celery import shared_task

from . import outbox


@shared_task(name="lineage.deliver_events")
def deliver_events_task() -> dict:
    """Beat's door: send the due OpenLineage events (safe to run twice at once: events are claimed)."""
    report = outbox.deliver_pending()
    return {
        "delivered": len(report.delivered),
        "retrying": len(report.retrying),
        "failed": len(report.failed),
        "skipped": report.skipped_reason,
    }
