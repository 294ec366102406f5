"""The audit log: who did what, when, to which object — append-only and hash-chained.

Every event carries a hash of its content and of the event before it, and a
contiguous sequence number; a head row remembers the last one. Since scheme 2
the hash is an HMAC-SHA256 keyed with ``ATLAS_AUDIT_KEY`` (held outside the
database), and every committed event is also anchored outside the database
(``atlas.audit_anchor``). Editing, inserting or deleting an event (even the
last), or recomputing the chain without the key, breaks it, and
``manage.py verify_audit_log`` says where. Nothing in Atlas updates or deletes
events: the model and its queryset refuse it.

Events written before the keyed chain (scheme 1: plain SHA-256) keep their
scheme and still verify; the first keyed event links to the last of them, so
editing an old event also breaks the keyed part (its link no longer matches).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """Audit events are never changed or deleted."""


SCHEME_SHA256 = 1  # before the keyed chain: SHA-256 of the content (kept for old events)
SCHEME_HMAC = 2  # HMAC-SHA256 keyed with ATLAS_AUDIT_KEY, the scheme of every new event


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
    scheme = models.PositiveSmallIntegerField(
        default=SCHEME_HMAC, editable=False, help_text="How the hash is computed: 1 SHA-256 (old events), 2 HMAC."
    )

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
        content = {
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
        if self.scheme != SCHEME_SHA256:  # the scheme is covered too: no downgrading an event
            content["scheme"] = self.scheme
        return content

    def compute_hash(self, key: bytes | None = None) -> str:
        """The event's hash under its scheme; HMAC events use ``key`` (default: ATLAS_AUDIT_KEY)."""
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
        if self.scheme == SCHEME_SHA256:
            return hashlib.sha256(canonical.encode()).hexdigest()
        if self.scheme != SCHEME_HMAC:
            raise ValueError(f"unknown audit hash scheme {self.scheme!r}")
        if key is None:
            from .audit_key import audit_key

            key = audit_key()
        return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


class AuditHead(models.Model):
    """The last event of the chain; locked while appending, so events get one order."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit head at #{self.seq}"


class BackgroundTask(models.Model):
    """A heavy action (an erasure proof, an index build, a data-subject run, a retention apply, a PII scan)
    carried out outside the request: on a Celery worker, or in-process when Atlas runs embedded
    (:mod:`atlas.background`). The API answers 202 with this record's URL; its ``error`` never holds PII.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, editable=False)
    kind = models.CharField(max_length=60, db_index=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    params = models.JSONField(default=dict, blank=True, help_text="Object ids only, never personal data.")
    target = models.CharField(max_length=200, blank=True, help_text="What it acts on, as the audit log names it.")
    progress = models.FloatField(null=True, blank=True, help_text="0 to 1 while it runs, when the action reports it.")
    result = models.JSONField(default=dict, blank=True)
    result_path = models.CharField(max_length=300, blank=True, help_text="Where the outcome is read (a path).")
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    celery_task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the process running it (the reaper fails a silent one)."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "background task"

    def __str__(self) -> str:
        return f"{self.kind} ({self.state})"
