"""Alerts' metric family (contributed as ``metric_sources``): the outbox by status, so a stuck outbox alerts too."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric


def alert_metrics() -> Iterator[Metric]:
    from .models import Delivery

    family = GaugeMetricFamily(
        "atlas_alert_deliveries", "Alert deliveries in the outbox, by status.", labels=["status"]
    )
    counts = dict(Delivery.objects.values_list("status").annotate(n=Count("pk")).order_by())
    for status in Delivery.Status.values:
        family.add_metric([status], counts.get(status, 0))
    yield family
