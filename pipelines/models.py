"""Sources, datasets, pipelines, steps and the record of every run.

The metadata lives here (Django's database); the data itself lives in the
warehouse (``atlas.warehouse``), in one schema per layer.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from atlas.history import DefinitionHistory
from atlas.runs import ErrorTextField, RunRecordBase, RunStatus, TracebackField
from atlas.warehouse.base import FileFormat, WriteMode
from atlas.warehouse.filereader import ENCODINGS

from .querysets import PipelineQuerySet, PipelineRunQuerySet

TABLE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
# The names Atlas gives its own tables beside a dataset's: an attempt's staging and direct-COPY parts
# (``orders__r12a2_…``, see ``attempts``), the quarantine (``orders__quarantine``) and the staging
# names of releases before per-attempt naming (``orders__stg7``). A dataset may otherwise use double
# underscores, as dbt's ``stg_<source>__<entity>`` convention does.
TAG_RE = re.compile(r"^[A-Za-z0-9_.-]{1,50}$")
RESERVED_TABLE_RE = re.compile(r"__(?:r\d+a\d+_|quarantine$|stg\d*$)")


class Layer(models.TextChoices):
    EXPLORE = "explore", "Explore (raw)"
    CHART = "chart", "Chart (cleaned)"
    NAVIGATE = "navigate", "Navigate (business)"


class Source(models.Model):
    """Where raw data comes from, and how to read it."""

    class Kind(models.TextChoices):
        PATH = "path", "File path or glob"
        UPLOAD = "upload", "Uploaded file"
        URL = "url", "URL over HTTP"
        SQL = "sql", "SQL query on a configured database"
        S3 = "s3", "S3-compatible object storage"
        API = "api", "JSON API over HTTP (paginated)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.PATH)
    format = models.CharField(
        max_length=10, choices=[(f.value, f.name) for f in FileFormat], default=FileFormat.CSV.value
    )
    location = models.CharField(
        max_length=1000,
        blank=True,
        help_text="File path or glob (path), http(s) URL (url, api), or s3://bucket/prefix/*.csv.gz (s3).",
    )
    upload = models.FileField(upload_to="sources/", blank=True)
    database = models.CharField(
        max_length=100, blank=True, help_text="Name from ATLAS_SOURCE_DATABASES (sql sources)."
    )
    query = models.TextField(blank=True, help_text="One SELECT, run on that database (sql sources).")
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text='Reader options: {"delimiter": ",", "encoding": "utf-8", "header": true, "quote": "\\"", "escape": "\\""}',
    )
    schema = models.JSONField(
        default=list, blank=True, help_text="Optional declared column names, in file order."
    )
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = DefinitionHistory()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    OPTION_KEYS = {"delimiter", "encoding", "header", "quote", "escape", "header_names"}

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.kind == self.Kind.PATH and not self.location:
            errors["location"] = "A path source needs a file path or glob."
        if self.kind == self.Kind.URL and not re.match(r"^https?://", self.location or ""):
            errors["location"] = "A URL source needs an http:// or https:// URL."
        if self.kind in (self.Kind.S3, self.Kind.API):
            errors.update(self._clean_connector())
        if self.kind == self.Kind.UPLOAD and not self.upload:
            errors["upload"] = "An upload source needs a file."
        if self.kind == self.Kind.SQL:
            if self.database not in settings.ATLAS_SOURCE_DATABASES:
                known = ", ".join(sorted(settings.ATLAS_SOURCE_DATABASES)) or "none configured"
                errors["database"] = f"Unknown database {self.database!r} (known: {known})."
            from .sql import SQLValidationError, check_single_select

            try:
                check_single_select(self.query or "", self._query_dialect())
            except SQLValidationError as exc:
                errors["query"] = str(exc)
        for field, message in self._clean_confinement().items():
            errors.setdefault(field, message)
        errors.update(self._clean_options())
        if not isinstance(self.schema, list) or not all(isinstance(c, str) and c.strip() for c in self.schema):
            errors["schema"] = 'Declare columns as a list of names, e.g. ["id", "email"].'
        if errors:
            raise ValidationError(errors)

    def _query_dialect(self) -> str:
        """The SQL dialect of the source's database (MySQL's backticks, PostgreSQL's quotes)."""
        from atlas.warehouse import registry

        url = settings.ATLAS_SOURCE_DATABASES.get(self.database) or ""
        try:
            return registry.source_sql(url).dialect
        except registry.UnknownBackend:
            return "postgres"

    def _clean_options(self) -> dict[str, str]:
        opts = self.options
        if not isinstance(opts, dict):
            return {"options": "Options must be a JSON object."}
        unknown = set(opts) - self.OPTION_KEYS - self.kind_option_keys()
        unknown -= {"watermark"} if self.kind == self.Kind.SQL else set()
        if unknown:
            hint = " (watermark is for SQL sources only)" if "watermark" in unknown else ""
            return {"options": f"Unknown option(s): {', '.join(sorted(unknown))}{hint}."}
        from .watermarks import check_option

        if problem := check_option(self):
            return {"options": problem}
        if self.kind in (self.Kind.URL, self.Kind.API):
            from .credentials import check_fetch_options

            if problem := check_fetch_options(opts):
                return {"options": problem}
        for key in ("delimiter", "quote", "escape"):
            if key in opts and (not isinstance(opts[key], str) or len(opts[key]) > 1):
                return {"options": f"{key} must be a single character."}
        if "delimiter" in opts and opts["delimiter"] in ("", "\n", "\r"):
            return {"options": "delimiter cannot be empty or a line break."}
        if "encoding" in opts and str(opts["encoding"]).lower() not in ENCODINGS:
            return {"options": f"encoding must be one of {', '.join(sorted(set(ENCODINGS.values())))}."}
        if "header" in opts and not isinstance(opts["header"], bool):
            return {"options": "header must be true or false."}
        if "header_names" in opts and opts["header_names"] not in ("refuse", "suffix"):
            return {"options": 'header_names must be "refuse" (the default) or "suffix".'}
        return {}

    def reader_options(self) -> dict:
        other = self.FETCH_OPTION_KEYS | {"watermark"} | (self.kind_option_keys() - self.OPTION_KEYS)
        reader = {k: v for k, v in self.options.items() if k not in other}
        return {**reader, "columns": list(self.schema or [])}

    def kind_option_keys(self) -> set[str]:
        """The options of this kind of source besides the reader's (OPTION_KEYS)."""
        if self.kind == self.Kind.URL:
            return set(self.FETCH_OPTION_KEYS)
        if self.kind in (self.Kind.S3, self.Kind.API):
            from . import connectors

            return set(connectors.option_keys(self.kind))
        return set()

    def _clean_connector(self) -> dict[str, str]:
        """Object storage and JSON API sources: their location and options (pipelines.connectors)."""
        from . import connectors

        return connectors.clean(self)

    # --- Sources confined (issue 12): where a source may read from, and no clear-text secrets.
    # URL sources' request options; their values reference secrets (pipelines.credentials).
    FETCH_OPTION_KEYS = {"headers", "params"}

    def _clean_confinement(self) -> dict[str, str]:
        """A path inside ATLAS_DATA_ROOTS; a URL to http(s) without credentials in it."""
        if self.kind == self.Kind.PATH and self.location:
            from .confinement import ConfinementError, check_location

            try:
                check_location(self.location)
            except ConfinementError as exc:
                return {"location": str(exc)}
        if self.kind == self.Kind.URL and self.location:
            from .credentials import url_credential_problem

            if problem := url_credential_problem(self.location):
                return {"location": problem}
        return {}


