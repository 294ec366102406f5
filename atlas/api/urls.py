"""``/api/v1/``: one router; every app adds its endpoints as ``api_routes`` in its AppConfig.

Reading them from the extension point (:mod:`atlas.extensions`) keeps
dependencies pointing one way: ``atlas`` never imports the apps by name.
"""

from __future__ import annotations

from django.db import models
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework import permissions, routers

from .exceptions import not_found
from .extensions import app_routes
from .tasks import TaskViewSet
from .views import AuditEventViewSet


class APIRootView(routers.APIRootView):
    """Atlas API: sources, datasets, pipelines and their runs; checks and results; PII findings and
    policies; lineage; the audit log."""

    permission_classes = [permissions.IsAuthenticated]


class Router(routers.DefaultRouter):
    """DRF's router; an object with an integer id is found by digits only.

    DRF's default (``[^/.]+``) hands ``1\\n`` or `` 1`` to the view, and Django reads both as 1: a
    request for an id the schema does not allow would reach object 1. Now they find no route (a JSON 404).
    """

    APIRootView = APIRootView

    def get_lookup_regex(self, viewset, lookup_prefix=""):
        if getattr(viewset, "lookup_value_regex", None) is None and _integer_lookup(viewset):
            kwarg = getattr(viewset, "lookup_url_kwarg", None) or getattr(viewset, "lookup_field", "pk")
            return f"(?P<{lookup_prefix}{kwarg}>[0-9]+)"
        return super().get_lookup_regex(viewset, lookup_prefix)


def _integer_lookup(viewset) -> bool:
    queryset = getattr(viewset, "queryset", None)
    if queryset is None:
        return False
    field_name = getattr(viewset, "lookup_field", "pk")
    meta = queryset.model._meta
    field = meta.pk if field_name == "pk" else meta.get_field(field_name)
    return isinstance(field, models.IntegerField | models.AutoField)


router = Router()
router.register("audit-events", AuditEventViewSet, basename="auditevent")
router.register("tasks", TaskViewSet, basename="backgroundtask")
for prefix, viewset, basename in app_routes():
    router.register(prefix, viewset, basename=basename)

# ReDoc's bundle would fetch its fonts and the "by Redocly" logo from the internet: the page says not to.
OFFLINE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:;"
    " style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'"
)


class OfflineRedocView(SpectacularRedocView):
    def finalize_response(self, request, response, *args, **kwargs):  # ``get`` stays the parent's (out of the schema)
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = OFFLINE_CSP
        return response


# The schema and its docs map every endpoint and parameter: for logged-in users (or a token), not the world.
signed_in = [permissions.IsAuthenticated]
urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(permission_classes=signed_in), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=signed_in), name="swagger-ui"),
    path("redoc/", OfflineRedocView.as_view(url_name="schema", permission_classes=signed_in), name="redoc"),
    re_path(r"^[\s\S]*$", not_found),  # [\s\S], not ".": a path with a newline is the API's 404 too, not HTML
]
