"""What the retention API shows and accepts; validation is the models' own ``clean()``."""

from __future__ import annotations

from rest_framework import serializers

from atlas.api.serializers import ModelCleanMixin, ModelSerializer

from ..models import ProcessingRecord, RetentionPolicy, RetentionRun


class RetentionPolicySerializer(ModelCleanMixin, ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)

    class Meta:
        model = RetentionPolicy
        fields = [
            "id",
            "dataset",
            "dataset_name",
            "column",
            "period_days",
            "action",
            "enabled",
            "status",
            "oldest_value",
            "expired_rows",
            "unparseable_rows",
            "checked_at",
            "status_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status",
            "oldest_value",
            "expired_rows",
            "unparseable_rows",
            "checked_at",
            "status_error",
            "created_at",
            "updated_at",
        ]


class RetentionRunSerializer(ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    duration_seconds = serializers.SerializerMethodField()

    class Meta:
        model = RetentionRun
        fields = [
            "id",
            "dataset",
            "dataset_name",
            "policy",
            "trigger",
            "status",
            "action",
            "column",
            "period_days",
            "cutoff",
            "method",
            "rows_expired",
            "rows_removed",
            "partitions_dropped",
            "quarantine_rows_removed",
            "unparseable_rows",
            "details",
            "error",
            "started_at",
            "finished_at",
            "duration_seconds",
        ]
        read_only_fields = fields

    def get_duration_seconds(self, obj: RetentionRun) -> float | None:
        return round(obj.duration.total_seconds(), 3) if obj.duration is not None else None


class ProcessingRecordSerializer(ModelCleanMixin, ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)

    class Meta:
        model = ProcessingRecord
        fields = [
            "id",
            "dataset",
            "dataset_name",
            "purpose",
            "legal_basis",
            "legal_basis_detail",
            "data_subject_categories",
            "recipients",
            "transfers",
            "retention_note",
            "security_measures",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
