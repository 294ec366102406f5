"""Retention's metric families (contributed as ``metric_sources``, read by ``atlas.metrics``).

Read from the database like Atlas's other metrics: the overdue gauge from the
status each policy keeps (refreshed by the daily job and every run), the
counters from the append-only run records.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


def retention_metrics() -> Iterator[Metric]:
    from .models import RetentionPolicy, RetentionRun

    overdue = GaugeMetricFamily(
        "atlas_datasets_past_retention",
        "Datasets holding rows past their retention period (at the last check).",
    )
    overdue.add_metric(
        [], RetentionPolicy.objects.filter(status=RetentionPolicy.Status.OVERDUE).count()
    )
    yield overdue

    removed = CounterMetricFamily(
        "atlas_retention_rows_removed", "Rows removed by retention, by dataset.", labels=["dataset"]
    )
    dropped = CounterMetricFamily(
        "atlas_retention_partitions_dropped",
        "Batch partitions dropped by retention, by dataset.",
        labels=["dataset"],
    )
    totals = (
        RetentionRun.objects.values_list("dataset__name")
        .annotate(rows=Sum("rows_removed"), parts=Sum("partitions_dropped"))
        .order_by()
    )
    for name, rows, parts in totals:
        removed.add_metric([name], rows or 0)
        dropped.add_metric([name], parts or 0)
    yield removed
    yield dropped
