"""FilterSets for the pipelines API (``?pipeline=3&status=failed&created_after=...``)."""

from __future__ import annotations

import django_filters

from atlas.api import filters as api_filters

from ..models import (
    Dataset,
    Layer,
    Pipeline,
    PipelineRun,
    RunStatus,
    Source,
    Step,
    StepRun,
    Trigger,
)


class SourceFilter(api_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Source
        fields = ["kind", "format"]


class DatasetFilter(api_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    layer = django_filters.ChoiceFilter(choices=Layer.choices)
    loaded_before = api_filters.DateTimeFilter(field_name="last_loaded_at", lookup_expr="lt")

    class Meta:
        model = Dataset
        fields = ["table"]


class PipelineFilter(api_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Pipeline
        fields = ["enabled"]


class StepFilter(api_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Step.Kind.choices)

    class Meta:
        model = Step
        fields = ["pipeline", "output", "source"]


class PipelineRunFilter(api_filters.FilterSet):
    pipeline = api_filters.IdFilter()
    pipeline_name = django_filters.CharFilter(field_name="pipeline__name")
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    trigger = django_filters.ChoiceFilter(choices=Trigger.choices)
    created_after = api_filters.DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = api_filters.DateTimeFilter(field_name="created_at", lookup_expr="lt")
    finished_after = api_filters.DateTimeFilter(field_name="finished_at", lookup_expr="gte")
    finished_before = api_filters.DateTimeFilter(field_name="finished_at", lookup_expr="lt")

    class Meta:
        model = PipelineRun
        fields: list[str] = []


class StepRunFilter(api_filters.FilterSet):
    run = api_filters.IdFilter()
    pipeline = api_filters.IdFilter(field_name="run__pipeline")
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    kind = django_filters.ChoiceFilter(choices=Step.Kind.choices)
    layer = django_filters.ChoiceFilter(field_name="output__layer", choices=Layer.choices)
    started_after = api_filters.DateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = api_filters.DateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = StepRun
        fields = ["output"]
