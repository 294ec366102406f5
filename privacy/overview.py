"""Privacy's part of the admin's home: overdue data-subject requests, those due within a week, and the
subject keys proposed but not confirmed (requests do not search them), each linking to its dataset's
Subject keys panel where one button confirms it.

Contributed as ``overview_sections`` (atlas.overview). Numbers, kinds, statuses and dates only:
never the subject's identifiers nor the requester's reference.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.urls import reverse

from atlas import humanize
from atlas.overview import BAD, OK, WARN, Item, Section

from .models import OPEN_STATUSES, DataSubjectRequest, SubjectKey

SHOWN = 8
SOON = timedelta(days=7)


def section(request, now: datetime) -> Section | None:
    if not request.user.has_perm("privacy.view_datasubjectrequest"):
        return None
    open_requests = DataSubjectRequest.objects.filter(status__in=OPEN_STATUSES).only(
        "pk", "kind", "status", "due_at"
    ).order_by("due_at", "pk")
    overdue = [r for r in open_requests if r.due_at < now]
    soon = [r for r in open_requests if now <= r.due_at < now + SOON]
    items = [
        Item(
            text=f"Request #{r.pk} ({r.get_kind_display().lower()}, {r.get_status_display().lower()})"
            f" was due {humanize.age(r.due_at, now)}",
            url=reverse("admin:privacy_datasubjectrequest_change", args=[r.pk]), level=BAD,
        )
        for r in overdue[:SHOWN]
    ] + [
        Item(
            text=f"Request #{r.pk} ({r.get_kind_display().lower()}, {r.get_status_display().lower()})"
            f" is due {humanize.age(r.due_at, now)}",
            url=reverse("admin:privacy_datasubjectrequest_change", args=[r.pk]), level=WARN,
        )
        for r in soon[: max(SHOWN - len(overdue), 0)]
    ]
    proposed = _proposed_keys(request)
    items += [
        Item(text=f"{count} proposed subject key{'s' if count != 1 else ''} on {name} to confirm"
             " (requests do not search them yet)",
             url=reverse("admin:pipelines_dataset_change", args=[pk]) + "#privacy-keys", level=WARN)
        for pk, name, count in proposed[:SHOWN]
    ]
    changelist = reverse("admin:privacy_datasubjectrequest_changelist")
    waiting = sum(count for _pk, _name, count in proposed)
    keys_note = f" {waiting} proposed subject key(s) to confirm." if waiting else ""
    if overdue:
        summary, level = f"{len(overdue)} data-subject request(s) overdue.{keys_note}", BAD
    elif soon:
        summary, level = f"No request overdue; {len(soon)} due within 7 days.{keys_note}", WARN
    elif waiting:
        summary, level = f"No request overdue ({len(open_requests)} open).{keys_note}", WARN
    else:
        summary, level = f"No request overdue ({len(open_requests)} open).", OK
    return Section(
        key="dsr", title="Data-subject requests", order=40, level=level, summary=summary, items=items,
        total=len(overdue) + len(soon) + len(proposed),
        link=f"{changelist}?deadline=overdue" if overdue else changelist,
        link_label="Overdue requests" if overdue else "All requests",
    )


def _proposed_keys(request) -> list[tuple[int, str, int]]:
    """(dataset id, dataset name, proposed keys) for whoever may confirm them, most keys first."""
    if not request.user.has_perm("privacy.change_subjectkey"):
        return []
    from django.db.models import Count

    rows = (SubjectKey.objects.filter(status=SubjectKey.Status.PROPOSED).values("dataset_id", "dataset__name")
            .annotate(n=Count("pk")).order_by("-n", "dataset__name"))
    return [(r["dataset_id"], r["dataset__name"], r["n"]) for r in rows]
