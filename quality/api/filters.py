"""Filters of the quality API (``?dataset=3&outcome=fail&severity=drop&created_after=...``)."""

from __future__ import annotations

import django_filters

from atlas.api import filters as api_filters

from ..models import Check, CheckKind, CheckResult, Outcome, Severity


class CheckFilter(api_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    kind = django_filters.ChoiceFilter(choices=CheckKind.choices)
    severity = django_filters.ChoiceFilter(choices=Severity.choices)

    class Meta:
        model = Check
        fields = ["dataset", "enabled"]


class CheckResultFilter(api_filters.FilterSet):
    dataset = api_filters.IdFilter(field_name="check_run__dataset")
    check = api_filters.IdFilter(field_name="check_ref")
    check_run = api_filters.IdFilter()
    check_name = django_filters.CharFilter()
    kind = django_filters.ChoiceFilter(choices=CheckKind.choices)
    outcome = django_filters.MultipleChoiceFilter(choices=Outcome.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    created_after = api_filters.DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = api_filters.DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = CheckResult
        fields: list[str] = []
