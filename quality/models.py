"""Checks declared on datasets, and the record of every time they ran.

A :class:`Check` is validated when saved (``clean``): a definition that could
not run — a regex that does not compile on the warehouse, a range with min
above max, custom SQL that is not one boolean expression — is refused with a
clear error, so nothing broken ever reaches a run. A :class:`CheckRun` is one
evaluation of a dataset's checks (in a step, on demand, or on the freshness
schedule); each check's outcome is a :class:`CheckResult`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from atlas.history import DefinitionHistory
from atlas.runs import RunRecordBase
from pipelines.models import Dataset, StepRun


class Severity(models.TextChoices):
    WARN = "warn", "Warn (record, publish anyway)"
    DROP = "drop", "Drop (failing rows to quarantine)"
    FAIL = "fail", "Fail (block publishing)"


class CheckKind(models.TextChoices):
    NOT_NULL = "not_null", "Not null"
    UNIQUE = "unique", "Unique (one or several columns)"
    ACCEPTED_VALUES = "accepted_values", "Accepted values"
    RANGE = "range", "Range"
    REGEX = "regex", "Regex match"
    LENGTH = "length", "String length"
    ROW_COUNT = "row_count", "Row count between"
    FRESHNESS = "freshness", "Freshness (maximum age)"
    REFERENTIAL = "referential", "Referential integrity"
    SCHEMA = "schema", "Schema (expected columns and types)"
    CUSTOM_ROW = "custom_row", "Custom SQL per row (boolean)"
    CUSTOM_AGGREGATE = "custom_aggregate", "Custom SQL aggregate condition"


# Checks that judge single rows: they count failing rows and may drop them.
ROW_KINDS = frozenset(
    {
        CheckKind.NOT_NULL,
        CheckKind.UNIQUE,
        CheckKind.ACCEPTED_VALUES,
        CheckKind.RANGE,
        CheckKind.REGEX,
        CheckKind.LENGTH,
        CheckKind.REFERENTIAL,
        CheckKind.CUSTOM_ROW,
    }
)
# Checks that read one or more named columns of the dataset.
COLUMN_KINDS = ROW_KINDS - {CheckKind.CUSTOM_ROW} | {CheckKind.FRESHNESS}


class Outcome(models.TextChoices):
    PASS = "pass", "Pass"
    WARN = "warn", "Warn"
    FAIL = "fail", "Fail"
    ERROR = "error", "Error"


class CheckQuerySet(models.QuerySet):
    def enabled(self) -> CheckQuerySet:
        return self.filter(enabled=True)

    def for_dataset(self, dataset: Dataset) -> CheckQuerySet:
        return self.filter(dataset=dataset).select_related("dataset")


class Check(models.Model):
    """One rule a dataset's rows (or the table as a whole) must satisfy.

    ``params`` depends on ``kind`` (see :mod:`quality.definitions`); ``tolerance``
    is the share of failing rows (0-1) a row check may have and still pass —
    for a drop check, the share above which the step fails instead of
    quarantining (a mass drop usually means the input is broken, not the rows).
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=100, help_text="Unique per dataset; recorded with quarantined rows.")
    kind = models.CharField(max_length=20, choices=CheckKind.choices)
    columns = models.JSONField(default=list, blank=True, help_text='Column names, e.g. ["email"] or ["order_id", "line_no"].')
    params = models.JSONField(default=dict, blank=True, help_text="Parameters of this kind of check (see the help below).")
    severity = models.CharField(max_length=4, choices=Severity.choices, default=Severity.WARN)
    tolerance = models.FloatField(
        null=True,
        blank=True,
        help_text="Share of failing rows (0-1) still accepted. Blank: none for warn/fail;"
        " for drop, no limit on the share dropped.",
    )
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = DefinitionHistory()

    objects = CheckQuerySet.as_manager()

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="check_unique_name")]

    def __str__(self) -> str:
        return f"{self.dataset.name}: {self.name}"

    def save(self, *args, **kwargs) -> None:
        # A definition is validated on every save, not only through forms:
        # scripts and the demo cannot store a check that would break a run.
        self.full_clean(validate_unique=False, validate_constraints=False)
        super().save(*args, **kwargs)

    @property
    def is_row_level(self) -> bool:
        return self.kind in ROW_KINDS

    def clean(self) -> None:
        from .definitions import validate_check

        validate_check(self)


