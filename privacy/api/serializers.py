"""Serializers of the DSR API: requests (identifiers validated on create), keys, erasures, exports, tombstones."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from atlas.api.serializers import ModelSerializer
from pipelines.models import Dataset

from ..models import KIND_RE, DataSubjectRequest, DsrExport, ErasureRecord, SubjectKey, Tombstone
from .masking import MASKED, error_for, identifiers_for

KIND_MESSAGE = "Use 1-40 lower-case letters, digits and underscores, starting with a letter (e.g. email, customer_id)."
__all__ = ["MASKED"]  # re-exported: what a masked identifier reads as


class ErasureRecordSerializer(ModelSerializer):
    class Meta:
        model = ErasureRecord
        fields = ("table", "method", "rows_removed", "run", "created_at")


class DsrExportSerializer(ModelSerializer):
    expired = serializers.BooleanField(read_only=True)

    class Meta:
        model = DsrExport
        fields = ("id", "rows", "size_bytes", "manifest", "created_at", "expires_at", "deleted_at", "downloads", "expired")


class RequestSerializer(ModelSerializer):
    overdue = serializers.BooleanField(source="is_overdue", read_only=True)
    erasures = ErasureRecordSerializer(many=True, read_only=True)
    exports = DsrExportSerializer(many=True, read_only=True)

    class Meta:
        model = DataSubjectRequest
        fields = (
            "id", "kind", "identifiers", "identifiers_hashed", "reference", "status", "received_at", "due_at",
            "overdue", "assignee", "reject_reason", "verified_at", "completed_at", "proof", "residue", "error",
            "review", "erasures", "exports", "created_at",
        )
        read_only_fields = (
            "identifiers_hashed", "status", "due_at", "reject_reason", "verified_at", "completed_at", "proof",
            "residue", "error", "review", "created_at",
        )

    def to_representation(self, instance: DataSubjectRequest) -> dict:
        """Identifiers (and errors quoting them) masked unless the user holds view_identifiers_clear."""
        data = super().to_representation(instance)
        request = self.context.get("request")
        user = getattr(request, "user", None)
        data["identifiers"] = identifiers_for(user, instance)
        data["error"] = error_for(user, instance)
        return data


@extend_schema_field({"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}})
class IdentifiersField(serializers.JSONField):
    """Identifiers by kind (checked by ``privacy.search``: known kinds, at least one value)."""


class RequestCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=DataSubjectRequest.Kind.choices)
    identifiers = IdentifiersField(help_text='By kind: {"email": ["ann@example.com"]}.')
    reference = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    received_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=5000)


class ApproveSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=5000, help_text="Why the identifiers reached are one person.")


class SubjectKeySerializer(ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", queryset=Dataset.objects.all())
    # The model's rule as a pattern the schema states (drf-spectacular reads RegexValidator).
    kind = serializers.CharField(max_length=40, validators=[RegexValidator(KIND_RE, message=KIND_MESSAGE)],
                                 help_text="What the values are: email, phone, customer_id, order_id...")

    class Meta:
        model = SubjectKey
        fields = ("id", "dataset", "column", "kind", "storage", "status", "origin", "derived_from", "note",
                  "confirmed_at", "index_name", "created_at")
        read_only_fields = ("status", "origin", "derived_from", "confirmed_at", "index_name", "created_at")


class TombstoneSerializer(ModelSerializer):
    class Meta:
        model = Tombstone
        fields = ("id", "kind", "hash", "key_id", "request", "created_at")
