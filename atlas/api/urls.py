"""``/api/v1/``: one router; every installed app adds its endpoints from ``<app>/api/urls.py``.

An app's ``api/urls.py`` exposes ``routes``: ``[(prefix, viewset, basename), ...]``.
Discovering them here (as the admin discovers ``admin.py``) keeps dependencies
pointing one way: ``atlas`` never imports the apps by name.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework import permissions, routers

from .exceptions import not_found
from .views import AuditEventViewSet


class APIRootView(routers.APIRootView):
    """Atlas API: sources, datasets, pipelines and their runs, the audit log."""

    permission_classes = [permissions.IsAuthenticated]


class Router(routers.DefaultRouter):
    APIRootView = APIRootView


def app_routes() -> list[tuple[str, type, str]]:
    """``routes`` from the ``api/urls.py`` of Atlas's own apps (third-party apps are not searched)."""
    routes: list[tuple[str, type, str]] = []
    base = Path(settings.BASE_DIR).resolve()
    for config in apps.get_app_configs():
        if config.name == "atlas" or not Path(config.path).resolve().is_relative_to(base):
            continue
        package = find_spec(f"{config.name}.api")
        if package is None or package.submodule_search_locations is None:
            continue
        if find_spec(f"{config.name}.api.urls") is None:
            continue
        routes.extend(getattr(import_module(f"{config.name}.api.urls"), "routes", []))
    return routes


router = Router()
router.register("audit-events", AuditEventViewSet, basename="auditevent")
for prefix, viewset, basename in app_routes():
    router.register(prefix, viewset, basename=basename)

public = [permissions.AllowAny]
urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(permission_classes=public), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=public), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema", permission_classes=public), name="redoc"),
    re_path(r"^.*$", not_found),
]
