"""Compliance's part of the admin's home: PII findings awaiting a steward's review, by dataset.

Contributed as ``overview_sections`` (atlas.overview). Names and entity types only: never a sample.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Min
from django.urls import reverse

from atlas import humanize
from atlas.overview import OK, WARN, Item, Section

from .models import PiiFinding

SHOWN = 8


def awaiting_by_dataset() -> list[dict]:
    """Datasets with proposed findings: how many columns, which entity types, since when (one query)."""
    rows = (
        PiiFinding.objects.filter(status=PiiFinding.Status.PROPOSED)
        .values("dataset_id", "dataset__layer", "dataset__table")
        .annotate(n=Count("pk"), since=Min("first_seen_at"))
        .order_by("-n", "dataset__layer", "dataset__table")
    )
    entities: dict[int, set[str]] = {}
    for dataset_id, entity in PiiFinding.objects.filter(status=PiiFinding.Status.PROPOSED).values_list("dataset_id", "entity"):
        entities.setdefault(dataset_id, set()).add(entity)
    return [{**r, "entities": sorted(entities.get(r["dataset_id"], ()))} for r in rows]


def section(request, now: datetime) -> Section | None:
    if not request.user.has_perm("compliance.view_piifinding"):
        return None
    datasets = awaiting_by_dataset()
    total = sum(d["n"] for d in datasets)
    changelist = reverse("admin:compliance_piifinding_changelist")
    items = [
        Item(
            text=f"{d['dataset__layer']}.{d['dataset__table']}: {d['n']} column(s) ({', '.join(d['entities'][:4])}"
            + (", …" if len(d["entities"]) > 4 else "") + ")",
            url=f"{changelist}?status__exact=proposed&dataset__id__exact={d['dataset_id']}", level=WARN,
            detail=format_since(d["since"], now),
        )
        for d in datasets[:SHOWN]
    ]
    summary = (
        f"{total} PII finding(s) in {len(datasets)} dataset(s) await review: confirm them (a policy then protects"
        " the column) or dismiss them."
        if total else "No PII finding awaits review."
    )
    return Section(
        key="pii", title="PII findings to review", order=30, level=WARN if total else OK, summary=summary,
        items=items, total=len(datasets), link=f"{changelist}?status__exact=proposed" if total else changelist,
        link_label="Review the findings" if total else "All findings",
    )


def format_since(when: datetime | None, now: datetime) -> str:
    return f"first seen {humanize.age(when, now)}" if when else ""
