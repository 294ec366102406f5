"""Recording events and fanning them out to the rules that match: one outbox row per (event, rule).

Called in the transaction of what happened (a run's end, a condition poll):
the event and its deliveries commit or roll back with it. Nothing is sent
here; :mod:`alerts.outbox` sends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.urls import reverse
from django.utils import timezone

from atlas.alerting import EVENT_KINDS, SEVERITIES, Event
from atlas.scrub import scrub

from .models import AlertEvent, AlertRule, Delivery

logger = logging.getLogger(__name__)
MAX_FACTS = 20
MAX_FACT_CHARS = 300


class BadEvent(ValueError):
    """A contributed event Atlas will not record (unknown kind, facts that are not plain values)."""


def check_event(event: Event) -> None:
    if event.kind not in EVENT_KINDS:
        raise BadEvent(f"Unknown alert event kind {event.kind!r}; known: {', '.join(EVENT_KINDS)}.")
    if event.severity not in SEVERITIES:
        raise BadEvent(f"Unknown severity {event.severity!r}; one of {', '.join(SEVERITIES)}.")
    if not isinstance(event.facts, dict) or len(event.facts) > MAX_FACTS:
        raise BadEvent(f"An event's facts are a dict of at most {MAX_FACTS} names.")
    for name, value in event.facts.items():
        if not isinstance(name, str) or not (value is None or isinstance(value, str | int | float | bool)):
            raise BadEvent(f"Fact {name!r} of a {event.kind} event is not a plain value.")
    if event.admin_path and not event.admin_path.startswith("/"):
        raise BadEvent("An event's admin_path is a path of this site, starting with /.")


def _clip(value):
    """A fact as stored and sent: capped, and scrubbed of any row value (:mod:`atlas.scrub`)."""
    return scrub(value)[:MAX_FACT_CHARS] if isinstance(value, str) else value


def record(events: Iterable[Event], *, now: datetime | None = None, rules: list[AlertRule] | None = None) -> list[AlertEvent]:
    """Store each event and a pending delivery for every enabled rule it matches (or ``rules``, as given)."""
    now = now or timezone.now()
    stored = []
    for event in events:
        if rules is None:  # read once, and only when there is an event to match
            rules = list(AlertRule.objects.filter(enabled=True))
        check_event(event)
        row = AlertEvent.objects.create(
            kind=event.kind, severity=event.severity, title=scrub(event.title)[:300], key=event.key[:200],
            pipeline_id=event.pipeline_id, admin_path=event.admin_path[:300],
            facts={k: _clip(v) for k, v in event.facts.items()}, created_at=now,
        )
        Delivery.objects.bulk_create(
            Delivery(event=row, rule=rule, next_attempt_at=now, created_at=now)
            for rule in rules
            if rule.matches(event.kind, event.severity, event.pipeline_id)
        )
        stored.append(row)
    return stored


def send_test(rule: AlertRule, *, now: datetime | None = None) -> Delivery:
    """A test event to ``rule`` only (even a disabled one: testing before enabling is the point)."""
    event = Event(
        kind="test", severity="error", title=f"Test alert for rule {rule.name}",
        admin_path=reverse("admin:alerts_alertrule_change", args=[rule.pk]),
        facts={"rule": rule.name, "channel": rule.channel},
    )
    now = now or timezone.now()
    row = record([event], now=now, rules=[])[0]
    return Delivery.objects.create(event=row, rule=rule, next_attempt_at=now, created_at=now)
