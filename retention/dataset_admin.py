"""What retention adds to the Dataset admin (contributed in ``RetentionConfig``, :mod:`atlas.extensions`):
a "retention" badge and filter on the datasets' list, from the status each policy keeps."""

from __future__ import annotations

from django.contrib import admin

from .models import RetentionPolicy


class RetentionStatusFilter(admin.SimpleListFilter):
    title = "retention"
    parameter_name = "retention"

    def lookups(self, request, model_admin):
        return [*RetentionPolicy.Status.choices, ("none", "No retention policy")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(retention_policy__isnull=True)
        if value in RetentionPolicy.Status.values:
            return queryset.filter(retention_policy__status=value)
        return queryset


@admin.display(description="retention", ordering="retention_policy__status")
def dataset_retention_badge(obj) -> str:
    from .admin import policy_badge

    return policy_badge(getattr(obj, "retention_policy", None))


class DatasetRetention:
    dataset_list_display = (dataset_retention_badge,)
    dataset_list_filter = (RetentionStatusFilter,)
    dataset_select_related = ("retention_policy",)
