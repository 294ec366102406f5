"""Compliance's share of bounded metadata (:mod:`atlas.housekeeping`): old PII scans.

Findings are decisions and stay (their ``last_scan`` is emptied when its scan goes);
the most recent scans of each dataset stay whatever their age; a running scan is never touched.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from atlas.housekeeping import cutoff, prune
from atlas.runs import RunStatus

from .models import PiiScan


def prune_scans(now: datetime) -> dict[str, int]:
    return {
        "PII scans": prune(
            PiiScan.objects.exclude(status__in=(RunStatus.QUEUED, RunStatus.RUNNING)),
            before=cutoff(settings.ATLAS_KEEP_PII_SCAN_DAYS, now),
            field="created_at",
            keep_latest_per="dataset",
        )
    }
