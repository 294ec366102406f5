"""Quality's metric families (contributed as ``metric_sources``, read by ``atlas.metrics``)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


def quality_metrics() -> Iterator[Metric]:
    """Check results by outcome and severity; the rows drop checks moved to each dataset's quarantine."""
    from .models import CheckResult, CheckRun

    results = CounterMetricFamily(
        "atlas_check_results", "Quality check results recorded, by outcome and severity.", labels=["outcome", "severity"]
    )
    for outcome, severity, n in CheckResult.objects.values_list("outcome", "severity").annotate(n=Count("pk")).order_by():
        results.add_metric([str(outcome), str(severity)], n)
    yield results

    # The same family as the pipelines app's ingest rejects: atlas.metrics adds them up by dataset.
    quarantined = GaugeMetricFamily(
        "atlas_quarantined_rows",
        "Rows sent to a dataset's quarantine: records that could not be parsed, and rows a drop check moved.",
        labels=["dataset"],
    )
    moved = CheckRun.objects.values_list("dataset__name").annotate(n=Sum("rows_quarantined")).order_by()
    for name, n in sorted(moved, key=lambda row: str(row[0])):
        quarantined.add_metric([name], n or 0)
    yield quarantined


def freshness_metrics() -> Iterator[Metric]:
    """1 for each enabled freshness check whose latest evaluation did not pass, else 0 (alerts)."""
    from .freshness import states

    breached = GaugeMetricFamily(
        "atlas_dataset_freshness_breached",
        "1 when the latest evaluation of a freshness check did not pass (0: fresh, or not evaluated yet).",
        labels=["dataset", "layer", "check"],
    )
    for state in states():
        breached.add_metric([state.dataset, state.layer, state.check], 1 if state.breached else 0)
    yield breached