class Dataset(models.Model):
    """A warehouse table in one layer, with its columns and load statistics."""

    name = models.CharField(max_length=100, unique=True)
    layer = models.CharField(max_length=10, choices=Layer.choices)
    table = models.CharField(
        max_length=48, help_text="Table name in the layer's schema (lower case, digits, underscores)."
    )
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    row_count = models.BigIntegerField(null=True, blank=True, editable=False)
    last_loaded_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Bumped by whatever changes the table's rows outside a step's publish (retention's trims, an
    # erasure's deletes): a step reading it, or producing it, is then never skipped as up to date
    # (pipelines.freshness). What a step publishes is versioned by its step run instead.
    data_version = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = DefinitionHistory(bookkeeping=("row_count", "last_loaded_at", "data_version"))

    class Meta:
        ordering = ["layer", "name"]
        constraints = [models.UniqueConstraint(fields=["layer", "table"], name="dataset_unique_table")]

    def __str__(self) -> str:
        return self.name

    @property
    def schema(self) -> str:
        return self.layer

    @property
    def qualified_table(self) -> str:
        return f"{self.layer}.{self.table}"

    def clean(self) -> None:
        if not TABLE_NAME_RE.match(self.table or ""):
            raise ValidationError(
                {"table": "Use 1-48 characters: lower-case letters, digits and underscores, not starting with a digit."}
            )
        if RESERVED_TABLE_RE.search(self.table):
            raise ValidationError({"table": (
                "Names ending in __quarantine or __stg<n>, or holding __r<n>a<n>_, are Atlas's own tables"
                " (quarantine, staging); choose another name."
            )})


class DatasetColumn(models.Model):
    """A column of a dataset as last published (refreshed from the warehouse)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="columns")
    name = models.CharField(max_length=200)
    position = models.PositiveIntegerField(default=0)
    data_type = models.CharField(max_length=100, blank=True)
    nullable = models.BooleanField(default=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["dataset", "position"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="column_unique_name")]

    def __str__(self) -> str:
        return f"{self.dataset.name}.{self.name}"


class Pipeline(models.Model):
    """A named set of steps, run together in the order their data requires."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    schedule = models.CharField(
        max_length=100,
        blank=True,
        help_text="Crontab (minute hour day-of-month month day-of-week), e.g. '0 2 * * *'; blank for none.",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = DefinitionHistory(bookkeeping=("periodic_task",))

    objects = PipelineQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        from .schedules import sync_schedule

        super().save(*args, **kwargs)
        sync_schedule(self)

    def delete(self, *args, **kwargs):
        task = self.periodic_task
        result = super().delete(*args, **kwargs)
        if task is not None:
            task.delete()
        return result

    def clean(self) -> None:
        from .schedules import parse_crontab

        if self.schedule:
            try:
                parse_crontab(self.schedule)
            except ValueError as exc:
                raise ValidationError({"schedule": str(exc)}) from exc


class Step(models.Model):
    """One unit of work: ingest a source into Explore, or run a SELECT into Chart or Navigate."""

    class Kind(models.TextChoices):
        INGEST = "ingest", "Ingest (source to Explore)"
        REFINE = "refine", "Refine (to Chart)"
        AGGREGATE = "aggregate", "Aggregate (to Navigate)"

    OUTPUT_LAYER = {Kind.INGEST: Layer.EXPLORE, Kind.REFINE: Layer.CHART, Kind.AGGREGATE: Layer.NAVIGATE}
    INPUT_LAYERS = {
        Kind.INGEST: (),
        Kind.REFINE: (Layer.EXPLORE, Layer.CHART),
        Kind.AGGREGATE: (Layer.CHART, Layer.NAVIGATE),
    }

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    position = models.PositiveIntegerField(default=0, help_text="Display order; run order follows the data.")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.PROTECT, related_name="steps")
    output = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="producing_steps")
    inputs = models.ManyToManyField(Dataset, blank=True, related_name="consuming_steps", editable=False)
    sql = models.TextField(blank=True, help_text="One SELECT (PostgreSQL dialect) over known datasets, e.g. explore.orders.")
    write_mode = models.CharField(
        max_length=10, choices=[(m.value, m.name.title()) for m in WriteMode], default=WriteMode.REPLACE.value
    )
    merge_keys = models.CharField(max_length=500, blank=True, help_text="Comma-separated key columns (merge).")
    incremental = models.BooleanField(
        default=False,
        help_text="Refine/aggregate: after an append, read only the new batches of its append-only input and merge"
        " the result by the merge keys (dbt's incremental model); a full recompute where that would not be exact."
        " Needs merge keys and write mode replace (what a full run does).",
    )
    max_rejected_share = models.FloatField(
        default=0.05, help_text="Ingest fails when more than this share of records (0-1) cannot be parsed."
    )
    timeout_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Soft time limit: past it the step's warehouse statement is cancelled and the step fails"
        " (blank: ATLAS_STEP_TIMEOUT_SECONDS; 0: none).",
    )
    hard_timeout_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Hard time limit: past it the step's warehouse connections are ended"
        " (blank: ATLAS_STEP_HARD_TIMEOUT_SECONDS; 0: none). Not below the soft limit.",
    )

    tags = models.JSONField(
        default=list, blank=True,
        help_text='Labels to select steps by (run_pipeline --select tag:daily), e.g. ["daily", "finance"].',
    )

    class LoadPolicy(models.TextChoices):
        ALL_OR_NOTHING = "all_or_nothing", "All or nothing: a file over the reject limit loads none of its rows"
        PARTIAL = "partial", "Partial: a file over the reject limit loads its good rows, flagged as partial"

    load_policy = models.CharField(
        max_length=20,
        choices=LoadPolicy.choices,
        default=LoadPolicy.ALL_OR_NOTHING,
        help_text="Ingest: what a file whose unparseable share is above the limit does. Its rejects are"
        " quarantined either way.",
    )
    history = DefinitionHistory()

    class Meta:
        ordering = ["pipeline", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "name"], name="step_unique_name"),
            models.UniqueConstraint(fields=["pipeline", "output"], name="step_unique_output"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline.name} / {self.name}"

    def save(self, *args, **kwargs) -> None:
        """Save, then tell the apps that contribute ``step_saved`` (lineage re-traces the step)."""
        super().save(*args, **kwargs)
        from atlas import extensions

        for saved in extensions.contributions("step_saved"):
            saved(self)

    def other_writer(self) -> Step | None:
        """The step of another pipeline that writes this step's output, if any (one writer per dataset).

        Within one pipeline the planner refuses two writers (``pipelines.dag``).
        """
        others = Step.objects.filter(output_id=self.output_id).exclude(pk=self.pk).select_related("pipeline")
        if self.pipeline_id:
            others = others.exclude(pipeline_id=self.pipeline_id)
        return others.order_by("pk").first()

    @property
    def keys(self) -> list[str]:
        return [k.strip() for k in self.merge_keys.split(",") if k.strip()]

    def clean(self) -> None:
        if self.kind not in self.Kind.values:
            raise ValidationError({"kind": f"Choose one of: {', '.join(self.Kind.values)}."})
        errors: dict[str, str] = {}
        if self.kind == self.Kind.INGEST:
            if not self.source_id:
                errors["source"] = "An ingest step needs a source."
            if self.write_mode == WriteMode.MERGE:
                errors["write_mode"] = "Ingest appends batches or replaces the table; merge is for refine and aggregate."
            elif self.write_mode == WriteMode.REPLACE and self.source_id and (self.source.options or {}).get("watermark"):
                errors["write_mode"] = (
                    "This source is read incrementally (a watermark column): each load holds only the new rows,"
                    " so the step must append them; replace would keep only the last load."
                )
        else:
            if self.source_id:
                errors["source"] = "Only ingest steps read a source; refine and aggregate read datasets in their SQL."
            if not self.sql.strip():
                errors["sql"] = "Refine and aggregate steps need a SELECT."
            else:
                from .sql import SQLValidationError
                from .transform import step_inputs

                try:
                    step_inputs(self)
                except SQLValidationError as exc:
                    errors["sql"] = str(exc)
        if self.write_mode == WriteMode.MERGE and not self.keys:
            errors["merge_keys"] = "Merge needs at least one key column."
        if self.incremental:
            if self.kind == self.Kind.INGEST:
                errors["incremental"] = "Ingest appends new batches already; incremental is for refine and aggregate."
            elif not self.keys:
                errors["merge_keys"] = "An incremental step merges its new rows by key: give the key columns."
            elif self.write_mode != WriteMode.REPLACE:
                errors["write_mode"] = ("An incremental step replaces its table on a full run and merges by the keys"
                                        " on an incremental one: choose write mode replace.")
        if not isinstance(self.tags, list) or not all(isinstance(t, str) and TAG_RE.match(t) for t in self.tags):
            errors["tags"] = 'Give a list of tags, each 1-50 letters, digits, "_", "-" or ".", e.g. ["daily"].'
        if not 0 <= self.max_rejected_share <= 1:
            errors["max_rejected_share"] = "Give a share between 0 and 1."
        if self.timeout_seconds and self.hard_timeout_seconds and self.hard_timeout_seconds < self.timeout_seconds:
            errors["hard_timeout_seconds"] = (
                f"The hard time limit ({self.hard_timeout_seconds} s) must not be below the soft one"
                f" ({self.timeout_seconds} s)."
            )
        output = self.output if self.output_id else None
        if output is not None and (other := self.other_writer()) is not None:
            errors["output"] = (
                f"{output.name} is already written by step {other.name!r} of pipeline {other.pipeline.name!r};"
                " a dataset has one producing step. Read it from there, or move that step here."
            )
        if output is not None and self.kind in self.OUTPUT_LAYER and output.layer != self.OUTPUT_LAYER[self.kind]:
            errors["output"] = (
                f"A {self.kind} step writes to the {self.OUTPUT_LAYER[self.kind]} layer;"
                f" {output.name} is in {output.layer}."
            )
        if errors:
            raise ValidationError(errors)


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
# A run whose failed steps skipped only their downstream while independent steps went on (issue 14).
PARTIALLY_FAILED = "partial"
FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED, PARTIALLY_FAILED)
PIPELINE_RUN_STATUSES = [*RunStatus.choices, (PARTIALLY_FAILED, "Partially failed")]


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Manual (admin)"
    API = "api", "API"
    CLI = "cli", "Command line"
    BACKFILL = "backfill", "Backfill"


