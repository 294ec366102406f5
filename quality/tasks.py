"""Celery entrypoints: thin doors onto :mod:`quality.service`."""

from __future__ import annotations

from celery import shared_task

from .service import check_freshness


@shared_task(name="quality.check_freshness")
def check_freshness_task() -> list[int]:
    """Beat's door: every enabled freshness check against its published table."""
    return [run.pk for run in check_freshness()]
