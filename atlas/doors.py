"""Who may open the operational doors: ``/metrics`` and the details of ``/readyz``.

``/metrics`` names datasets and pipelines and counts PII findings, so it is
not public: Prometheus sends ``Authorization: Bearer <ATLAS_METRICS_TOKEN>``
(compared in constant time), or a logged-in staff user looks. Anonymous gets
401 (with ``WWW-Authenticate``), a logged-in non-staff user 403.

``/healthz`` and ``/readyz`` stay open for orchestrators' probes, but a
failing check's reason (an exception message: host names, paths) is shown
only to whoever may read the metrics; anonymous sees each check's ok/not ok.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

BEARER = "bearer "


def scrape_token_ok(request: HttpRequest) -> bool:
    """A bearer token equal to ATLAS_METRICS_TOKEN (never true when no token is configured)."""
    expected = getattr(settings, "ATLAS_METRICS_TOKEN", "") or ""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not expected or not header.lower().startswith(BEARER):
        return False
    given = header[len(BEARER):].strip()
    return hmac.compare_digest(given.encode(), expected.encode())


def is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def may_read_operations(request: HttpRequest) -> bool:
    return scrape_token_ok(request) or is_staff(request)


def metrics_door(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Wrap the metrics view: the scrape token or a staff user, else 401/403 (and no data)."""

    @wraps(view)
    def guarded(request: HttpRequest) -> HttpResponse:
        if may_read_operations(request):
            return view(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not request.META.get("HTTP_AUTHORIZATION"):
            return HttpResponse("Metrics are for staff users and the Prometheus scrape token.\n", status=403,
                                content_type="text/plain; charset=utf-8")
        response = HttpResponse(
            "Authentication required: send 'Authorization: Bearer <ATLAS_METRICS_TOKEN>' or log in as staff.\n",
            status=401, content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response

    return guarded


def readyz_door(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Wrap readyz: the same status code for everyone, the reasons only for staff and the scraper."""

    @wraps(view)
    def guarded(request: HttpRequest) -> HttpResponse:
        response = view(request)
        if may_read_operations(request):
            return response
        body = json.loads(response.content)
        checks = {name: {"ok": bool(check.get("ok"))} for name, check in body.get("checks", {}).items()}
        plain = JsonResponse({"status": body.get("status"), "checks": checks}, status=response.status_code)
        if response.has_header("Cache-Control"):
            plain["Cache-Control"] = response["Cache-Control"]
        return plain

    return guarded
