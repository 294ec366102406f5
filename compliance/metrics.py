"""Compliance's metric families (contributed as ``metric_sources``, read by ``atlas.metrics``)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric


def compliance_metrics() -> Iterator[Metric]:
    """PII findings by entity type and status."""
    from .models import PiiFinding

    findings = GaugeMetricFamily("atlas_pii_findings", "PII findings, by entity type and status.",
                                 labels=["entity", "status"])
    for entity, status, n in PiiFinding.objects.values_list("entity", "status").annotate(n=Count("pk")).order_by():
        findings.add_metric([str(entity), str(status)], n)
    yield findings
