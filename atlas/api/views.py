"""API endpoints that belong to the project itself: the audit log."""

from __future__ import annotations

import django_filters
from rest_framework import serializers, viewsets

from atlas.models import AuditEvent

from . import filters as api_filters
from .pagination import CursorPagination
from .serializers import ModelSerializer


class AuditEventSerializer(ModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True, help_text="Username as recorded.")

    class Meta:
        model = AuditEvent
        fields = ["seq", "at", "actor", "action", "target_type", "target_id", "target_repr", "detail", "prev_hash", "hash"]
        read_only_fields = fields


class AuditEventFilter(api_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name")
    action = django_filters.CharFilter()
    action_prefix = django_filters.CharFilter(field_name="action", lookup_expr="startswith")
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()
    at_after = api_filters.DateTimeFilter(field_name="at", lookup_expr="gte")
    at_before = api_filters.DateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields: list[str] = []


class AuditEventPagination(CursorPagination):
    ordering = "-seq"


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The append-only audit log, newest first; reading it needs ``atlas.view_auditevent``."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    pagination_class = AuditEventPagination
    lookup_field = "seq"
    filter_backends = [api_filters.FilterBackend]
