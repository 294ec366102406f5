"""One error body for every API error.

Whatever goes wrong — a bad filter, a missing object, a wrong method, a
second run while one is active, too many requests — the client gets::

    {"error": {"code": "not_found", "message": "No Pipeline matches the given query.", "detail": {}}}

``code`` is stable (clients branch on it), ``message`` is for people,
``detail`` carries field errors (400) or context (409: the active run).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from atlas.scrub import echoed, scrub, scrub_data

logger = logging.getLogger(__name__)

# The code of a validation error the schema cannot state: a rule across fields or against what exists
# (the model's clean(), a reference to nothing, a name taken). Answered 409, not 400: a request the
# schema allows is never refused as malformed (400 means: it breaks the schema).
RULE = "rule"
RULE_CODES = frozenset({RULE, "does_not_exist", "unique", "unique_together"})


class Conflict(exceptions.APIException):
    """The request is valid but the current state forbids it (409)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"

    def __init__(self, message: str | None = None, *, code: str | None = None, context: dict | None = None) -> None:
        super().__init__(message, code)
        self.context = context or {}


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail if detail is not None else {}}}


def _convert(exc: Exception) -> Exception:
    """Django's own exceptions become their API equivalents."""
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or None)
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, DjangoValidationError):  # a model's clean() or a service's rule
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return exceptions.ValidationError(detail, code=RULE)
    if isinstance(exc, ProtectedError | RestrictedError):
        related = sorted({str(obj) for obj in list(exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects)[:20]})
        return Conflict(
            "It is still in use and cannot be deleted; delete or change what uses it first.",
            code="in_use",
            context={"used_by": related},
        )
    return exc


def _message(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.ValidationError):
        if breaks_only_rules(exc):
            return "The request is well-formed but refused by a rule (what exists, or fields together); see detail."
        return "The request is not valid; see detail for each field."
    detail = exc.detail
    if isinstance(detail, list | tuple) and detail:
        return str(detail[0])
    if isinstance(detail, dict):
        return exc.default_detail if isinstance(exc.default_detail, str) else "Request failed."
    return str(detail)


def _leaf_codes(codes: Any) -> set[str]:
    if isinstance(codes, dict):
        return set().union(*(_leaf_codes(v) for v in codes.values())) if codes else set()
    if isinstance(codes, list | tuple):
        return set().union(*(_leaf_codes(v) for v in codes)) if codes else set()
    return {str(codes)}


def breaks_only_rules(exc: exceptions.ValidationError) -> bool:
    """Every field error is one the schema cannot state (:data:`RULE_CODES`): the request is well-formed."""
    codes = _leaf_codes(exc.get_codes())
    return bool(codes) and codes <= RULE_CODES


def _code(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.ValidationError):
        return "conflict" if breaks_only_rules(exc) else "invalid"
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's handler (headers such as WWW-Authenticate, Retry-After) with Atlas's body."""
    exc = _convert(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        # Unexpected: log it with its traceback and answer in the same shape.
        logger.exception("Unhandled API error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return Response(
            error_body("server_error", "Something went wrong on our side; it has been logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, exceptions.ValidationError):
        detail: Any = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    elif isinstance(exc, Conflict):
        detail = exc.context
    elif isinstance(exc, exceptions.Throttled):
        detail = {"retry_after_seconds": exc.wait}
    else:
        detail = {}
    # No row value in a body: an error may quote one (a warehouse error). What the client sent
    # itself and is said back (an unknown kind, a bad id) is no one else's data and is kept.
    echo = _request_text(context.get("request"))
    message = _message(exc)
    if isinstance(exc, exceptions.ValidationError) and breaks_only_rules(exc):
        response.status_code = status.HTTP_409_CONFLICT
    response.data = error_body(_code(exc), scrub(message, keep=echoed(message, echo)), scrub_data(detail, echo=echo))
    return response


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@permission_classes([])
def not_found(request: Request, *args: Any, **kwargs: Any) -> Response:
    """Unknown URLs under /api/ answer in the API's shape, not with Django's HTML page."""
    raise exceptions.NotFound(f"There is no API endpoint at {request.path}.")


def _request_text(request: Any) -> str:
    """The request's query string and body as text (at most 1 MiB), for :func:`atlas.scrub.echoed`."""
    if request is None:
        return ""
    parts = [request.META.get("QUERY_STRING", "")]
    try:
        body = request.body[: 1 << 20]
    except Exception:  # a body already read as a stream, or too large: nothing to compare with
        body = b""
    parts.append(body.decode("utf-8", "replace"))
    from urllib.parse import unquote_plus

    return "\n".join([*parts, unquote_plus(parts[0])])

