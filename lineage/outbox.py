"""The outbox: emitted events are rows first, HTTP requests later.

:func:`store` writes an event in the caller's transaction; :func:`deliver_pending`
(the beat task's body) sends what is due to ``OPENLINEAGE_URL``, strictly in
order within one pipeline run: an event is sent only when every earlier event
of its run has been delivered. A refused or unreachable endpoint puts the
event back with an exponential backoff; after ``OPENLINEAGE_MAX_ATTEMPTS`` it
is marked failed (kept, and the admin can retry it). Each event is claimed with
a conditional update, so two workers never send the same one at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Min, Q
from django.utils import timezone

from atlas import metrics

from .models import OutboxEvent

if TYPE_CHECKING:
    import requests  # imported by deliver_pending: not at start (the admin loads this module)

logger = logging.getLogger(__name__)
LEASE_SECONDS = 300


def store(
    payload: dict[str, Any], *, ordering_key: str, step_run=None
) -> OutboxEvent | None:
    """Keep an event for delivery (in the caller's transaction, like the state change it reports).

    None, and nothing kept, when no endpoint is configured (``OPENLINEAGE_URL``): nothing would
    ever deliver it, and the outbox would grow for ever (``OPENLINEAGE_KEEP_WITHOUT_ENDPOINT`` keeps it).
    """
    if not keeping():
        return None
    return OutboxEvent.objects.create(
        ordering_key=ordering_key,
        run_uuid=payload["run"]["runId"],
        event_type=payload.get("eventType") or "",
        job_name=f"{payload['job']['namespace']}/{payload['job']['name']}"[:500],
        step_run=step_run,
        payload=payload,
    )


def keeping() -> bool:
    """Whether emitted events are kept: an endpoint is configured, or ``OPENLINEAGE_KEEP_WITHOUT_ENDPOINT``."""
    return bool(endpoint_url()) or settings.OPENLINEAGE_KEEP_WITHOUT_ENDPOINT


def backoff(attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: base, 2x, 4x ... capped."""
    base, cap = settings.OPENLINEAGE_RETRY_BASE_SECONDS, settings.OPENLINEAGE_RETRY_MAX_SECONDS
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


@dataclass
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped_reason: str = ""


def endpoint_url() -> str:
    base = settings.OPENLINEAGE_URL.rstrip("/")
    return f"{base}/{settings.OPENLINEAGE_ENDPOINT.lstrip('/')}" if base else ""


def _post(session: requests.Session, url: str, payload: dict) -> str | None:
    """Send one event; None when accepted, else why not."""
    headers = {"Content-Type": "application/json"}
    if settings.OPENLINEAGE_API_KEY:
        headers["Authorization"] = f"Bearer {settings.OPENLINEAGE_API_KEY}"
    import requests

    try:
        response = session.post(url, json=payload, headers=headers, timeout=settings.ATLAS_HTTP_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}: {response.text[:500]}"


def _heads(now: datetime, limit: int) -> list[OutboxEvent]:
    """The first undelivered event of each run, when it is due: the only ones that may be sent."""
    firsts = (
        OutboxEvent.objects.undelivered()
        .values("ordering_key")
        .annotate(first=Min("id"))
        .values_list("first", flat=True)
    )
    return list(
        OutboxEvent.objects.filter(pk__in=list(firsts), status=OutboxEvent.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("id")[:limit]
    )


def _claim(event: OutboxEvent, now: datetime) -> bool:
    return bool(
        OutboxEvent.objects.filter(pk=event.pk, status=OutboxEvent.Status.PENDING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + timedelta(seconds=LEASE_SECONDS))
    )


def deliver_pending(*, now: datetime | None = None, limit: int = 500, url: str | None = None) -> DeliveryReport:
    """Send due events, run by run, each run's in order; stop a run at its first refusal."""
    from .emit import reconcile

    report = DeliveryReport()
    now = now or timezone.now()
    reconcile(now=now)  # step runs that ended without their terminal event get it now, before delivery
    url = url or endpoint_url()
    if not url:
        report.skipped_reason = "OPENLINEAGE_URL is not set; events wait in the outbox."
        return report
    import requests

    session = requests.Session()
    sent = 0
    try:
        while sent < limit:
            heads = _heads(now, limit - sent)
            if not heads:
                break
            progressed = False
            for event in heads:
                if not _claim(event, now):
                    continue  # another worker has it
                sent += 1
                error = _post(session, url, event.payload)
                if error is None:
                    OutboxEvent.objects.filter(pk=event.pk).update(
                        status=OutboxEvent.Status.DELIVERED, delivered_at=timezone.now(), lease_until=None,
                        attempts=event.attempts + 1, last_error="",
                    )
                    report.delivered.append(event.pk)
                    metrics.count_lineage_delivery("delivered")
                    progressed = True
                    continue
                attempts = event.attempts + 1
                gave_up = attempts >= settings.OPENLINEAGE_MAX_ATTEMPTS
                OutboxEvent.objects.filter(pk=event.pk).update(
                    status=OutboxEvent.Status.FAILED if gave_up else OutboxEvent.Status.PENDING,
                    attempts=attempts, last_error=error[:2000], lease_until=None,
                    next_attempt_at=now + backoff(attempts),
                )
                (report.failed if gave_up else report.retrying).append(event.pk)
                metrics.count_lineage_delivery("failed" if gave_up else "retry")
                logger.warning("OpenLineage event %s not delivered (attempt %s): %s", event.pk, attempts, error)
            if not progressed:
                break
    finally:
        session.close()
    return report


def retry(events) -> int:
    """Put failed (or waiting) events back to be sent at the next delivery; returns how many."""
    return (
        OutboxEvent.objects.filter(pk__in=[e.pk for e in events])
        .exclude(status=OutboxEvent.Status.DELIVERED)
        .update(status=OutboxEvent.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), lease_until=None)
    )
