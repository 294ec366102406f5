"""What compliance alerts on (an ``alert_sources`` contribution, read by ``alerts`` through atlas.extensions).

A PII finding that is still *proposed* awaits a steward's review: until then
its column may flow on unprotected. The text names the dataset, the column and
the entity type; the matched samples are never read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from atlas.adminpaths import change_path
from atlas.alerting import WARNING, Event
from pipelines.models import Step

from .models import PiiFinding


def findings_awaiting_review(now: datetime) -> Iterator[Event]:
    producers = dict(Step.objects.values_list("output_id", "pipeline_id").order_by("pk"))
    findings = (
        PiiFinding.objects.filter(status=PiiFinding.Status.PROPOSED)
        .select_related("dataset")
        .only("pk", "column", "entity", "share", "first_seen_at", "dataset__name", "dataset__layer")
        .order_by("pk")
    )
    for finding in findings:
        dataset = finding.dataset
        yield Event(
            kind="pii_review", severity=WARNING, key=f"pii_review:{finding.pk}",
            title=f"PII finding awaiting review: {dataset.layer}.{dataset.name}.{finding.column} ({finding.entity})",
            pipeline_id=producers.get(dataset.pk),
            admin_path=change_path(PiiFinding, finding.pk),
            facts={
                "dataset": dataset.name, "layer": dataset.layer, "column": finding.column, "entity": finding.entity,
                "share": round(finding.share, 3), "first_seen_at": finding.first_seen_at.isoformat(),
            },
        )
