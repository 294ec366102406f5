"""Delivering the outbox: due deliveries are claimed, rate limited, sent, and retried with backoff.

:func:`deliver_pending` is the delivery task's body (beat, every
``ATLAS_ALERTS_DELIVER_INTERVAL_SECONDS``). Per delivery:

1. claimed with a conditional update (a lease), so two workers never send it twice;
2. rate limited per rule: when the rule has already had ``max_per_window``
   messages delivered in its window, the delivery is *suppressed* (kept,
   not sent); the next message the rule sends says how many were suppressed,
   and when none comes, the newest suppressed one is sent as a digest once the
   window has room again;
3. sent (:mod:`alerts.channels`); a failure that may pass (connection refused,
   timeout, 429, 5xx) is retried after an exponential backoff with jitter
   (``Retry-After`` honoured up to the cap); a failure that will not (a 4xx,
   a refused URL, a missing secret) or the last of ``ATLAS_ALERTS_MAX_ATTEMPTS``
   marks it failed, kept with its last error and retryable from the admin.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from . import channels
from .models import AlertRule, Delivery

logger = logging.getLogger(__name__)
LEASE_SECONDS = 300


def backoff(attempts: int, retry_after: float | None = None, *, rand: random.Random | None = None) -> timedelta:
    """Wait before attempt ``attempts + 1``: base x 2^(attempts-1), capped, with jitter in [50 %, 100 %]."""
    base, cap = float(settings.ATLAS_ALERTS_RETRY_BASE_SECONDS), float(settings.ATLAS_ALERTS_RETRY_MAX_SECONDS)
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    delay *= (rand or random).uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, min(cap, retry_after))
    return timedelta(seconds=delay)


@dataclass
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    suppressed: list[int] = field(default_factory=list)


def _free(now: datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def _claim(delivery: Delivery, now: datetime) -> bool:
    return bool(
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).filter(_free(now))
        .update(lease_until=now + timedelta(seconds=LEASE_SECONDS))
    )


def _window_start(rule: AlertRule, now: datetime) -> datetime:
    return now - timedelta(minutes=rule.window_minutes)


def sent_in_window(rule: AlertRule, now: datetime) -> int:
    return Delivery.objects.filter(
        rule=rule, status=Delivery.Status.DELIVERED, delivered_at__gt=_window_start(rule, now)
    ).count()


def _unreported(rule: AlertRule) -> list[int]:
    return list(
        Delivery.objects.filter(rule=rule, status=Delivery.Status.SUPPRESSED, reported_in__isnull=True)
        .values_list("pk", flat=True)
    )


def release_digests(now: datetime) -> int:
    """Rules with unreported suppressed alerts, nothing pending and room in the window: send the newest."""
    released = 0
    rule_ids = set(
        Delivery.objects.filter(status=Delivery.Status.SUPPRESSED, reported_in__isnull=True)
        .values_list("rule_id", flat=True)
    )
    for rule in AlertRule.objects.filter(pk__in=rule_ids):
        if Delivery.objects.filter(rule=rule, status=Delivery.Status.PENDING).exists():
            continue  # the next pending message will carry the count
        if sent_in_window(rule, now) >= rule.max_per_window:
            continue
        newest = Delivery.objects.filter(
            rule=rule, status=Delivery.Status.SUPPRESSED, reported_in__isnull=True
        ).order_by("-id").first()
        if newest and Delivery.objects.filter(pk=newest.pk, status=Delivery.Status.SUPPRESSED).update(
            status=Delivery.Status.PENDING, next_attempt_at=now
        ):
            released += 1
    return released


def deliver_pending(*, now: datetime | None = None, limit: int = 200, only: list[int] | None = None) -> DeliveryReport:
    """Send the due deliveries, oldest first (``only``: just these, e.g. a test alert)."""
    now = now or timezone.now()
    report = DeliveryReport()
    if only is None:
        release_digests(now)
    due = Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now).filter(_free(now))
    if only is not None:
        due = due.filter(pk__in=only)
    for delivery in due.select_related("event__pipeline", "rule").order_by("id")[:limit]:
        if not _claim(delivery, now):
            continue  # another worker has it
        _deliver_one(delivery, now, report)
    return report


def _deliver_one(delivery: Delivery, now: datetime, report: DeliveryReport) -> None:
    rule = delivery.rule
    rows = Delivery.objects.filter(pk=delivery.pk)
    if delivery.event.kind != "test" and sent_in_window(rule, now) >= rule.max_per_window:
        rows.update(status=Delivery.Status.SUPPRESSED, lease_until=None)
        report.suppressed.append(delivery.pk)
        return
    counted = [pk for pk in _unreported(rule) if pk != delivery.pk]
    attempts = delivery.attempts + 1
    try:
        channels.send(rule, delivery.event, suppressed=len(counted))
    except channels.NotSent as why:
        gave_up = not why.retry or attempts >= settings.ATLAS_ALERTS_MAX_ATTEMPTS
        rows.update(
            status=Delivery.Status.FAILED if gave_up else Delivery.Status.PENDING,
            attempts=attempts, last_error=str(why)[:500], lease_until=None,
            next_attempt_at=now if gave_up else now + backoff(attempts, why.retry_after),
        )
        (report.failed if gave_up else report.retrying).append(delivery.pk)
        logger.warning("Alert delivery %s (rule %s) not sent, attempt %s%s: %s", delivery.pk, rule.name, attempts,
                       " (gave up)" if gave_up else "", why)
        return
    rows.update(
        status=Delivery.Status.DELIVERED, attempts=attempts, last_error="", lease_until=None,
        delivered_at=now, suppressed_count=len(counted),
    )
    Delivery.objects.filter(pk__in=counted).update(reported_in=delivery)
    report.delivered.append(delivery.pk)


def retry(deliveries) -> int:
    """Failed (or waiting) deliveries back to be sent at the next pass; returns how many."""
    return (
        Delivery.objects.filter(pk__in=[d.pk for d in deliveries])
        .filter(status__in=[Delivery.Status.FAILED, Delivery.Status.PENDING])
        .update(status=Delivery.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), lease_until=None)
    )
