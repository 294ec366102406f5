"""Celery entrypoints of the project itself: load nothing, call one function."""

from __future__ import annotations

from celery import shared_task

from . import housekeeping


@shared_task(name="atlas.prune_metadata")
def prune_metadata_task() -> dict[str, int]:
    return housekeeping.prune_metadata()
