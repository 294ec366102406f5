"""compliance's heavy action as a background task (``background_tasks``, :mod:`atlas.background`)."""

from __future__ import annotations

from atlas.background import Kind
from pipelines.models import Dataset

from .detection import scan_dataset
from .models import PiiScan


def scan(task, dataset_id: int, sample_size: int | None = None, trigger: str = PiiScan.Trigger.MANUAL) -> dict:
    """Scan a dataset for PII (a failure is recorded on the scan, not raised)."""
    result = scan_dataset(Dataset.objects.get(pk=dataset_id), actor=task.requested_by, trigger=trigger,
                          sample_size=sample_size)
    return {"scan": result.pk, "status": result.status, "findings": result.findings_count}


KINDS = [Kind("compliance.pii_scan", scan)]
