"""Filters of the compliance API (``?dataset=3&status=proposed&entity=EMAIL_ADDRESS``)."""

from __future__ import annotations

import django_filters

from atlas.api import filters as api_filters

from ..models import ColumnPolicy, PiiFinding


class PiiFindingFilter(api_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=PiiFinding.Status.choices)
    entity = django_filters.CharFilter()
    column = django_filters.CharFilter()

    class Meta:
        model = PiiFinding
        fields = ["dataset", "free_text"]


class ColumnPolicyFilter(api_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=ColumnPolicy.Action.choices)
    column = django_filters.CharFilter()

    class Meta:
        model = ColumnPolicy
        fields = ["dataset", "proposed"]
