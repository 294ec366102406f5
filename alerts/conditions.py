"""Polling the contributed ``alert_sources``: a condition fires once when it begins, again after it clears.

Each source (``callable(now)``, contributed by the app that owns the data:
quality's freshness, privacy's overdue requests, compliance's findings awaiting
review) yields an :class:`~atlas.alerting.Event` with a ``key`` for every
condition that holds now. A key not yet open is recorded (an event, its
deliveries) and opened; an open key its source no longer reports is closed.
A source that raises is logged and its open conditions are left as they are
(a broken source must not make every condition fire again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from atlas import extensions

from . import service
from .models import Condition

logger = logging.getLogger(__name__)


@dataclass
class EvaluationReport:
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    broken_sources: list[str] = field(default_factory=list)


def _name(source) -> str:
    return getattr(source, "__module__", "?") + "." + getattr(source, "__qualname__", repr(source))


def evaluate(*, now: datetime | None = None) -> EvaluationReport:
    now = now or timezone.now()
    report = EvaluationReport()
    for source in extensions.contributions("alert_sources"):
        name = _name(source)
        try:
            current = {}
            for event in source(now):
                if not event.key:
                    raise service.BadEvent(f"{name} reported a {event.kind} event without a key.")
                service.check_event(event)
                current[event.key[:200]] = event
        except Exception:
            logger.exception("Alert source %s failed; its conditions are left as they were.", name)
            report.broken_sources.append(name)
            continue
        with transaction.atomic():
            open_keys = set(Condition.objects.filter(source=name).values_list("key", flat=True))
            for key, event in current.items():
                if key in open_keys or Condition.objects.filter(key=key).exists():
                    continue
                row = service.record([event], now=now)[0]
                Condition.objects.create(key=key, source=name, event=row, opened_at=now)
                report.opened.append(key)
            gone = sorted(open_keys - set(current))
            Condition.objects.filter(source=name, key__in=gone).delete()
            report.closed.extend(gone)
    return report
