"""Request middleware: who is acting while this request runs (the audit log); the apps' request scopes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from django.http import HttpRequest, HttpResponse

from . import extensions
from .audit_tracking import request_scope


class AuditActorMiddleware:
    """Makes the request's user the actor of every audit event the request causes.

    The request itself is stored (not its user), and its user is read when an event
    is recorded: the API authenticates tokens inside the view, after this runs.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with request_scope(request):
            return self.get_response(request)


class ContributedScopesMiddleware:
    """Enters every ``request_scopes`` context an app contributes (:mod:`atlas.extensions`) around the request.

    After :class:`AuditActorMiddleware`, so what a scope records on exit has the request's actor.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with ExitStack() as stack:
            for scope in extensions.contributions("request_scopes"):
                stack.enter_context(scope(request))
            return self.get_response(request)
