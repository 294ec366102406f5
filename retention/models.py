"""Retention policies, the record of every execution, and the records of processing (Art. 30).

A :class:`RetentionPolicy` says how long a dataset keeps its rows, measured on
one timestamp column. Applying it (:mod:`retention.services`) deletes the rows
strictly older than the cutoff — on PostgreSQL, expired Explore batches are
dropped as whole partitions — and leaves a :class:`RetentionRun`. The policy
also keeps the last known status (overdue or not), computed from the
warehouse, so lists, filters and metrics read it without scanning tables.

A :class:`ProcessingRecord` is what GDPR Art. 30(1) asks a controller to keep
for a processing activity — here, per dataset: purpose, legal basis,
categories of data subjects, recipients, transfers, retention, security.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from atlas.history import DefinitionHistory
from atlas.runs import ErrorTextField, RunRecordBase
from pipelines.models import Dataset


class Edited(models.Model):
    """Who last changed a row that operators edit, and when it was created and changed."""

    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class RetentionPolicy(Edited):
    """How long a dataset keeps its rows, measured on one timestamp column."""

    class Action(models.TextChoices):
        DELETE = "delete", "Delete expired rows"
        REPORT = "report", "Report only (e.g. a legal hold): never delete"

    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Not checked yet"
        WITHIN = "within", "Within retention"
        OVERDUE = "overdue", "Past retention"
        EMPTY = "empty", "No data"
        ERROR = "error", "Cannot be checked"

    dataset = models.OneToOneField(
        Dataset, on_delete=models.CASCADE, related_name="retention_policy"
    )
    column = models.CharField(
        max_length=200,
        default="_ingested_at",
        help_text="The timestamp the period runs from: a date or timestamp column, an ingestion column"
        " (_ingested_at) or a text column holding ISO 8601 timestamps (Explore).",
    )
    period_days = models.PositiveIntegerField(
        help_text="Rows older than this many days are expired."
    )
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.DELETE)
    enabled = models.BooleanField(
        default=True, help_text="Disabled policies are skipped by the daily job."
    )
    # Last known state of the warehouse, refreshed by every check and every run.
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.UNKNOWN, editable=False
    )
    oldest_value = models.DateTimeField(null=True, blank=True, editable=False)
    expired_rows = models.BigIntegerField(
        default=0, editable=False, help_text="Rows past the cutoff at the last check."
    )
    unparseable_rows = models.BigIntegerField(
        default=0,
        editable=False,
        help_text="Rows whose timestamp text does not parse (reported, never deleted).",
    )
    checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    status_error = ErrorTextField(blank=True, editable=False)
    # the warehouse's state above is Atlas's bookkeeping, not the operator's definition
    history = DefinitionHistory(
        bookkeeping=("status", "oldest_value", "expired_rows", "unparseable_rows", "checked_at", "status_error")
    )

    class Meta:
        ordering = ["dataset__name"]
        verbose_name_plural = "retention policies"
        permissions = [("apply_retention", "Can apply retention now")]

    def __str__(self) -> str:
        return f"{self.dataset.name}: {self.period_days} days on {self.column}"

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.period_days)

    def cutoff(self, now=None):
        """Rows strictly older than this instant are expired (a row exactly at it is kept)."""
        return (now or timezone.now()) - self.period

    @property
    def is_overdue(self) -> bool:
        return self.status == self.Status.OVERDUE

    def describe(self) -> str:
        verb = "deleted" if self.action == self.Action.DELETE else "reported (not deleted)"
        state = "" if self.enabled else " (disabled)"
        return f"{self.period_days} days on {self.column}, then {verb}{state}"

    def clean(self) -> None:
        from .services import PolicyError, validate_policy

        if not self.dataset_id:
            return
        try:
            validate_policy(self.dataset, self.column, self.period_days, self.action,
                            columns_may_be_unknown=getattr(self, "columns_may_be_unknown", False))
        except PolicyError as exc:
            raise ValidationError(exc.errors) from exc


class RetentionRun(RunRecordBase):
    """One execution of a retention policy: cutoff, what it removed, how long it took, the error."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule (daily)"
        MANUAL = "manual", "Manual (admin)"
        API = "api", "API"
        CLI = "cli", "Command line"

    # PROTECT: retention runs are evidence; deleting the dataset must not delete them (issue 12).
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="retention_runs")
    policy = models.ForeignKey(
        RetentionPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices)
    action = models.CharField(max_length=10, choices=RetentionPolicy.Action.choices)
    column = models.CharField(max_length=200)
    period_days = models.PositiveIntegerField()
    cutoff = models.DateTimeField()
    method = models.CharField(
        max_length=40, blank=True, help_text="delete, partition drop, report."
    )
    rows_expired = models.BigIntegerField(default=0, help_text="Rows found past the cutoff.")
    rows_removed = models.BigIntegerField(default=0)
    partitions_dropped = models.PositiveIntegerField(default=0)
    quarantine_rows_removed = models.BigIntegerField(default=0)
    unparseable_rows = models.BigIntegerField(
        default=0, help_text="Rows kept because their timestamp does not parse."
    )
    details = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Retention run #{self.pk} of {self.dataset.name}"


