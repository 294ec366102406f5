"""Quality's share of bounded metadata (:mod:`atlas.housekeeping`): check runs and their results.

The most recent check runs of each dataset stay whatever their age (a dataset's quality
status and trend read them); a check run still running is never touched.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from atlas.housekeeping import cutoff, prune

from .models import CheckRun


def prune_check_runs(now: datetime) -> dict[str, int]:
    return {
        "check runs": prune(
            CheckRun.objects.exclude(status=CheckRun.Status.RUNNING),
            before=cutoff(settings.ATLAS_KEEP_CHECK_RUN_DAYS, now),
            field="started_at",
            keep_latest_per="dataset",
        )
    }
