from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone


class PipelineQuerySet(models.QuerySet):
    def enabled(self) -> PipelineQuerySet:
        return self.filter(enabled=True)

    def scheduled(self) -> PipelineQuerySet:
        return self.enabled().exclude(schedule="")


class PipelineRunQuerySet(models.QuerySet):
    def active(self) -> PipelineRunQuerySet:
        return self.filter(status__in=["queued", "running"])

    def finished(self) -> PipelineRunQuerySet:
        return self.exclude(status__in=["queued", "running"])

    def stale(self, seconds: int) -> PipelineRunQuerySet:
        """Running runs whose worker stopped reporting (killed, lost)."""
        cutoff = timezone.now() - timedelta(seconds=seconds)
        return self.filter(status="running", heartbeat_at__lt=cutoff)
