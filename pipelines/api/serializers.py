"""What the API shows and accepts; validation is the models' own ``clean()``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from atlas.api import extensions
from atlas.api.exceptions import RULE
from atlas.api.serializers import ModelCleanMixin, ModelSerializer, PrimaryKeyRelatedField

from .. import freshness, runner
from ..dag import PipelineDefinitionError
from ..models import (
    Backfill,
    BackfillInterval,
    Dataset,
    DatasetColumn,
    Pipeline,
    PipelineRun,
    RunAttempt,
    Source,
    Step,
    StepRun,
)


def seconds(value) -> float | None:
    return round(value.total_seconds(), 3) if value is not None else None


class SourceSerializer(ModelCleanMixin, ModelSerializer):
    class Meta:
        model = Source
        fields = [
            "id", "name", "kind", "format", "location", "upload", "database", "query",
            "options", "schema", "description", "created_at", "updated_at",
        ]
        read_only_fields = ["upload", "created_at", "updated_at"]
        extra_kwargs = {"upload": {"help_text": "Uploaded file (upload sources are created in the admin)."}}


class DatasetColumnSerializer(ModelSerializer):
    class Meta:
        model = DatasetColumn
        fields = ["name", "position", "data_type", "nullable", "description"]
        read_only_fields = fields


class DatasetListSerializer(serializers.ListSerializer):
    """A page of datasets: each contributed field with a ``prepare_many(datasets)`` reads the page at once.

    So a page costs the same few queries whatever its size (issue 17), instead of a few per dataset.
    """

    def to_representation(self, data: Any) -> list[Any]:
        datasets = list(data.all() if hasattr(data, "all") else data)
        for field in self.child.fields.values():
            prepare = getattr(field, "prepare_many", None)
            if prepare is not None:
                prepare(datasets)
        return super().to_representation(datasets)


class DatasetSerializer(ModelCleanMixin, ModelSerializer):
    columns = DatasetColumnSerializer(many=True, read_only=True, help_text="As last published (read from the warehouse).")
    qualified_table = serializers.CharField(read_only=True, help_text="layer.table, as SQL names it.")

    class Meta:
        model = Dataset
        fields = [
            "id", "name", "layer", "table", "qualified_table", "description", "owner",
            "row_count", "last_loaded_at", "columns", "created_at", "updated_at",
        ]
        read_only_fields = ["row_count", "last_loaded_at", "created_at", "updated_at"]
        list_serializer_class = DatasetListSerializer

    def get_fields(self) -> dict[str, serializers.Field]:
        """The model's fields, plus what other apps add (quality: latest checks; compliance: PII summary)."""
        fields = super().get_fields()
        for name, factory in extensions.dataset_fields().items():
            fields.setdefault(name, factory())
        return fields