class RunRecord(RunRecordBase):
    """A run record with row counts and the traceback (pipeline and step runs, PII scans)."""

    rows_in = models.BigIntegerField(default=0)
    rows_out = models.BigIntegerField(default=0)
    rows_rejected = models.BigIntegerField(default=0)
    traceback = TracebackField(blank=True)

    class Meta:
        abstract = True

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class PipelineRun(RunRecord):
    """One execution of a pipeline. At most one is queued or running per pipeline."""

    status = models.CharField(max_length=10, choices=PIPELINE_RUN_STATUSES, default=RunStatus.QUEUED)
    # PROTECT: a run is evidence; deleting its pipeline must not delete it (issue 12).
    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    current_step = models.CharField(max_length=100, blank=True)
    cancel_requested = models.BooleanField(default=False)
    celery_task_id = models.CharField(max_length=255, blank=True)
    # Recovery (issue 14): the attempt executing (or that last executed) the run; a worker lost
    # mid-run makes the reaper queue the run again as the next attempt, which resumes it.
    attempt = models.PositiveIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="When the task was last sent to the broker.")
    dispatches = models.PositiveIntegerField(default=0, help_text="How many times the task was sent.")
    # The steps this run executes (ids), when not all: a re-run of failed and skipped steps, re-processing.
    only_steps = models.JSONField(null=True, blank=True)
    definitions = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text='The version of every definition the run executed: {"step:12": <history id>, ...}.',
    )
    full_refresh = models.BooleanField(
        default=False, help_text="Files already loaded are loaded again and appended or merged tables rebuilt."
    )
    force = models.BooleanField(
        default=False, help_text="Every step runs, even one whose inputs and definition are unchanged (up to date)."
    )
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    # False for runs that do other work than the steps' own (re-processing quarantined rows,
    # inline in the requesting process): a lost one is failed, never resumed by a worker.
    resumable = models.BooleanField(default=True)
    # The data the run is about (issue 14): set by the schedule (the interval that just ended), a
    # manual trigger (now) or a backfill; step SQL reads them as bound parameters (atlas.sql.params).
    logical_date = models.DateTimeField(null=True, blank=True)
    data_interval_start = models.DateTimeField(null=True, blank=True)
    data_interval_end = models.DateTimeField(null=True, blank=True)
    backfill = models.ForeignKey(
        "Backfill", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs", editable=False
    )

    objects = PipelineRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The per-pipeline lock: the database itself refuses a second active run.
            models.UniqueConstraint(
                fields=["pipeline"],
                condition=Q(status__in=["queued", "running"]),
                name="one_active_run_per_pipeline",
            )
        ]

    def __str__(self) -> str:
        return f"{self.pipeline.name} #{self.pk}"

    def parameters(self) -> dict:
        """The values step SQL may bind (``atlas.sql.params.RUN_PARAMETERS``); unset ones are left out."""
        values = {
            "data_interval_start": self.data_interval_start,
            "data_interval_end": self.data_interval_end,
            "logical_date": self.logical_date,
        }
        return {k: v for k, v in values.items() if v is not None}


