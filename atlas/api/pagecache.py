"""Rendered API pages, cached until the next write to the metadata database.

A read (GET/HEAD of a list or a detail) is answered from the cache when the
same page was rendered before for the same permissions and nothing has been
written since. "Nothing written" is a *data generation* counter in the shared
cache (``CACHE_URL``: Redis in production), bumped by every INSERT, UPDATE or
DELETE any Atlas process (web, worker, beat, manage.py) sends through Django's
connections — a database execute wrapper sees them all, ``QuerySet.update``
and raw SQL included — once when the statement runs and again when its
transaction commits. The generation is part of the key, so an old page is
never read again: invalidation is exact, not timed.

The key: method, host and full path (query string), ``Accept``, the
generation, and a digest of the user's permissions (a superuser's is
``su``): users of the same role share pages; a user whose PII permission
differs never sees another's rendering.

A page is stored only if the generation did not move while it was being
answered, including the request's own writes when it ended (a clear PII
view records an audit event: that page is never stored, so every clear read
is audited). Writes to bookkeeping tables no cached page shows (sessions,
login throttling, tokens) do not count.

On by default only with a cache shared by every process (``ATLAS_API_PAGE_CACHE``:
``auto``, ``on``, ``off``): with the per-process memory cache, a write made
by another process would go unseen.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.backends.signals import connection_created
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

GENERATION_KEY = "atlas:api:data-generation"
PAGE_PREFIX = "atlas:api:page:"
PAGE_SECONDS = 600  # an unread page leaves the cache after this; a write makes it unreachable at once
WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "REPLACE", "ALTER", "DROP", "CREATE")
# Bookkeeping tables no cached page reads: their writes do not make pages stale.
IGNORED_TABLES = ("django_session", "axes_", "knox_authtoken")
_MARK = "_atlas_page_cache"
_LOCAL_BACKENDS = ("LocMemCache", "DummyCache")


def enabled() -> bool:
    mode = str(getattr(settings, "ATLAS_API_PAGE_CACHE", "auto")).lower()
    if mode in ("on", "true", "1"):
        return True
    if mode in ("off", "false", "0"):
        return False
    return not settings.CACHES["default"]["BACKEND"].endswith(_LOCAL_BACKENDS)


# --- the data generation ------------------------------------------------------------------------
def generation() -> int:
    value = cache.get(GENERATION_KEY)
    if value is None:
        # First use, or the key was evicted: start from a value never used before.
        import time

        cache.add(GENERATION_KEY, time.time_ns(), timeout=None)
        value = cache.get(GENERATION_KEY)
    return int(value)


def bump() -> None:
    """Make every cached page unreachable (called on every write; never fails the write)."""
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # missing: the next read starts a fresh generation
        generation()
    except Exception:  # noqa: BLE001 — a cache outage must not fail a write; reads miss it too
        logger.warning("Could not bump the API page-cache generation", exc_info=True)


def is_write(sql: Any) -> bool:
    text = sql if isinstance(sql, str) else str(sql)
    head = text.lstrip(" (\n\t").split(None, 1)
    if not head:
        return False
    verb = head[0].upper()
    if verb == "WITH":
        upper = text.upper()
        return any(f" {w} " in upper or f"\n{w} " in upper for w in ("INSERT", "UPDATE", "DELETE"))
    if verb not in WRITE_VERBS:
        return False
    words = text.split(None, 3)
    target = words[1] if verb == "UPDATE" else words[2] if len(words) > 2 and verb in ("INSERT", "DELETE") else ""
    target = target.strip('"`').lower()
    return not (target and target.startswith(IGNORED_TABLES))


def track_writes(execute: Callable, sql: Any, params: Any, many: bool, context: dict) -> Any:
    """Database execute wrapper: a write bumps the generation now and when its transaction commits."""
    result = execute(sql, params, many, context)
    if is_write(sql):
        bump()
        conn = context["connection"]
        if conn.in_atomic_block and not any(item[1] is bump for item in conn.run_on_commit):
            transaction.on_commit(bump, using=conn.alias)
    return result


def _install(sender: Any, connection: Any, **kwargs: Any) -> None:
    if track_writes not in connection.execute_wrappers:
        connection.execute_wrappers.append(track_writes)


def connect() -> None:
    """Watch every connection Django opens (called from ``AtlasConfig.ready``)."""
    connection_created.connect(_install, dispatch_uid="atlas.api.pagecache")
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        _install(None, conn)


# --- pages ----------------------------------------------------------------------------------------
def permission_digest(user: Any) -> str:
    if getattr(user, "is_superuser", False):
        return "su"
    if not getattr(user, "is_authenticated", False):
        return "anon"
    perms = "\n".join(sorted(user.get_all_permissions()))
    return hashlib.sha256(perms.encode()).hexdigest()[:24]


def page_key(request: Any, gen: int) -> str:
    raw = "\n".join([
        request.method, request.get_host(), request.get_full_path(), request.META.get("HTTP_ACCEPT", ""),
        permission_digest(request.user), str(gen),
    ])
    return PAGE_PREFIX + hashlib.sha256(raw.encode()).hexdigest()


def cached_response(request: Any) -> HttpResponse | None:
    """The stored page for this request, or None (and the request marked to store what it renders)."""
    if request.method not in ("GET", "HEAD") or not enabled():
        return None
    try:
        gen = generation()
        key = page_key(request, gen)
        hit = cache.get(key)
    except Exception:  # noqa: BLE001 — no cache: answer from the database
        logger.warning("API page cache unavailable", exc_info=True)
        return None
    if hit is not None:
        content, content_type = hit
        response = HttpResponse(content, content_type=content_type)
        response["X-Atlas-Page-Cache"] = "hit"
        return response
    setattr(request._request if hasattr(request, "_request") else request, _MARK, (key, gen))
    return None


def store(request: HttpRequest, response: HttpResponse) -> None:
    """Keep a rendered 200 page if no write happened while it was answered (see the module docstring)."""
    mark = getattr(request, _MARK, None)
    if mark is None or response.status_code != 200 or response.streaming:
        return
    key, gen = mark
    try:
        if generation() != gen:
            return
        cache.set(key, (response.content, response["Content-Type"]), PAGE_SECONDS)
    except Exception:  # noqa: BLE001
        logger.warning("Could not store an API page", exc_info=True)
        return
    response["X-Atlas-Page-Cache"] = "miss"


class CachedReadMixin:
    """For viewsets: ``list`` and ``retrieve`` answered from the page cache when they can be."""

    def list(self, request, *args, **kwargs):
        return cached_response(request) or super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        return cached_response(request) or super().retrieve(request, *args, **kwargs)


class PageCacheMiddleware:
    """Stores pages once every inner middleware (audit scopes included) has finished with them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        store(request, response)
        return response
