"""Compliance endpoints: thin; decisions and policy changes call compliance.policies, as the admin does."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from atlas.api.exceptions import RULE
from atlas.api.permissions import HasPermission
from atlas.api.schema import ErrorSerializer

from ..models import ColumnPolicy, PiiFinding
from ..policies import PolicyError, decide_finding, record_policy_change, set_policy
from . import filters
from .serializers import ColumnPolicySerializer, DecisionSerializer, PiiFindingSerializer


class DecisionResultSerializer(serializers.Serializer):
    finding = PiiFindingSerializer()
    proposed_policies = ColumnPolicySerializer(many=True, help_text="Policies the confirmation proposed.")


@extend_schema_view(
    decision=extend_schema(
        request=DecisionSerializer,
        responses={
            200: DecisionResultSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Not a decision (confirm or dismiss)."),
        },
        summary="Confirm or dismiss a finding (as the admin's actions do)",
    )
)
class PiiFindingViewSet(viewsets.ReadOnlyModelViewSet):
    """Columns detected as carrying PII, with evidence; samples masked unless you may see PII in clear."""

    queryset = PiiFinding.objects.select_related("dataset", "decided_by").prefetch_related("default_policies__dataset")
    serializer_class = PiiFindingSerializer
    filterset_class = filters.PiiFindingFilter
    ordering_fields = ["dataset", "column", "entity", "updated_at"]

    @action(detail=True, methods=["post"], permission_classes=[HasPermission.of("compliance.change_piifinding")])
    def decision(self, request: Request, pk: str | None = None) -> Response:
        """``compliance.policies.decide_finding``: audited; confirming proposes the default policies."""
        finding = self.get_object()
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        status = DecisionSerializer.DECISIONS[body.validated_data["decision"]]
        try:
            proposed = decide_finding(finding, status=status, actor=request.user, note=body.validated_data["note"])
        except PolicyError as exc:
            raise exceptions.ValidationError({"non_field_errors": [str(exc)]}, code=RULE) from exc
        context = self.get_serializer_context()
        finding.refresh_from_db()
        return Response({
            "finding": PiiFindingSerializer(finding, context=context).data,
            "proposed_policies": ColumnPolicySerializer(proposed, many=True, context=context).data,
        })


class ColumnPolicyViewSet(viewsets.ModelViewSet):
    """How Chart columns are protected; changes go through ``compliance.policies.set_policy`` (validated, audited)."""

    queryset = ColumnPolicy.objects.select_related("dataset", "updated_by")
    serializer_class = ColumnPolicySerializer
    filterset_class = filters.ColumnPolicyFilter
    ordering_fields = ["dataset", "column", "updated_at"]

    def _set(self, serializer: ColumnPolicySerializer) -> None:
        data = serializer.validated_data
        instance = serializer.instance
        dataset = data.get("dataset", getattr(instance, "dataset", None))
        column = data.get("column", getattr(instance, "column", None))
        try:
            policy = set_policy(
                dataset, column,
                action=data.get("action", getattr(instance, "action", None)),
                options=data.get("options", getattr(instance, "options", None)),
                reason=data.get("reason", getattr(instance, "reason", "")),
                actor=self.request.user,
            )
        except PolicyError as exc:
            raise exceptions.ValidationError({"non_field_errors": [str(exc)]}, code=RULE) from exc
        if "entity" in data and data["entity"] != policy.entity:
            policy.entity = data["entity"]
            policy.save(update_fields=["entity", "updated_at"])
        serializer.instance = policy

    def perform_create(self, serializer: ColumnPolicySerializer) -> None:
        self._set(serializer)

    def perform_update(self, serializer: ColumnPolicySerializer) -> None:
        self._set(serializer)

    def perform_destroy(self, instance: ColumnPolicy) -> None:
        with transaction.atomic():  # the audit row and the deletion together, as in the admin
            record_policy_change(instance, actor=self.request.user, before=None, deleted=True)
            instance.delete()
