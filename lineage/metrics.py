"""Lineage's metric families (contributed as ``metric_sources``, read by ``atlas.metrics``)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric


def lineage_metrics() -> Iterator[Metric]:
    """The outbox backlog: events stored and not yet delivered."""
    from .models import OutboxEvent

    backlog = GaugeMetricFamily("atlas_lineage_outbox_backlog", "Lineage events stored but not yet delivered.")
    backlog.add_metric([], OutboxEvent.objects.filter(delivered_at__isnull=True).count())
    yield backlog
