"""PII scans, the findings they propose, and the policies that protect Chart columns.

A scan (:class:`PiiScan`) is a run record like a pipeline run. It proposes
findings (:class:`PiiFinding`, one per dataset column and entity type) with
the evidence a steward needs to decide; the steward's decision survives later
scans. A confirmed finding proposes a :class:`ColumnPolicy` on every Chart
column its data flows to; the refine step applies the policies as SQL. A
finding not yet reviewed above a confidence threshold gets the same default
policies, marked ``by_default``, until a steward decides (privacy by default).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from atlas.history import DefinitionHistory
from pipelines.models import Dataset, PipelineRun, RunRecord, StepRun


class PiiScan(RunRecord):
    """One classification of a dataset's columns: when, by whom, how, and what it found."""

    class Trigger(models.TextChoices):
        INGEST = "ingest", "After an ingest"
        MANUAL = "manual", "Manual (admin)"
        CLI = "cli", "Command line"
        API = "api", "API"

    # PROTECT: scans are evidence; deleting the dataset must not delete them (issue 12).
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="pii_scans")
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sample_size = models.PositiveIntegerField(default=0, help_text="Distinct values sampled per column (at most).")
    columns_scanned = models.PositiveIntegerField(default=0)
    findings_count = models.PositiveIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)
    # After an ingest: the run and step that loaded what it scans (a task of its own in that run,
    # compliance.scan_tasks), and the batches it reads; no batches: the whole table.
    run = models.ForeignKey(PipelineRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="pii_scans")
    step_run = models.ForeignKey(StepRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="pii_scans")
    batches = models.JSONField(
        default=list, blank=True, help_text="The loaded batches it scans (their rows only); empty: the whole table."
    )
    # Set while a worker of the PII scan queue runs it (compliance.tasks): its last sign of life. Empty: run
    # by the run's own worker (its gate or its end), whose run heartbeat says whether it is alive.
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the scan worker running it (a scan task)."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "PII scan"

    def __str__(self) -> str:
        return f"PII scan #{self.pk} of {self.dataset.name}"


class PiiFinding(models.Model):
    """A column that carries an entity type, with the evidence; a steward confirms or dismisses it."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        CONFIRMED = "confirmed", "Confirmed"
        DISMISSED = "dismissed", "Dismissed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="pii_findings")
    column = models.CharField(max_length=200)
    entity = models.CharField(max_length=60, help_text="Presidio entity type, e.g. EMAIL_ADDRESS.")
    free_text = models.BooleanField(
        default=False, help_text="PII inside free text: the column needs in-text anonymisation."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PROPOSED)
    share = models.FloatField(default=0.0, help_text="Share of sampled values the entity matched.")
    mean_score = models.FloatField(default=0.0, help_text="Mean recognizer score over the matched values.")
    confidence = models.FloatField(
        default=0.0,
        help_text="How sure the scan is (0-1): share matched x mean score, raised by agreeing column-name"
        " evidence; the column name alone gives 0.4.",
    )
    name_evidence = models.CharField(max_length=200, blank=True, help_text="What the column name says.")
    sample_size = models.PositiveIntegerField(default=0, help_text="Distinct non-null values analysed.")
    samples = models.JSONField(default=list, blank=True, help_text="A few matched values (PII: masked for most).")
    last_scan = models.ForeignKey(PiiScan, null=True, blank=True, on_delete=models.SET_NULL, related_name="findings")
    covers = models.JSONField(
        default=dict, blank=True,
        help_text="The rows its evidence comes from: the last whole-table scan, and the batches scanned since.",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset", "column", "entity"]
        verbose_name = "PII finding"
        constraints = [
            models.UniqueConstraint(fields=["dataset", "column", "entity"], name="pii_finding_unique")
        ]
        permissions = [("view_pii_clear", "Can see values of PII columns in clear")]

    def __str__(self) -> str:
        return f"{self.dataset.name}.{self.column}: {self.entity}"


class ColumnPolicy(models.Model):
    """How one Chart column is protected when the refine step writes it."""

    class Action(models.TextChoices):
        KEEP = "keep", "Keep in clear (needs a reason)"
        MASK = "mask", "Mask (keep the last N characters)"
        HASH = "hash", "Hash (keyed HMAC-SHA256 pseudonym)"
        REDACT = "redact", "Redact (null or fixed text)"
        GENERALISE = "generalise", "Generalise (date to year/month, postcode to prefix)"
        DROP = "drop", "Drop the column"
        ANONYMISE_TEXT = "anonymise_text", "Anonymise PII inside free text"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="column_policies")
    column = models.CharField(max_length=200)
    action = models.CharField(max_length=20, choices=Action.choices)
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text='mask: {"keep_last": 4}; redact: {"text": "[redacted]"} (null when absent);'
        ' generalise: {"to": "year"|"month"|"prefix", "chars": 3}.',
    )
    reason = models.TextField(blank=True, help_text="Why; required to keep a PII column in clear.")
    entity = models.CharField(max_length=60, blank=True, help_text="The entity type it protects.")
    proposed = models.BooleanField(default=False, help_text="Set from a confirmed finding's default.")
    by_default = models.BooleanField(
        default=False,
        help_text="Privacy by default: applied from a finding not yet reviewed (confidence at least"
        " PII_DEFAULT_PROTECT_CONFIDENCE), until a steward confirms, dismisses or sets the policy.",
    )
    default_for = models.ForeignKey(
        "PiiFinding", null=True, blank=True, on_delete=models.SET_NULL, related_name="default_policies",
        help_text="The unreviewed finding this default protection comes from.",
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = DefinitionHistory()

    class Meta:
        ordering = ["dataset", "column"]
        verbose_name_plural = "column policies"
        constraints = [models.UniqueConstraint(fields=["dataset", "column"], name="column_policy_unique")]

    def __str__(self) -> str:
        return f"{self.dataset.name}.{self.column}: {self.action}"

    def clean(self) -> None:
        from .policies import PolicyError, validate_policy

        if self.dataset_id and self.dataset.layer != "chart":
            raise ValidationError({"dataset": "Column policies apply to Chart datasets (where refine steps write)."})
        try:
            validate_policy(self.action, self.options, self.reason)
        except PolicyError as exc:
            raise ValidationError(str(exc)) from exc
