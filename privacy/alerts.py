"""What privacy alerts on (an ``alert_sources`` contribution, read by ``alerts`` through atlas.extensions).

A data-subject request still open after its due date. The text gives its
number, kind, status and dates — never the subject's identifiers nor the
requester's reference (which may hold a name).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from atlas.adminpaths import change_path
from atlas.alerting import ERROR, Event

from .models import DataSubjectRequest


def overdue_requests(now: datetime) -> Iterator[Event]:
    overdue = DataSubjectRequest.objects.overdue(now).only("pk", "kind", "status", "due_at", "received_at").order_by("due_at", "pk")
    for request in overdue:
        days = (now - request.due_at).total_seconds() / 86400
        yield Event(
            kind="dsr_overdue", severity=ERROR, key=f"dsr_overdue:{request.pk}",
            title=(f"Data-subject request #{request.pk} ({request.kind}) is overdue:"
                   f" due {request.due_at:%Y-%m-%d}, status {request.status}"),
            admin_path=change_path(DataSubjectRequest, request.pk),
            facts={
                "request": request.pk, "kind": request.kind, "status": request.status,
                "received_at": request.received_at.isoformat(), "due_at": request.due_at.isoformat(),
                "days_overdue": round(days, 1),
            },
        )
