"""Celery entrypoints: thin doors onto ``privacy.service``."""

from __future__ import annotations

from celery import shared_task

from . import service


@shared_task(name="privacy.purge_expired_exports")
def purge_expired_exports_task() -> int:
    """Beat's door: delete the files of access exports past their expiry."""
    return service.purge_expired_exports()
