"""Privacy's metric families (contributed as ``metric_sources``, read by ``atlas.metrics``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

# A request due within this is "due_soon" on the dashboard.
DUE_SOON = timedelta(days=7)
STATES = ("on_time", "due_soon", "overdue")


def subject_request_metrics() -> Iterator[Metric]:
    """Open data-subject requests by kind and by how close their legal due date is."""
    from .models import OPEN_STATUSES, DataSubjectRequest

    family = GaugeMetricFamily(
        "atlas_subject_requests_open",
        "Open data-subject requests, by kind and state (on_time, due_soon: within 7 days, overdue).",
        labels=["kind", "state"],
    )
    now = timezone.now()
    rows = {
        row["kind"]: row
        for row in DataSubjectRequest.objects.filter(status__in=OPEN_STATUSES)
        .values("kind")
        .annotate(
            total=Count("pk"),
            overdue=Count("pk", filter=Q(due_at__lt=now)),
            due_soon=Count("pk", filter=Q(due_at__gte=now, due_at__lt=now + DUE_SOON)),
        )
        .order_by()
    }
    for kind in DataSubjectRequest.Kind.values:
        row = rows.get(kind, {"total": 0, "overdue": 0, "due_soon": 0})
        counts = {"overdue": row["overdue"], "due_soon": row["due_soon"]}
        counts["on_time"] = row["total"] - counts["overdue"] - counts["due_soon"]
        for state in STATES:
            family.add_metric([kind, state], counts[state])
    yield family
