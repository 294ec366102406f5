"""Retention endpoints: thin doors onto :mod:`retention.services` and :mod:`retention.records`."""

from __future__ import annotations

import django_filters
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from atlas.api import filters as api_filters
from atlas.api.permissions import HasPermission
from atlas.api.tasks import ACCEPTED, accepted

from .. import records, services
from ..models import ProcessingRecord, RetentionPolicy, RetentionRun
from . import serializers

APPLY_PERMISSION = "retention.apply_retention"


class RetentionPolicyFilter(api_filters.FilterSet):
    dataset = django_filters.CharFilter(field_name="dataset__name")

    class Meta:
        model = RetentionPolicy
        fields = ["status", "action", "enabled"]


class RetentionPolicyViewSet(viewsets.ModelViewSet):
    """Retention per dataset; ``POST …/{id}/apply/`` deletes expired rows now, ``…/check/`` re-reads the status."""

    queryset = RetentionPolicy.objects.select_related("dataset")
    serializer_class = serializers.RetentionPolicySerializer
    filterset_class = RetentionPolicyFilter
    ordering_fields = ["dataset__name", "period_days", "checked_at"]

    def perform_create(self, serializer) -> None:
        policy = RetentionPolicy(**serializer.validated_data)
        serializer.instance = services.save_policy(policy, actor=self.request.user, created=True)

    def perform_update(self, serializer) -> None:
        policy = serializer.instance
        for key, value in serializer.validated_data.items():
            setattr(policy, key, value)
        services.save_policy(policy, actor=self.request.user, created=False)

    def perform_destroy(self, instance: RetentionPolicy) -> None:
        services.delete_policy(instance, actor=self.request.user)

    @extend_schema(request=None, responses=ACCEPTED)
    @action(detail=True, methods=["post"], permission_classes=[HasPermission.of(APPLY_PERMISSION)])
    def apply(self, request: Request, pk: str | None = None) -> Response:
        """Apply the policy now, in the background (202, trigger ``api``): the task's ``result_url`` is
        the retention run, failed or not."""
        policy = self.get_object()
        return accepted(request, "retention.apply_policy", target=policy, policy_id=policy.pk,
                        trigger=RetentionRun.Trigger.API)

    @extend_schema(request=None, responses={200: serializers.RetentionPolicySerializer})
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[HasPermission.of("retention.view_retentionpolicy")],
    )
    def check(self, request: Request, pk: str | None = None) -> Response:
        """Re-read from the warehouse whether the dataset holds rows past retention."""
        policy = services.refresh_status(self.get_object())
        return Response(self.get_serializer(policy).data)


class RetentionRunFilter(api_filters.FilterSet):
    dataset = django_filters.CharFilter(field_name="dataset__name")

    class Meta:
        model = RetentionRun
        fields = ["status", "trigger", "method"]


class RetentionRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Every application of a retention policy: cutoff, rows removed, partitions dropped, error."""

    queryset = RetentionRun.objects.select_related("dataset")
    serializer_class = serializers.RetentionRunSerializer
    filterset_class = RetentionRunFilter
    ordering_fields = ["started_at", "rows_removed"]


class ProcessingRecordFilter(api_filters.FilterSet):
    dataset = django_filters.CharFilter(field_name="dataset__name")

    class Meta:
        model = ProcessingRecord
        fields = ["legal_basis"]


class ProcessingRecordViewSet(viewsets.ModelViewSet):
    """Records of processing (GDPR Art. 30) per dataset; ``GET …/export/?as=csv|json`` lists them with the PII found."""

    queryset = ProcessingRecord.objects.select_related("dataset")
    serializer_class = serializers.ProcessingRecordSerializer
    filterset_class = ProcessingRecordFilter
    ordering_fields = ["dataset__name", "updated_at"]

    def perform_create(self, serializer) -> None:
        serializer.instance = records.save_record(
            ProcessingRecord(**serializer.validated_data), actor=self.request.user
        )

    def perform_update(self, serializer) -> None:
        record = serializer.instance
        for key, value in serializer.validated_data.items():
            setattr(record, key, value)
        records.save_record(record, actor=self.request.user)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "as",
                OpenApiTypes.STR,
                enum=list(records.FORMATS),
                description="csv (default) or json",
            ),
            OpenApiParameter(
                "datasets",
                OpenApiTypes.STR,
                description="Comma-separated dataset names (default: all).",
            ),
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiTypes.OBJECT,
        },
        filters=False,
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def export(self, request: Request) -> HttpResponse:
        """The Art. 30 export (audited): every record, and every dataset with PII but no record."""
        fmt = request.query_params.get("as", "csv")
        names = [
            n.strip() for n in request.query_params.get("datasets", "").split(",") if n.strip()
        ] or None
        try:
            text = records.export_records(fmt, datasets=names, actor=request.user, door="api")
        except records.UnknownDatasets as exc:
            raise exceptions.NotFound(str(exc)) from exc
        except records.ExportError as exc:
            raise exceptions.ValidationError(
                {"as" if fmt not in records.FORMATS else "datasets": [str(exc)]}
            ) from exc
        response = HttpResponse(
            text, content_type="text/csv; charset=utf-8" if fmt == "csv" else "application/json"
        )
        response["Content-Disposition"] = f'attachment; filename="{records.filename(fmt)}"'
        return response
