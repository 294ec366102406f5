"""The audit log: who did what, when, to which object — append-only and hash-chained.

Every event carries the SHA-256 of its content and of the event before it, and
a contiguous sequence number; a head row remembers the last one. Editing,
inserting or deleting an event (even the last) breaks the chain, and
``manage.py verify_audit_log`` says where. Nothing in Atlas updates or deletes
events: the model and its queryset refuse it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """Audit events are never changed or deleted."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events cannot be changed.")

    def delete(self):
        raise AppendOnlyError("Audit events cannot be deleted.")

    _raw_delete = delete


class AuditEvent(models.Model):
    seq = models.PositiveBigIntegerField(unique=True, editable=False)
    at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    actor_name = models.CharField(max_length=150, blank=True, editable=False, help_text="As it was when recorded.")
    action = models.CharField(max_length=100, db_index=True, editable=False)
    target_type = models.CharField(max_length=100, blank=True, editable=False)
    target_id = models.CharField(max_length=64, blank=True, editable=False)
    target_repr = models.CharField(max_length=300, blank=True, editable=False)
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_name or 'system'}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events cannot be deleted.")

    def content(self) -> dict[str, Any]:
        """What the hash covers (the actor by name: deleting a user does not break the chain)."""
        return {
            "seq": self.seq,
            "at": self.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": self.actor_name,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "target_repr": self.target_repr,
            "detail": self.detail,
            "prev": self.prev_hash,
        }

    def compute_hash(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
        return hashlib.sha256(canonical.encode()).hexdigest()


class AuditHead(models.Model):
    """The last event of the chain; locked while appending, so events get one order."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit head at #{self.seq}"
