"""Lineage's link above the dataset page (contributed in ``LineageConfig``, :mod:`atlas.extensions`)."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse


def dataset_tool(request: HttpRequest, dataset) -> tuple[str, str, str] | None:
    if not request.user.has_perm("lineage.view_lineagenode"):
        return None
    return "atlas-lineage-link", "Lineage", reverse("admin:lineage_atlas_dataset", args=[dataset.pk])