class CheckRun(RunRecordBase):
    """One evaluation of a dataset's checks on one table: the run record of the gate.

    Its statuses are the gate's verdict (FAILED: a check blocked the step); the
    run's own failure (the warehouse refused the SQL) is ERROR.
    """

    FAILED_STATUS = "error"

    class Trigger(models.TextChoices):
        STEP = "step", "Pipeline step"
        MANUAL = "manual", "On demand (admin)"
        CLI = "cli", "Command line"
        SCHEDULE = "schedule", "Freshness schedule"
        REPROCESS = "reprocess", "Quarantine re-processing"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        WARNED = "warned", "Passed with warnings"
        FAILED = "failed", "Failed (blocked)"
        ERROR = "error", "Error"

    # PROTECT: check runs are evidence; deleting the dataset must not delete them (issue 12).
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="check_runs")
    step_run = models.ForeignKey(StepRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="check_runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    table = models.CharField(max_length=200, help_text="The warehouse table checked (schema.table).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    rows_checked = models.BigIntegerField(default=0)
    rows_quarantined = models.BigIntegerField(default=0)
    queries = models.PositiveIntegerField(default=0, help_text="Warehouse queries the evaluation took.")
    batch_id = models.CharField(max_length=64, blank=True, help_text="The ingest batch whose staged rows were checked.")
    # An append or merge gate (``quality.incremental``): what the table holds after publishing, for the next
    # gate of the same dataset (rows; per unique check, its failing rows and duplicated keys). Null otherwise.
    table_after = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"checks on {self.table_shown} #{self.pk}"

    @property
    def table_shown(self) -> str:
        """The table checked as people read it: no internal staging name (``chart.orders__r7a1_stg``)."""
        from pipelines.attempts import shown_table

        return shown_table(self.table, self.dataset.qualified_table)


class Covers(models.TextChoices):
    """Which rows a result speaks for."""

    TABLE = "table", "the whole table"
    NEW_ROWS = "new_rows", "the new rows"
    TABLE_AFTER_PUBLISH = "after_publish", "the whole table after publish"


class CheckResult(models.Model):
    """The outcome of one check in one check run.

    Samples are stored as ``{column: value}`` rows with the column names kept
    separately, so a viewer without PII permission can be shown them masked.
    """

    check_run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="results")
    check_ref = models.ForeignKey(Check, null=True, on_delete=models.SET_NULL, related_name="results", db_column="check_id")
    check_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=CheckKind.choices)
    severity = models.CharField(max_length=4, choices=Severity.choices)
    outcome = models.CharField(max_length=5, choices=Outcome.choices)
    observed = models.JSONField(null=True, blank=True, help_text="The measured value (count, max, drift...).")
    failing_rows = models.BigIntegerField(null=True, blank=True)
    failing_share = models.FloatField(null=True, blank=True)
    rows_quarantined = models.BigIntegerField(default=0)
    message = models.TextField(blank=True)
    sample_columns = models.JSONField(default=list, blank=True)
    sample_rows = models.JSONField(default=list, blank=True)
    query_group = models.CharField(max_length=40, blank=True, help_text="The query this check shared.")
    query_seconds = models.FloatField(null=True, blank=True, help_text="Time of its query group.")
    covers = models.CharField(
        max_length=13, choices=Covers.choices, default=Covers.TABLE,
        help_text="The rows the result speaks for: the table checked, an append's new rows, or the table after publish.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["check_run", "check_name"]

    def __str__(self) -> str:
        return f"{self.check_name}: {self.outcome}"

    @property
    def covers_shown(self) -> str:
        """The rows the result speaks for, in words: "new rows of batch b…", "whole table after publish"."""
        if self.covers == Covers.NEW_ROWS:
            batch = self.check_run.batch_id if self.check_run_id else ""
            return f"new rows of batch {batch}" if batch else "new rows of this step"
        if self.covers == Covers.TABLE_AFTER_PUBLISH:
            return "whole table after publish"
        return "whole table" if not self.check_run_id or self.check_run.trigger != CheckRun.Trigger.STEP else "whole table as staged"