class LegalBasis(models.TextChoices):
    """GDPR Art. 6(1): the lawful bases of processing."""

    CONSENT = "consent", "Consent — Art. 6(1)(a)"
    CONTRACT = "contract", "Contract — Art. 6(1)(b)"
    LEGAL_OBLIGATION = "legal_obligation", "Legal obligation — Art. 6(1)(c)"
    VITAL_INTERESTS = "vital_interests", "Vital interests — Art. 6(1)(d)"
    PUBLIC_TASK = "public_task", "Public task — Art. 6(1)(e)"
    LEGITIMATE_INTERESTS = "legitimate_interests", "Legitimate interests — Art. 6(1)(f)"


# Bases whose record must say more: which law (c), which interest (f).
BASIS_DETAIL_REQUIRED = {
    LegalBasis.LEGAL_OBLIGATION: "Name the legal obligation (the law or regulation) that requires the processing.",
    LegalBasis.LEGITIMATE_INTERESTS: "Describe the legitimate interest pursued (and the balancing test).",
}


def _lines(text: str) -> list[str]:
    return [part.strip() for part in (text or "").replace(";", "\n").splitlines() if part.strip()]


class ProcessingRecord(Edited):
    """The record of processing (GDPR Art. 30(1)) for one dataset."""

    dataset = models.OneToOneField(
        Dataset, on_delete=models.CASCADE, related_name="processing_record"
    )
    purpose = models.TextField(help_text="Why the data is processed (Art. 30(1)(b)).")
    legal_basis = models.CharField(
        max_length=30, choices=LegalBasis.choices, help_text="Art. 6(1)."
    )
    legal_basis_detail = models.TextField(
        blank=True,
        help_text="Required for a legal obligation (which law) and legitimate interests (which interest).",
    )
    data_subject_categories = models.TextField(
        help_text="Categories of data subjects, one per line (customers, employees, …) (Art. 30(1)(c))."
    )
    recipients = models.TextField(
        blank=True,
        help_text="Categories of recipients, one per line; blank: none outside the controller (Art. 30(1)(d)).",
    )
    transfers = models.TextField(
        blank=True,
        help_text="Transfers to third countries and their safeguards; blank: none (Art. 30(1)(e)).",
    )
    retention_note = models.TextField(
        blank=True,
        help_text="Retention as the record states it, besides the dataset's retention policy (Art. 30(1)(f)).",
    )
    security_measures = models.TextField(
        blank=True, help_text="Technical and organisational measures (Art. 30(1)(g))."
    )
    history = DefinitionHistory()

    class Meta:
        ordering = ["dataset__name"]
        verbose_name = "record of processing"
        verbose_name_plural = "records of processing"

    def __str__(self) -> str:
        return f"Record of processing: {self.dataset.name}"

    @property
    def subject_categories_list(self) -> list[str]:
        return _lines(self.data_subject_categories)

    @property
    def recipients_list(self) -> list[str]:
        return _lines(self.recipients)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not (self.purpose or "").strip():
            errors["purpose"] = "State the purpose of the processing."
        if self.legal_basis not in LegalBasis.values:
            errors["legal_basis"] = (
                f"Choose one of: {', '.join(LegalBasis.values)} (GDPR Art. 6(1))."
            )
        elif (
            self.legal_basis in BASIS_DETAIL_REQUIRED
            and not (self.legal_basis_detail or "").strip()
        ):
            errors["legal_basis_detail"] = BASIS_DETAIL_REQUIRED[self.legal_basis]
        if not self.subject_categories_list:
            errors["data_subject_categories"] = (
                "Name at least one category of data subjects (e.g. customers)."
            )
        if errors:
            raise ValidationError(errors)
