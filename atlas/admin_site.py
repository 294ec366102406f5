"""Atlas's admin site: its name, its home (the overview) and the apps in the operator's order."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.utils import timezone

from . import overview

# The operator's flow: build and run, check, protect, answer subjects, trace, keep; then settings.
APP_ORDER = ("pipelines", "quality", "compliance", "privacy", "lineage", "retention", "alerts", "atlas")


def app_rank(app_label: str) -> tuple[int, str]:
    return (APP_ORDER.index(app_label) if app_label in APP_ORDER else len(APP_ORDER), app_label)


class AtlasAdminSite(admin.AdminSite):
    site_header = "Atlas"
    site_title = "Atlas"
    index_title = "Overview"

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        return sorted(apps, key=lambda app: app_rank(app["app_label"]))

    def index(self, request, extra_context=None):
        found = overview.sections(request, timezone.now())
        level, line = overview.verdict(found)
        context = {"overview": found, "overview_level": level, "overview_verdict": line, **(extra_context or {})}
        return super().index(request, context)


class AtlasAdminConfig(AdminConfig):
    default_site = "atlas.admin_site.AtlasAdminSite"
