"""Pipelines' share of bounded metadata (:mod:`atlas.housekeeping`): finished runs past their keep period.

A run's step runs go with it; the batch ledger stays (it is what lets a file be skipped by
checksum) and keeps its rows with the step run emptied. The most recent runs of each
pipeline stay whatever their age, and an active run is never touched.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from atlas.housekeeping import cutoff, prune

from .models import ACTIVE_STATUSES, PipelineRun


def prune_runs(now: datetime) -> dict[str, int]:
    return {
        "pipeline runs": prune(
            PipelineRun.objects.exclude(status__in=ACTIVE_STATUSES),
            before=cutoff(settings.ATLAS_KEEP_RUN_DAYS, now),
            field="created_at",
            keep_latest_per="pipeline",
        )
    }