class Backfill(models.Model):
    """Runs of a pipeline over a past date range: one run per interval, dispatched one at a time.

    The intervals are rows (:class:`BackfillInterval`) created with the backfill, so none can
    be lost; ``pipelines.backfills`` starts the next pending one whenever a run of the pipeline
    ends and on beat's sweep, and a failed interval stays visible and can be re-run.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Finished with failed intervals"
        CANCELLED = "cancelled", "Cancelled"

    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="backfills")
    start = models.DateTimeField(help_text="Start of the range (the first interval starts here or at the schedule's first time after).")
    end = models.DateTimeField(help_text="End of the range (excluded).")
    interval = models.CharField(
        max_length=100, help_text="The pipeline's crontab, or a stated interval such as '1 day' or '6 hours'."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Backfill #{self.pk} of {self.pipeline.name}"


class BackfillInterval(models.Model):
    """One interval of a backfill and where it stands; ``run`` is its latest attempt."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTIVE = "active", "Queued or running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    backfill = models.ForeignKey(Backfill, on_delete=models.CASCADE, related_name="intervals")
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    run = models.ForeignKey(PipelineRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    attempts = models.PositiveIntegerField(default=0)
    error = ErrorTextField(blank=True)

    class Meta:
        ordering = ["backfill", "start"]
        constraints = [models.UniqueConstraint(fields=["backfill", "start"], name="backfill_unique_interval")]

    def __str__(self) -> str:
        return f"{self.backfill} [{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M})"


class SourceWatermark(models.Model):
    """How far incremental extraction of a database source into a dataset has read.

    ``value`` is the greatest watermark published; ``pending_*`` is the maximum of a load
    not yet known to be published (promoted once the warehouse's batch ledger holds its
    checksum, dropped otherwise), so a load that fails never advances the watermark.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="watermarks")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="watermarks")
    column = models.CharField(max_length=200)
    value = models.JSONField(null=True, blank=True)  # {"type": ..., "value": ...} (pipelines.watermarks)
    pending_value = models.JSONField(null=True, blank=True)
    pending_checksum = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "dataset"], name="watermark_unique_source_dataset")]

    def __str__(self) -> str:
        return f"{self.source.name} -> {self.dataset.name} by {self.column}"


class RunAttempt(models.Model):
    """One attempt at executing a run: which worker, from when to when, how it ended."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        ENDED = "ended", "Ended (the run finished)"
        LOST = "lost", "Lost (the worker stopped reporting)"
        ABORTED = "aborted", "Aborted (could not record its progress)"

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid of the process that executed it.")
    celery_task_id = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="run_attempt_unique_number")]

    def __str__(self) -> str:
        return f"{self.run} attempt {self.number}"


