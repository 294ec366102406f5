"""One run record: what every job's history row carries, and how it starts and ends.

Pipeline and step runs, PII scans, check runs and retention runs all inherit
:class:`RunRecordBase` (abstract: no table of its own), so the admin, the API
and the metrics read history the same way. A model whose column was declared
differently before the base existed overrides the field (e.g. a check run's
statuses, a ``started_at`` that defaults to now): the database stays as it was.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from django.db import models
from django.utils import timezone

from atlas.scrub import scrub, scrub_traceback


class ErrorTextField(models.TextField):
    """An error's text, scrubbed of row values (:mod:`atlas.scrub`) on every write and every read.

    Writes include ``QuerySet.update`` (a run's end is stored that way); reads scrub what an
    older release stored. The column is a plain text column: migrations see a ``TextField``.
    """

    def _scrubbed(self, value: Any) -> Any:
        return scrub(value) if isinstance(value, str) and value else value

    def get_prep_value(self, value: Any) -> Any:
        return self._scrubbed(super().get_prep_value(value))

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return self._scrubbed(value)

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.TextField", args, kwargs


class TracebackField(ErrorTextField):
    """A traceback: code locations kept, the exception lines scrubbed (:func:`atlas.scrub.scrub_traceback`)."""

    def _scrubbed(self, value: Any) -> Any:
        return scrub_traceback(value) if isinstance(value, str) and value else value


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


class RunRecordBase(models.Model):
    """Status, timings and the error of one run; ``start``, ``finish`` and ``fail`` move it along."""

    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = ErrorTextField(blank=True)

    # The statuses this record uses for "running" and for "the run itself failed"
    # (a check run's FAILED means "blocked by a check": its own failure is ERROR).
    RUNNING_STATUS: ClassVar[str] = RunStatus.RUNNING
    FAILED_STATUS: ClassVar[str] = RunStatus.FAILED

    class Meta:
        abstract = True

    @property
    def duration(self) -> timedelta | None:
        """Finished minus started; while it runs, the time so far; None before it starts."""
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    def start(self, *, save: bool = True) -> None:
        """Running from now (a retry starts afresh: no finish time, no error)."""
        self.status, self.started_at, self.finished_at, self.error = self.RUNNING_STATUS, timezone.now(), None, ""
        if save:
            self.save()

    def finish(self, status: str, *, error: str | None = None, save: bool = True, **fields: Any) -> None:
        """End with ``status`` now; ``fields``: the run's own outcome (counts, details) saved with it."""
        self.status, self.finished_at = status, timezone.now()
        if error is not None:
            self.error = error
        for name, value in fields.items():
            setattr(self, name, value)
        if save:
            self.save()

    def fail(self, error: str, *, status: str | None = None, save: bool = True, **fields: Any) -> None:
        """End as failed (``FAILED_STATUS`` unless told) with the error the operator reads."""
        self.finish(status or self.FAILED_STATUS, error=error, save=save, **fields)
