"""Celery entrypoints: thin doors onto the condition poll and the outbox."""

from __future__ import annotations

from celery import shared_task

from . import conditions, outbox


@shared_task(name="alerts.evaluate_conditions")
def evaluate_conditions_task() -> dict:
    """Beat's door: poll the contributed alert sources (freshness, overdue requests, findings to review)."""
    report = conditions.evaluate()
    return {"opened": len(report.opened), "closed": len(report.closed), "broken": report.broken_sources}


@shared_task(name="alerts.deliver")
def deliver_task() -> dict:
    """Beat's door: send the due alert deliveries (safe to run twice at once: deliveries are claimed)."""
    report = outbox.deliver_pending()
    return {
        "delivered": len(report.delivered), "retrying": len(report.retrying),
        "failed": len(report.failed), "suppressed": len(report.suppressed),
    }
