"""The lineage graph (nodes and edges) and OpenLineage events sent and received.

Nodes are datasets and their columns, Atlas's own or named by other tools in
events they send us; edges say which node feeds which, and how (OpenLineage's
DIRECT/INDIRECT types and their subtypes). Keeping them as two plain tables
lets one recursive SQL query answer "everything upstream of X" at any depth.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from atlas.runs import ErrorTextField


class NodeKind(models.TextChoices):
    DATASET = "dataset", "Dataset"
    COLUMN = "column", "Column"


class Origin(models.TextChoices):
    ATLAS = "atlas", "Atlas dataset"
    SOURCE = "source", "Atlas source (outside the warehouse)"
    EXTERNAL = "external", "Reported by another tool"


class LineageNode(models.Model):
    """A dataset or one of its columns, as OpenLineage names it (namespace + name).

    A column node points to its dataset node (``parent``) and repeats its
    namespace and name, so the pair (namespace, name, column) identifies any
    node. ``pii_entity`` is set from what compliance reports through the
    ``pii_columns`` extension point (:func:`lineage.graph.sync_pii`, then
    ``pii_reported``), or by hand (:func:`lineage.graph.mark_pii`, e.g. on a
    dataset another system reported); ``pii_protected`` says a policy masks the
    column, so what is derived from it does not carry clear PII.
    """

    kind = models.CharField(max_length=10, choices=NodeKind.choices)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.ATLAS)
    namespace = models.CharField(max_length=300)
    name = models.CharField(max_length=500)
    column = models.CharField(max_length=200, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    dataset = models.ForeignKey(
        "pipelines.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="lineage_nodes"
    )
    position = models.PositiveIntegerField(default=0)
    data_type = models.CharField(max_length=100, blank=True)
    pii_entity = models.CharField(max_length=100, blank=True, help_text="PII entity (e.g. EMAIL_ADDRESS), set by compliance.")
    pii_protected = models.BooleanField(default=False, help_text="A policy masks this column: clear PII stops here.")
    pii_reported = models.BooleanField(
        default=False, help_text="The PII marks come from compliance's report (they follow it), not from a hand."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["namespace", "name", "position", "column"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name", "column"], name="lineage_node_unique"),
            models.CheckConstraint(
                condition=(Q(kind="dataset", column="") | (Q(kind="column") & ~Q(column=""))),
                name="lineage_node_kind_column",
            ),
        ]
        indexes = [models.Index(fields=["parent"]), models.Index(fields=["dataset", "kind"])]

    def __str__(self) -> str:
        return f"{self.name}.{self.column}" if self.column else self.name


class LineageEdge(models.Model):
    """``source`` feeds ``target``: dataset to dataset, column to column, or column to dataset.

    A column-to-dataset edge is OpenLineage's dataset-wide INDIRECT lineage: a
    column that filters, joins, groups or sorts the rows of the target, and so
    affects every one of its columns. Edges belong to the Atlas step that
    produced them or to the external job that reported them; refreshing a step
    replaces its edges.
    """

    class Kind(models.TextChoices):
        DATASET = "dataset", "Dataset"
        COLUMN = "column", "Column"

    class Type(models.TextChoices):
        DIRECT = "DIRECT", "Direct"
        INDIRECT = "INDIRECT", "Indirect"

    source = models.ForeignKey(LineageNode, on_delete=models.CASCADE, related_name="out_edges")
    target = models.ForeignKey(LineageNode, on_delete=models.CASCADE, related_name="in_edges")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.DIRECT)
    subtype = models.CharField(max_length=20, blank=True, help_text="IDENTITY, TRANSFORMATION, AGGREGATION, JOIN, FILTER, GROUP_BY, SORT, WINDOW")
    step = models.ForeignKey(
        "pipelines.Step", null=True, blank=True, on_delete=models.CASCADE, related_name="lineage_edges"
    )
    job_namespace = models.CharField(max_length=300)
    job_name = models.CharField(max_length=500)
    masking = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "target", "kind", "type", "subtype", "job_namespace", "job_name"],
                name="lineage_edge_unique",
            )
        ]
        indexes = [
            models.Index(fields=["target", "kind"]),
            models.Index(fields=["source", "kind"]),
            models.Index(fields=["job_namespace", "job_name"]),
        ]

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.type} {self.subtype})"


class OutboxQuerySet(models.QuerySet):
    def pending(self) -> OutboxQuerySet:
        return self.filter(status=OutboxEvent.Status.PENDING)

    def undelivered(self) -> OutboxQuerySet:
        return self.exclude(status=OutboxEvent.Status.DELIVERED)


class OutboxEvent(models.Model):
    """An OpenLineage event Atlas emitted, kept until the endpoint has accepted it.

    Events of one ``ordering_key`` (the pipeline run) are delivered strictly in
    ``id`` order: a later event waits while an earlier one is pending or failed.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up; retry from the admin)"

    ordering_key = models.CharField(max_length=64, db_index=True)
    run_uuid = models.CharField(max_length=36, db_index=True)
    event_type = models.CharField(max_length=10)
    job_name = models.CharField(max_length=500)
    step_run = models.ForeignKey(
        "pipelines.StepRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="lineage_events"
    )
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = ErrorTextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = OutboxQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "ordering_key", "id"])]
        verbose_name = "emitted OpenLineage event"

    def __str__(self) -> str:
        return f"{self.event_type} {self.job_name} ({self.status})"


class ReceivedEvent(models.Model):
    """An OpenLineage event another tool sent to ``POST /api/v1/lineage``, kept as received."""

    event_type = models.CharField(max_length=10, blank=True)
    run_uuid = models.CharField(max_length=36, blank=True, db_index=True)
    job_namespace = models.CharField(max_length=300, blank=True)
    job_name = models.CharField(max_length=500, blank=True)
    event_time = models.CharField(max_length=64, blank=True)
    payload = models.JSONField()
    digest = models.CharField(
        max_length=64, null=True, blank=True, unique=True, editable=False,
        help_text="SHA-256 of the event as sent (canonical JSON): the same event sent twice is kept once.",
    )
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "received OpenLineage event"

    def __str__(self) -> str:
        return f"{self.event_type} {self.job_namespace}/{self.job_name}"