class StepSerializer(ModelCleanMixin, ModelSerializer):
    inputs = PrimaryKeyRelatedField(
        many=True, read_only=True, help_text="Datasets the step's SQL reads (derived, not set)."
    )

    class Meta:
        model = Step
        fields = [
            "id", "pipeline", "name", "kind", "position", "source", "output", "inputs",
            "sql", "write_mode", "merge_keys", "incremental", "max_rejected_share", "timeout_seconds", "hard_timeout_seconds", "tags",
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        self.check_plan(self.candidate(attrs, Step))
        return attrs

    @staticmethod
    def check_plan(step: Step) -> None:
        """The pipeline with this step must still order: no cycle, no input nobody produces.

        The same check the admin runs on the step formset (``runner.plan_steps``).
        """
        others = [s for s in step.pipeline.steps.select_related("output", "source") if s.pk != step.pk]
        try:
            runner.plan_steps(step.pipeline, [*others, step])
        except PipelineDefinitionError as exc:
            raise serializers.ValidationError({"non_field_errors": [str(exc)]}, code=RULE) from exc


class PipelineSerializer(ModelCleanMixin, ModelSerializer):
    steps = StepSerializer(many=True, read_only=True, help_text="Add and change steps at /api/v1/steps/.")

    class Meta:
        model = Pipeline
        fields = ["id", "name", "description", "enabled", "schedule", "steps", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class StepRunSerializer(ModelSerializer):
    layer = serializers.CharField(source="output.layer", read_only=True, allow_null=True, default=None)
    duration_seconds = serializers.SerializerMethodField()
    up_to_date = serializers.SerializerMethodField(
        help_text="Skipped as up to date: its inputs and definition unchanged since its last good execution"
        " (status skipped; details.up_to_date says since which run).")
    status_label = serializers.SerializerMethodField(help_text='The status in words ("Up to date" for such a skip).')

    class Meta:
        model = StepRun
        fields = [
            "id", "run", "step", "step_name", "kind", "output", "layer", "position", "status", "status_label",
            "up_to_date", "started_at", "finished_at", "duration_seconds", "rows_in", "rows_out", "rows_rejected",
            "error", "sql", "details", "tries",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.BooleanField())
    def get_up_to_date(self, obj: StepRun) -> bool:
        return freshness.is_up_to_date(obj)

    @extend_schema_field(serializers.CharField())
    def get_status_label(self, obj: StepRun) -> str:
        return freshness.status_label(obj)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_duration_seconds(self, obj: StepRun) -> float | None:
        return seconds(obj.duration)


class PipelineRunSerializer(ModelSerializer):
    pipeline_name = serializers.CharField(source="pipeline.name", read_only=True)
    triggered_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    duration_seconds = serializers.SerializerMethodField()

    class Meta:
        model = PipelineRun
        fields = [
            "id", "pipeline", "pipeline_name", "status", "trigger", "triggered_by", "created_at",
            "started_at", "finished_at", "duration_seconds", "heartbeat_at", "current_step",
            "cancel_requested", "rows_in", "rows_out", "rows_rejected", "error", "attempt", "rerun_of",
            "logical_date", "data_interval_start", "data_interval_end", "backfill", "only_steps", "full_refresh",
            "force",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_duration_seconds(self, obj: PipelineRun) -> float | None:
        return seconds(obj.duration)


class RunAttemptSerializer(ModelSerializer):
    class Meta:
        model = RunAttempt
        fields = ["number", "worker", "started_at", "ended_at", "outcome", "reason"]
        read_only_fields = fields


class PipelineRunDetailSerializer(PipelineRunSerializer):
    step_runs = StepRunSerializer(many=True, read_only=True)
    attempts = RunAttemptSerializer(many=True, read_only=True)

    class Meta(PipelineRunSerializer.Meta):
        fields = [*PipelineRunSerializer.Meta.fields, "traceback", "step_runs", "attempts", "definitions"]
        read_only_fields = fields


class RunRequestSerializer(serializers.Serializer):
    """What to run: every step (an empty body), or a selection as dbt selects models (``pipelines.selection``).

    ``full_refresh`` as dbt's ``--full-refresh``: what the steps would add to is rebuilt.
    """

    select = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=50,
        help_text='Selectors, e.g. ["+customers", "orders+", "tag:daily"]: the union of what each selects.',
    )
    exclude = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=50,
        help_text="Selectors of steps to leave out of the selection.",
    )
    full_refresh = serializers.BooleanField(
        default=False, help_text="Load files again that were loaded already; rebuild appended and merged tables.",
    )
    force = serializers.BooleanField(
        default=False, help_text="Run every step, even those up to date (inputs and definition unchanged).",
    )


class CancelResultSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(
        choices=["cancelled", "stopping"],
        help_text="cancelled: it had not started; stopping: it stops after the current file or step.",
    )
    run = PipelineRunSerializer()


class BackfillIntervalSerializer(ModelSerializer):
    class Meta:
        model = BackfillInterval
        fields = ["id", "start", "end", "status", "run", "attempts", "error"]
        read_only_fields = fields


class BackfillSerializer(ModelSerializer):
    """A backfill; ``interval`` defaults to the pipeline's crontab (or give '1 day', '6 hours' ...)."""

    pipeline_name = serializers.CharField(source="pipeline.name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    interval = serializers.CharField(required=False, allow_blank=True, max_length=100)
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Backfill
        fields = [
            "id", "pipeline", "pipeline_name", "start", "end", "interval", "status", "counts",
            "created_by", "created_at", "finished_at",
        ]
        read_only_fields = ["status", "created_by", "created_at", "finished_at"]

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_counts(self, obj: Backfill) -> dict[str, int]:
        from ..backfills import summary

        return summary(obj)


class BackfillDetailSerializer(BackfillSerializer):
    intervals = BackfillIntervalSerializer(many=True, read_only=True)

    class Meta(BackfillSerializer.Meta):
        fields = [*BackfillSerializer.Meta.fields, "intervals"]
