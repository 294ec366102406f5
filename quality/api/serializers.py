"""What the quality API shows and accepts; a check's definition is validated by the model (as in the admin)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from atlas import extensions
from atlas.api.serializers import ModelCleanMixin, ModelSerializer
from pipelines.models import Dataset

from .. import status
from ..models import Check, CheckKind, CheckResult, CheckRun, Outcome, Severity


def mask(user, dataset: Dataset, columns: list[str], rows: list[list[Any]]) -> list[list[Any]]:
    """Rows as ``user`` may see them (the contributed row masker, compliance's): PII hidden without view_pii_clear."""
    return extensions.mask_rows(user, dataset, columns, rows)


class CheckSerializer(ModelCleanMixin, ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)

    class Meta:
        model = Check
        fields = [
            "id", "dataset", "dataset_name", "name", "kind", "columns", "params", "severity", "tolerance",
            "enabled", "description", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class CheckResultSerializer(ModelSerializer):
    check = serializers.PrimaryKeyRelatedField(source="check_ref", read_only=True, allow_null=True,
                                               help_text="The check (null once it was deleted).")
    dataset = serializers.IntegerField(source="check_run.dataset_id", read_only=True)
    run_trigger = serializers.CharField(source="check_run.trigger", read_only=True)
    sample_rows = serializers.SerializerMethodField(
        help_text="Failing rows, in sample_columns order; PII values masked unless you may see them."
    )
    observed = serializers.SerializerMethodField(help_text="The measured value (masked when it is a PII column's value).")
    covers_shown = serializers.CharField(
        read_only=True, help_text='The rows the result speaks for, in words: "new rows of batch b…", "whole table after publish".'
    )

    class Meta:
        model = CheckResult
        fields = [
            "id", "check_run", "run_trigger", "check", "check_name", "dataset", "kind", "severity", "outcome", "covers",
            "covers_shown", "observed", "failing_rows", "failing_share", "rows_quarantined", "message", "sample_columns",
            "sample_rows", "query_group", "query_seconds", "created_at",
        ]
        read_only_fields = fields

    def _user(self):
        request = self.context.get("request")
        return getattr(request, "user", None)

    @extend_schema_field(serializers.ListField(child=serializers.ListField(child=serializers.JSONField(allow_null=True))))
    def get_sample_rows(self, obj: CheckResult) -> list[list[Any]]:
        """Stored as ``{column: value}``; shown as rows in ``sample_columns`` order."""
        columns = list(obj.sample_columns or [])
        rows = [[row.get(c) for c in columns] if isinstance(row, dict) else list(row) for row in obj.sample_rows or []]
        return mask(self._user(), obj.check_run.dataset, columns, rows)

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_observed(self, obj: CheckResult) -> Any:
        value = obj.observed
        columns = list(getattr(obj.check_ref, "columns", None) or [])
        if value is None or isinstance(value, bool | int | float) or len(columns) != 1:
            return value
        return mask(self._user(), obj.check_run.dataset, columns, [[value]])[0][0]


class OutcomeCountsSerializer(serializers.Serializer):
    """Enabled checks by their latest outcome (pass, warn, fail, error; never: not run yet)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {outcome: serializers.IntegerField() for outcome in [*Outcome.values, status.NEVER]}


class CheckStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=CheckKind.choices)
    severity = serializers.ChoiceField(choices=Severity.choices)
    enabled = serializers.BooleanField()
    outcome = serializers.CharField(help_text="pass, warn, fail, error, or never (not run yet).")
    failing_rows = serializers.IntegerField(allow_null=True)
    failing_share = serializers.FloatField(allow_null=True)
    rows_quarantined = serializers.IntegerField()
    message = serializers.CharField(allow_blank=True)
    checked_at = serializers.CharField(allow_null=True, help_text="ISO 8601 time of the latest result.")
    check_run = serializers.IntegerField(allow_null=True)
    result = serializers.IntegerField(allow_null=True)


class LastCheckRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=CheckRun.Status.choices)
    trigger = serializers.ChoiceField(choices=CheckRun.Trigger.choices)
    started_at = serializers.CharField()
    rows_checked = serializers.IntegerField()
    rows_quarantined = serializers.IntegerField()


class DatasetQualitySerializer(serializers.Serializer):
    """The dataset's check status, as ``quality.status.dataset_status`` reads it (the admin shows the same)."""

    status = serializers.ChoiceField(
        choices=[status.FAILED, status.ERROR, status.WARNED, status.NOT_RUN, status.PASSED, status.NO_CHECKS],
        help_text="The worst latest outcome of the enabled checks.",
    )
    checked_at = serializers.CharField(allow_null=True)
    counts = OutcomeCountsSerializer()
    checks = CheckStatusSerializer(many=True)
    last_check_run = LastCheckRunSerializer(allow_null=True)

    _many: dict[int, dict[str, Any]] | None = None

    def prepare_many(self, datasets: list[Dataset]) -> None:
        """A page of datasets is about to be shown: read all their statuses at once (see the dataset list)."""
        self._many = status.dataset_statuses(datasets)

    def to_representation(self, instance: Any) -> Any:
        if isinstance(instance, Dataset):
            known = self._many.get(instance.pk) if self._many is not None else None
            instance = known if known is not None else status.dataset_status(instance)
        return super().to_representation(instance)


def dataset_quality_field() -> serializers.Field:
    return DatasetQualitySerializer(source="*", read_only=True, help_text="Latest check status of the dataset.")


class QuarantinePageSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    table = serializers.CharField(help_text="The quarantine table (schema.table).")
    total = serializers.IntegerField(help_text="Rows in the quarantine.")
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    next_offset = serializers.IntegerField(allow_null=True)
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(
        child=serializers.ListField(child=serializers.JSONField(allow_null=True)),
        help_text="Newest first; PII values (and raw records of datasets with PII) masked unless you may see them.",
    )
