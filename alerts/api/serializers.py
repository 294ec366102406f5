from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from atlas.api.serializers import ModelCleanMixin, ModelSerializer

from ..models import RULE_EVENTS, AlertEvent, AlertRule, Delivery


@extend_schema_field({"type": "array", "items": {"type": "string", "enum": list(RULE_EVENTS)}})
class EventKindsField(serializers.JSONField):
    """A list of event kinds (checked by the model's ``clean``, as in the admin)."""


class AlertRuleSerializer(ModelCleanMixin, ModelSerializer):
    events = EventKindsField(help_text='Event kinds, e.g. ["run_failed", "freshness_breached"].')

    class Meta:
        model = AlertRule
        fields = [
            "id", "name", "enabled", "pipeline", "events", "min_severity", "channel", "url", "auth_header_ref",
            "recipients", "max_per_window", "window_minutes", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class AlertEventSerializer(ModelSerializer):
    class Meta:
        model = AlertEvent
        fields = ["id", "kind", "severity", "title", "key", "pipeline", "admin_path", "facts", "created_at"]


class DeliverySerializer(ModelSerializer):
    kind = serializers.CharField(source="event.kind", read_only=True)
    title = serializers.CharField(source="event.title", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id", "event", "kind", "title", "rule", "status", "attempts", "next_attempt_at", "last_error",
            "created_at", "delivered_at", "suppressed_count", "reported_in",
        ]
