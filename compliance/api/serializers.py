"""What the compliance API shows and accepts; decisions and policies go through compliance.policies."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from atlas.api.exceptions import RULE
from atlas.api.serializers import ModelCleanMixin, ModelSerializer
from pipelines.models import Dataset

from ..masking import PiiIndex, mask_samples, pii_columns
from ..models import ColumnPolicy, PiiFinding
from ..policies import review_state


class PiiFindingSerializer(ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    samples = serializers.SerializerMethodField(help_text="Matched values; masked unless you may see PII in clear.")
    review_state = serializers.SerializerMethodField(
        help_text='confirmed, dismissed, "protected by default, awaiting review" (privacy by default: its'
        " Chart columns carry their default policy until a steward decides), or awaiting review, not protected."
    )
    default_protection = serializers.SerializerMethodField(
        help_text="The policies applied by default from this finding, until a steward decides."
    )

    class Meta:
        model = PiiFinding
        fields = [
            "id", "dataset", "dataset_name", "column", "entity", "free_text", "status", "review_state", "confidence",
            "share", "mean_score", "name_evidence", "sample_size", "samples", "default_protection", "last_scan",
            "decided_by", "decided_at", "note", "first_seen_at", "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_review_state(self, obj: PiiFinding) -> str:
        return review_state(obj, obj.default_policies.all())

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_default_protection(self, obj: PiiFinding) -> list[dict]:
        return [
            {"dataset": p.dataset.name, "column": p.column, "action": p.action, "policy": p.pk}
            for p in obj.default_policies.all()
            if p.by_default
        ]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_samples(self, obj: PiiFinding) -> list[str]:
        request = self.context.get("request")
        return mask_samples(getattr(request, "user", None), obj)


class DecisionSerializer(serializers.Serializer):
    DECISIONS = {"confirm": PiiFinding.Status.CONFIRMED, "dismiss": PiiFinding.Status.DISMISSED}

    decision = serializers.ChoiceField(
        choices=list(DECISIONS), help_text="confirm: the column carries PII (proposes policies); dismiss: it does not."
    )
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)


class ColumnPolicySerializer(ModelCleanMixin, ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    updated_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    options = serializers.DictField(  # a JSON object (the schema says so); what it holds is the action's rule (409)
        required=False, help_text=ColumnPolicy._meta.get_field("options").help_text,
    )

    class Meta:
        model = ColumnPolicy
        fields = [
            "id", "dataset", "dataset_name", "column", "action", "options", "reason", "entity", "proposed",
            "by_default", "default_for", "updated_by", "created_at", "updated_at",
        ]
        read_only_fields = ["proposed", "by_default", "default_for", "updated_by", "created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None:
            for key in ("dataset", "column"):
                if key in attrs and attrs[key] != getattr(self.instance, key):
                    raise serializers.ValidationError(
                        {key: ["A policy's dataset and column are fixed; delete it and create another."]}, code=RULE
                    )
        if "options" in attrs and not isinstance(attrs["options"], dict):
            raise serializers.ValidationError({"options": ["A JSON object, e.g. {\"keep_last\": 4}."]})
        return super().validate(attrs)


class FindingCountsSerializer(serializers.Serializer):
    """Findings of the dataset by status."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {status: serializers.IntegerField() for status in PiiFinding.Status.values}


class DatasetPiiSerializer(serializers.Serializer):
    """The dataset's PII summary: findings by status, the entities found, columns whose values are PII in clear."""

    findings = FindingCountsSerializer()
    entities = serializers.ListField(child=serializers.CharField(), help_text="Entities proposed or confirmed.")
    clear_pii_columns = serializers.ListField(
        child=serializers.CharField(), help_text="Columns whose values are masked for users without PII permission."
    )
    policies = serializers.IntegerField(help_text="Column policies on the dataset (Chart).")

    _many: dict[int, dict[str, Any]] | None = None

    def prepare_many(self, datasets: list[Dataset]) -> None:
        """A page of datasets is about to be shown: read all their summaries at once (see the dataset list)."""
        self._many = pii_summaries(datasets)

    def to_representation(self, instance: Any) -> Any:
        if isinstance(instance, Dataset):
            known = self._many.get(instance.pk) if self._many is not None else None
            instance = known if known is not None else pii_summary(instance)
        return super().to_representation(instance)


def pii_summaries(datasets: list[Dataset]) -> dict[int, dict[str, Any]]:
    """:func:`pii_summary` of many datasets, by id, in a constant number of queries (API lists)."""
    ids = [d.pk for d in datasets]
    counts: dict[int, dict[str, int]] = {pk: {} for pk in ids}
    entities: dict[int, set[str]] = {pk: set() for pk in ids}
    for ds_id, status, entity, n in (
        PiiFinding.objects.filter(dataset_id__in=ids).values_list("dataset_id", "status", "entity")
        .annotate(n=Count("id")).order_by()
    ):
        counts[ds_id][status] = counts[ds_id].get(status, 0) + n
        if status != PiiFinding.Status.DISMISSED:
            entities[ds_id].add(entity)
    policies = dict(
        ColumnPolicy.objects.filter(dataset_id__in=ids).values_list("dataset_id").annotate(n=Count("id")).order_by()
    )
    index = PiiIndex()
    return {
        d.pk: {
            "findings": {status: counts[d.pk].get(status, 0) for status in PiiFinding.Status.values},
            "entities": sorted(entities[d.pk]),
            "clear_pii_columns": sorted(index.columns(d)),
            "policies": policies.get(d.pk, 0),
        }
        for d in datasets
    }


def pii_summary(dataset: Dataset) -> dict[str, Any]:
    counts = dict(
        PiiFinding.objects.filter(dataset=dataset).values_list("status").annotate(n=Count("id")).order_by()
    )
    entities = (
        PiiFinding.objects.filter(dataset=dataset)
        .exclude(status=PiiFinding.Status.DISMISSED)
        .values_list("entity", flat=True)
        .distinct()
    )
    return {
        "findings": {status: counts.get(status, 0) for status in PiiFinding.Status.values},
        "entities": sorted(set(entities)),
        "clear_pii_columns": sorted(pii_columns(dataset)),
        "policies": ColumnPolicy.objects.filter(dataset=dataset).count(),
    }


def dataset_pii_field() -> serializers.Field:
    return DatasetPiiSerializer(source="*", read_only=True, help_text="PII found in the dataset and how it is protected.")
