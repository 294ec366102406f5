"""Recording and verifying the audit log (see ``atlas.models.AuditEvent``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction

from .models import AuditEvent, AuditHead

GENESIS = "0" * 64


def _json_safe(detail: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(detail, cls=DjangoJSONEncoder, sort_keys=True))


def record(action: str, *, actor=None, target: models.Model | None = None, **detail: Any) -> AuditEvent:
    """Append one event to the chain, atomically with the caller's transaction."""
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
        user = actor if getattr(actor, "is_authenticated", False) else None
        event = AuditEvent(
            seq=head.seq + 1,
            actor=user,
            actor_name=user.get_username() if user else (str(actor) if actor else ""),
            action=action,
            target_type=target._meta.label_lower if target is not None else "",
            target_id=str(target.pk) if target is not None else "",
            target_repr=str(target)[:300] if target is not None else "",
            detail=_json_safe(detail),
            prev_hash=head.hash,
        )
        event.hash = event.compute_hash()
        event.save()
        AuditHead.objects.filter(pk=1).update(seq=event.seq, hash=event.hash)
    return event


@dataclass(frozen=True)
class Problem:
    seq: int | None
    reason: str


def verify() -> Iterator[Problem]:
    """Walk the chain in order; yield every place where it does not hold."""
    expected_prev, expected_seq = GENESIS, 1
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        if event.seq != expected_seq:
            yield Problem(event.seq, f"expected event #{expected_seq} next, found #{event.seq} (deleted or inserted)")
        if event.prev_hash != expected_prev:
            yield Problem(event.seq, "its link to the previous event does not match (an event before it changed or went)")
        if event.compute_hash() != event.hash:
            yield Problem(event.seq, "its content does not match its hash (edited)")
        expected_prev, expected_seq = event.hash, event.seq + 1
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != expected_seq - 1 or head.hash != expected_prev):
        yield Problem(head.seq, f"the chain ends at #{expected_seq - 1} but the head says #{head.seq} (events at the end deleted)")
