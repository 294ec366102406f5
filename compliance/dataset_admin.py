"""What compliance adds to the Dataset admin (contributed in ``ComplianceConfig``, :mod:`atlas.extensions`).

``pipelines``' admin builds the Dataset admin once from every app's mixin; this
module imports nothing of the admin at load time, so it can be read while that
admin is being built.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse

SCAN_PERMISSION = "compliance.add_piiscan"


@admin.action(description="Scan for PII", permissions=["scan_pii"])
def scan_for_pii(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset) -> None:
    """On the datasets' list: scan the selected datasets with the default sample size (background tasks)."""
    from .admin import _enqueue_scans

    _enqueue_scans(modeladmin, request, list(queryset))


class DatasetPiiScan:
    """The datasets' list gets a "Scan for PII" action."""

    dataset_actions = (scan_for_pii,)

    def has_scan_pii_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(SCAN_PERMISSION)


def dataset_tool(request: HttpRequest, dataset) -> tuple[str, str, str] | None:
    """The "Scan for PII" link above the dataset page."""
    if not request.user.has_perm(SCAN_PERMISSION):
        return None
    return "atlas-scan-pii-link", "Scan for PII", f"{reverse('admin:compliance_piiscan_scan')}?dataset={dataset.pk}"
