"""Login throttling glue for django-axes: the client's address, the lock-out answer, DRF's requests.

django-axes counts failed logins (the admin's form, HTTP Basic on the API)
and refuses a locked-out username/address pair even with the right password.
Three small pieces make it fit Atlas:

* :func:`client_ip` — the address that is counted: ``REMOTE_ADDR``, or behind
  ``ATLAS_TRUSTED_PROXY_COUNT`` proxies the address the outermost trusted
  proxy saw (never a client-supplied ``X-Forwarded-For`` entry otherwise, or
  an attacker would pick a fresh address per guess);
* :func:`lockout_response` — one clear 429 with ``Retry-After``; on the API in
  the API's error body;
* :class:`DrfLockoutMiddleware` — DRF authenticates on its own request
  object, where axes leaves its "locked out" flag; this copies the flag to
  Django's request so axes' middleware answers 429 instead of DRF's 401.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

LOCKED_OUT = (
    "Too many failed logins for this account from this address: locked out for {minutes} minute(s). "
    "Try again later, or ask an administrator to unlock it (manage.py axes_reset_username USERNAME)."
)


def client_ip(request: HttpRequest) -> str | None:
    """The client address axes counts (see the module docstring for why not the raw header)."""
    meta = getattr(request, "META", {})
    proxies = int(getattr(settings, "ATLAS_TRUSTED_PROXY_COUNT", 0) or 0)
    if proxies > 0:
        chain = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(chain) >= proxies:
            return chain[-proxies]
    return meta.get("REMOTE_ADDR")


def cool_off_seconds() -> int:
    from axes.helpers import get_cool_off

    cool_off = get_cool_off()
    return int(cool_off.total_seconds()) if cool_off else 0


def lockout_response(request: HttpRequest, original_response=None, credentials: dict | None = None) -> HttpResponse:
    """429 with Retry-After; the API's error shape under /api/, a plain sentence elsewhere."""
    seconds = cool_off_seconds()
    message = LOCKED_OUT.format(minutes=max(1, round(seconds / 60)))
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"error": {"code": "locked_out", "message": message, "detail": {"retry_after_seconds": seconds}}},
            status=429,
        )
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    if seconds:
        response["Retry-After"] = str(seconds)
    return response


class DrfLockoutMiddleware:
    """Copy axes' lock-out flag from DRF's request to Django's (sits just inside AxesMiddleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        context = getattr(response, "renderer_context", None) or {}
        drf_request = context.get("request")
        if drf_request is not None and drf_request.__dict__.get("axes_locked_out"):
            request.axes_locked_out = True  # type: ignore[attr-defined]
            request.axes_credentials = drf_request.__dict__.get("axes_credentials")  # type: ignore[attr-defined]
        return response