class StepRun(RunRecord):
    """One step's part of a run, kept even if the step is later changed or deleted."""

    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="step_runs")
    step = models.ForeignKey(Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    step_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Step.Kind.choices)
    output = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    position = models.PositiveIntegerField(default=0)
    sql = models.TextField(blank=True, help_text="The SQL as executed on the warehouse.")
    details = models.JSONField(default=dict, blank=True)
    # Every try of this step (issue 14): {"try", "run_attempt", "started_at", "ended_at", "error",
    # "transient", "retry_in"}; a transient error is retried with backoff, an interrupted try is kept.
    tries = models.JSONField(default=list, blank=True)
    # "pending" from the moment the output is published until the ``published`` hooks (the PII
    # scan after an ingest) are done: a resumed run re-does them; "done" after.
    after_publish = models.CharField(max_length=10, blank=True, default="")

    class Meta:
        ordering = ["run", "position"]

    def __str__(self) -> str:
        return f"{self.run} / {self.step_name}"

    def get_status_display(self) -> str:
        """The status in words; "Up to date" for a step skipped as unchanged (``pipelines.freshness``)."""
        if self.status == RunStatus.SKIPPED and "up_to_date" in (self.details or {}):
            return "Up to date"
        return self._get_FIELD_display(self._meta.get_field("status"))


