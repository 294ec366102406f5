"""Celery entrypoints: thin doors onto :mod:`quality.service` and :mod:`quality.reprocess`."""

from __future__ import annotations

from celery import shared_task

from .service import check_freshness


@shared_task(name="quality.check_freshness")
def check_freshness_task() -> list[int]:
    """Beat's door: every enabled freshness check against its published table."""
    return [run.pk for run in check_freshness()]


@shared_task(name="quality.reprocess_quarantine")
def reprocess_quarantine_task(dataset_id: int, check_run_ids: list[int] | None = None) -> dict:
    """Re-process a dataset's quarantined rows in a worker (for large quarantines)."""
    from pipelines.models import Dataset

    from .reprocess import reprocess

    done = reprocess(Dataset.objects.get(pk=dataset_id), check_run_ids=check_run_ids)
    return {"check_run": done.check_run.pk if done.check_run else None, "selected": done.selected,
            "published": done.published, "requarantined": done.requarantined}
