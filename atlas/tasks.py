"""Celery entrypoints of the project itself: load nothing, call one function."""

from __future__ import annotations

from celery import shared_task

from . import housekeeping


@shared_task(name="atlas.prune_metadata")
def prune_metadata_task() -> dict[str, int]:
    return housekeeping.prune_metadata()


@shared_task(name="atlas.run_background_task")
def run_background_task(task_id: str) -> str | None:
    from . import background

    task = background.execute(task_id)
    return task.state if task else None


@shared_task(name="atlas.reap_lost_tasks")
def reap_lost_tasks_task() -> int:
    from . import background

    return background.reap_lost_tasks()
