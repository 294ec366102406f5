"""Lineage's part of the admin's home: the delivery backlog of emitted OpenLineage events.

Says plainly when no endpoint is configured (``OPENLINEAGE_URL``): then nothing delivers events.
Contributed as ``overview_sections`` (atlas.overview).
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db.models import Count, Min
from django.urls import reverse

from atlas import humanize
from atlas.overview import BAD, OK, WARN, Section

from .models import OutboxEvent

NO_ENDPOINT = (
    "No OpenLineage endpoint is configured (OPENLINEAGE_URL is empty), so events are not delivered anywhere."
    " The lineage graph in Atlas is complete without one; set OPENLINEAGE_URL to send events to Marquez or"
    " another OpenLineage receiver."
)


def backlog() -> dict[str, dict]:
    """Undelivered events by status: how many, and the oldest (one grouped query)."""
    rows = (
        OutboxEvent.objects.undelivered().values("status")
        .annotate(n=Count("pk"), oldest=Min("created_at")).order_by()
    )
    return {r["status"]: r for r in rows}


def section(request, now: datetime) -> Section | None:
    if not request.user.has_perm("lineage.view_outboxevent"):
        return None
    waiting = backlog()
    pending = waiting.get(OutboxEvent.Status.PENDING, {}).get("n", 0)
    failed = waiting.get(OutboxEvent.Status.FAILED, {}).get("n", 0)
    oldest = min((r["oldest"] for r in waiting.values()), default=None)
    changelist = reverse("admin:lineage_outboxevent_changelist")
    configured = bool(settings.OPENLINEAGE_URL)
    if not configured:
        level = WARN if pending or failed else OK
        summary = (
            f"No endpoint configured: {pending + failed} emitted event(s) wait and will not be delivered."
            if pending or failed else "No endpoint configured: events are not delivered (none waiting)."
        )
    elif failed:
        level, summary = BAD, f"{failed} event(s) failed delivery; {pending} pending."
    elif pending:
        level = WARN if oldest and (now - oldest).total_seconds() > 3600 else OK
        summary = f"{pending} event(s) waiting, the oldest from {humanize.age(oldest, now)}."
    else:
        level, summary = OK, "Every emitted event is delivered."
    return Section(
        key="lineage", title="Lineage delivery", order=50, level=level, summary=summary,
        note="" if configured else NO_ENDPOINT, total=pending + failed,
        link=f"{changelist}?status__exact=failed" if failed else changelist,
        link_label="Failed events" if failed else "Emitted events",
    )
