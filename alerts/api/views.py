"""Thin viewsets over alerts' models; a rule's test and a delivery's retry are actions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from atlas.api.parsers import BoundedJSONParser
from atlas.api.permissions import HasPermission

from .. import outbox, service
from ..models import AlertEvent, AlertRule, Delivery
from . import serializers


class AlertRuleViewSet(viewsets.ModelViewSet):
    """Alert rules: which events go to which webhook, Slack-compatible webhook or e-mail addresses."""

    queryset = AlertRule.objects.select_related("pipeline")
    serializer_class = serializers.AlertRuleSerializer
    # JSON bodies only: its events list does not survive form encoding (the schema then offers none).
    parser_classes = [BoundedJSONParser]
    filterset_fields = ["enabled", "channel", "pipeline"]
    ordering_fields = ["name", "created_at"]

    @extend_schema(request=None, responses=serializers.DeliverySerializer)
    @action(detail=True, methods=["post"], permission_classes=[HasPermission.of("alerts.change_alertrule")])
    def test(self, request: Request, pk=None) -> Response:
        """Queue a test alert to this rule (the delivery task sends it); returns its delivery."""
        delivery = service.send_test(self.get_object())
        return Response(serializers.DeliverySerializer(delivery).data, status=202)


class AlertEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AlertEvent.objects.select_related("pipeline")
    serializer_class = serializers.AlertEventSerializer
    filterset_fields = ["kind", "severity", "pipeline"]


class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    """The outbox: each event to each rule, with its status, attempts and last error."""

    queryset = Delivery.objects.select_related("event", "rule")
    serializer_class = serializers.DeliverySerializer
    filterset_fields = ["status", "rule", "event"]

    @extend_schema(request=None, responses=serializers.DeliverySerializer)
    @action(detail=True, methods=["post"], permission_classes=[HasPermission.of("alerts.change_alertrule")])
    def retry(self, request: Request, pk=None) -> Response:
        """Put a failed (or waiting) delivery back to be sent at the next pass."""
        delivery = self.get_object()
        outbox.retry([delivery])
        delivery.refresh_from_db()
        return Response(serializers.DeliverySerializer(delivery).data)