class LoadedBatch(models.Model):
    """A file an ingest step looked at: loaded, skipped as already loaded, or rejected."""

    class Status(models.TextChoices):
        LOADED = "loaded", "Loaded"
        SKIPPED = "skipped", "Skipped (already loaded)"
        REJECTED = "rejected", "Rejected"
        PARTIAL = "partial", "Partially loaded (over the reject limit)"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="batches")
    step_run = models.ForeignKey(StepRun, null=True, on_delete=models.SET_NULL, related_name="batches")
    batch_id = models.CharField(max_length=40, db_index=True)
    file = models.CharField(max_length=1000)
    checksum = models.CharField(max_length=64, db_index=True)
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices)
    rows_loaded = models.BigIntegerField(default=0)
    rows_rejected = models.BigIntegerField(default=0)
    # Good rows not loaded because the file as a whole was refused (all-or-nothing policy).
    rows_refused = models.BigIntegerField(default=0)
    reason = models.TextField(blank=True)
    # empty_file, encoding, schema, corrupt_archive, duplicate_file, source; row classes for the rejects.
    reason_class = models.CharField(max_length=20, blank=True)
    warnings = models.TextField(blank=True, help_text="What input hygiene guessed (delimiter, encoding).")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "loaded batches"

    def __str__(self) -> str:
        return f"{self.dataset.name} {self.batch_id}"
