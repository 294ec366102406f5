"""Lineage's share of bounded metadata (:mod:`atlas.housekeeping`): old events, sent or received.

Emitted events go once delivered, or once given up (failed: the admin could retry them
until then); pending ones stay whatever their age, since the endpoint has not had them.
Received events go after their own keep period. The graph (nodes, edges) is definitions
and stays.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from atlas.housekeeping import cutoff, prune

from .models import OutboxEvent, ReceivedEvent


def prune_lineage(now: datetime) -> dict[str, int]:
    before = cutoff(settings.ATLAS_KEEP_LINEAGE_EVENT_DAYS, now)
    return {
        "lineage events delivered": prune(
            OutboxEvent.objects.filter(status=OutboxEvent.Status.DELIVERED), before=before, field="delivered_at"
        ),
        "lineage events given up": prune(
            OutboxEvent.objects.filter(status=OutboxEvent.Status.FAILED), before=before, field="created_at"
        ),
        "lineage events received": prune(
            ReceivedEvent.objects.all(),
            before=cutoff(settings.ATLAS_KEEP_RECEIVED_LINEAGE_DAYS, now),
            field="received_at",
        ),
    }
