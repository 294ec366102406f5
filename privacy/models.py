"""Data-subject requests: the keys that identify a person, the requests, what was done, and tombstones.

A :class:`SubjectKey` says that a dataset column identifies a data subject
(an email, a phone, a customer id...) and how it is stored there (clear, or
hashed by the column's policy). A :class:`DataSubjectRequest` (access or
erasure) moves received -> verified -> in progress -> completed (or rejected
with a reason); every transition is audited. What an erasure removed is kept
per dataset (:class:`ErasureRecord`), an access export as a :class:`DsrExport`
with an expiry, and an erased subject only as HMAC hashes (:class:`Tombstone`).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from atlas.runs import ErrorTextField
from pipelines.models import Dataset, PipelineRun

KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def validate_kind(value: str) -> None:
    if not KIND_RE.match(value or ""):
        raise ValidationError(
            f"Identifier kind {value!r}: use 1-40 lower-case letters, digits and underscores (e.g. email, customer_id)."
        )


class SubjectKey(models.Model):
    """A column of a dataset that identifies a data subject."""

    class Storage(models.TextChoices):
        CLEAR = "clear", "In clear"
        HASHED = "hashed", "Hashed (HMAC pseudonym of the column's policy)"

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        CONFIRMED = "confirmed", "Confirmed"

    class Origin(models.TextChoices):
        MANUAL = "manual", "Declared by a steward"
        FINDING = "finding", "From a confirmed PII finding"
        LINEAGE = "lineage", "Derived directly from another key (lineage)"
        SUBJECT_ID = "subject_id", "The id of a subject's table that other datasets refer to (relationship)"
        RELATION = "relation", "Refers to rows keyed elsewhere (relationship: join or referential check)"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="subject_keys")
    column = models.CharField(max_length=200)
    kind = models.CharField(
        max_length=40, validators=[validate_kind], help_text="What the values are: email, phone, customer_id, order_id..."
    )
    storage = models.CharField(max_length=10, choices=Storage.choices, default=Storage.CLEAR)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PROPOSED)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.MANUAL)
    derived_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="derived_keys"
    )
    note = models.TextField(blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    index_name = models.CharField(max_length=63, blank=True, help_text="Warehouse index on the key (PostgreSQL).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset", "column"]
        constraints = [models.UniqueConstraint(fields=["dataset", "column"], name="subject_key_unique")]

    def __str__(self) -> str:
        return f"{self.dataset.qualified_table}.{self.column} ({self.kind}, {self.storage})"

    @property
    def identifies(self) -> bool:
        """Whether the column tells subjects apart (its values count subjects), not only records of one.

        A steward's key, a finding's key and a subject table's id do; a column that refers to
        rows keyed elsewhere (orders.customer_id, order_items.order_id) holds the subject's
        records; a key derived along lineage is what it was derived from.
        """
        key, seen = self, set()
        while key is not None and key.origin == self.Origin.LINEAGE and key.pk not in seen:
            seen.add(key.pk)
            key = key.derived_from
        return key is None or key.origin != self.Origin.RELATION


class RetainedReference(models.Model):
    """A column allowed to keep referring to erased subjects, with the legal basis a steward recorded.

    The erasure proof lists every column still holding an identifier of the erased
    subject; one that is neither a key (its rows are deleted) nor retained here keeps
    the request open.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="retained_references")
    column = models.CharField(max_length=200)
    legal_basis = models.TextField(help_text="Why the reference may stay (e.g. a legal retention duty); required.")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset", "column"]
        constraints = [models.UniqueConstraint(fields=["dataset", "column"], name="retained_reference_unique")]

    def __str__(self) -> str:
        return f"{self.dataset.qualified_table}.{self.column} (retained)"


class ErasureSetting(models.Model):
    """How an erasure treats a Navigate dataset: rebuild it from below, or delete the subject's rows."""

    class Mode(models.TextChoices):
        REBUILD = "rebuild", "Rebuild (re-run the steps that produce it)"
        DELETE_ROWS = "delete_rows", "Delete the subject's rows (needs a subject key)"

    dataset = models.OneToOneField(Dataset, on_delete=models.CASCADE, related_name="erasure_setting")
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.REBUILD)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.dataset.name}: {self.mode}"

    def clean(self) -> None:
        if self.dataset_id and self.dataset.layer != "navigate":
            raise ValidationError({"dataset": "Erasure settings apply to Navigate datasets (Explore and Chart rows are deleted)."})


class RequestStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    VERIFIED = "verified", "Verified (identity checked)"
    NEEDS_REVIEW = "review", "Needs review (the expansion reached more subjects than it started with)"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"


OPEN_STATUSES = (RequestStatus.RECEIVED, RequestStatus.VERIFIED, RequestStatus.NEEDS_REVIEW, RequestStatus.IN_PROGRESS)


class RequestQuerySet(models.QuerySet):
    def overdue(self, now=None):
        return self.filter(status__in=OPEN_STATUSES, due_at__lt=now or timezone.now())


class DataSubjectRequest(models.Model):
    """A person's request to see (access) or remove (erasure) what Atlas holds about them."""

    class Kind(models.TextChoices):
        ACCESS = "access", "Access (export)"
        ERASURE = "erasure", "Erasure"

    Status = RequestStatus

    kind = models.CharField(max_length=10, choices=Kind.choices)
    identifiers = models.JSONField(
        default=dict, help_text='Identifiers by kind, e.g. {"email": ["ann@example.com"]}; hashed once erased.'
    )
    identifiers_hashed = models.BooleanField(default=False, help_text="The identifiers were replaced by their HMAC hashes.")
    resolved = models.JSONField(default=dict, blank=True, help_text="Identifiers found by expansion (cleared at completion).")
    reference = models.CharField(max_length=200, blank=True, help_text="The requester's ticket or letter reference.")
    status = models.CharField(max_length=12, choices=RequestStatus.choices, default=RequestStatus.RECEIVED)
    received_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reject_reason = models.TextField(blank=True)
    review = models.JSONField(
        default=dict, blank=True,
        help_text="Why the request stopped for review: subjects reached by kind (counts only), the expansion's fingerprint.",
    )
    approved_expansion = models.CharField(
        max_length=64, blank=True, help_text="Fingerprint of the expansion a steward approved (valid only while unchanged)."
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    proof = models.JSONField(default=dict, blank=True, help_text="The last verification scan (per dataset: keys, rows found, when).")
    residue = models.JSONField(default=list, blank=True, help_text="Datasets where the last scan still found rows.")
    error = ErrorTextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RequestQuerySet.as_manager()

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = "data-subject request"
        permissions = [
            ("process_datasubjectrequest", "Can verify, run, export and reject data-subject requests"),
            ("download_dsrexport", "Can download data-subject access exports"),
            # Auditors read requests with identifiers masked; only a grant shows them (issue 12).
            ("view_identifiers_clear", "Can see data subjects' identifiers in clear"),
        ]

    def __str__(self) -> str:
        return f"DSR #{self.pk} ({self.kind})"

    @property
    def is_overdue(self) -> bool:
        return self.status in OPEN_STATUSES and self.due_at is not None and self.due_at < timezone.now()


class ErasureRecord(models.Model):
    """What one erasure did to one table: rows deleted, or the run that rebuilt it."""

    class Method(models.TextChoices):
        DELETE = "delete", "Rows deleted"
        QUARANTINE = "quarantine", "Quarantined rows deleted"
        REBUILD = "rebuild", "Rebuilt by re-running its step"

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="erasures")
    dataset = models.ForeignKey(Dataset, null=True, on_delete=models.SET_NULL, related_name="+")
    table = models.CharField(max_length=200, help_text="layer.table as erased")
    method = models.CharField(max_length=12, choices=Method.choices)
    rows_removed = models.BigIntegerField(default=0)
    run = models.ForeignKey(PipelineRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["request", "id"]

    def __str__(self) -> str:
        return f"{self.table}: {self.method} {self.rows_removed}"


class DsrExport(models.Model):
    """An access export (zip of JSON and CSV per dataset, with a manifest), kept until it expires."""

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="exports")
    path = models.CharField(max_length=1000)
    size_bytes = models.BigIntegerField(default=0)
    rows = models.BigIntegerField(default=0)
    manifest = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="When the file was deleted (expired).")
    downloads = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "DSR export"

    def __str__(self) -> str:
        return f"Export #{self.pk} of {self.request}"

    @property
    def expired(self) -> bool:
        return self.deleted_at is not None or self.expires_at <= timezone.now()


class Tombstone(models.Model):
    """An erased subject, remembered only by the HMAC of an identifier (never in clear)."""

    kind = models.CharField(max_length=40)
    hash = models.CharField(max_length=64)
    key_id = models.CharField(max_length=32, help_text="Which PII_HASH_KEY made the hash (not secret).")
    request = models.ForeignKey(DataSubjectRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="tombstones")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["kind", "hash"], name="tombstone_unique")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.hash[:12]}…"
