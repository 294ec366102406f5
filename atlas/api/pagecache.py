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

Served early: :class:`EarlyPageMiddleware` (right after Django's security
middleware) answers a stored page to a token-authenticated GET before
sessions, CSRF, DRF's authentication, content negotiation and the view
run: the token is resolved once per process and generation (knox, the same
checks as DRF's: known, unexpired, active user) into the permission digest,
then one cache read of both generations, one of the page, and the view's own
throttles counted as DRF would count them (a refused request goes the usual
way, which answers the 429). The stored page carries the headers the view
and the inner middleware set. Token writes (a revocation, a logout) bump an
*auth generation* that the resolved tokens are keyed by, so a revoked token
is refused on its next request. Anything else (a session, a miss, an
expired token) takes the usual path.

On by default only with a cache shared by every process (``ATLAS_API_PAGE_CACHE``:
``auto``, ``on``, ``off``): with the per-process memory cache, a write made
by another process would go unseen.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import DisallowedHost
from django.db import transaction
from django.db.backends.signals import connection_created
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

GENERATION_KEY = "atlas:api:data-generation"
AUTH_GENERATION_KEY = "atlas:api:auth-generation"
PAGE_PREFIX = "atlas:api:page:v2:"
PAGE_SECONDS = 600  # an unread page leaves the cache after this; a write makes it unreachable at once
WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "REPLACE", "ALTER", "DROP", "CREATE")
# Bookkeeping tables no cached page reads: their writes do not make pages stale.
IGNORED_TABLES = ("django_session", "axes_", "knox_authtoken")
# Tables whose writes change who a token is (revocation, logout): they bump the auth generation.
AUTH_TABLES = ("knox_authtoken",)
# Headers a stored page does not carry: per response (Date, length), per client (cookies), or set again
# on the way out by the outer middleware (security headers) and by the cache itself.
UNSTORED_HEADERS = {"content-length", "set-cookie", "date", "x-atlas-page-cache"}
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
# Whether this process read a generation since it last bumped one (any thread): a page it answered since
# may hold what a transaction of its own wrote before, so the transaction's next write bumps again.
_READ_SINCE_BUMP = {GENERATION_KEY: True, AUTH_GENERATION_KEY: True}


def generation(key: str = GENERATION_KEY) -> int:
    _READ_SINCE_BUMP[key] = True
    value = cache.get(key)
    if value is None:
        # First use, or the key was evicted: start from a value never used before.
        cache.add(key, time.time_ns(), timeout=None)
        value = cache.get(key)
    return int(value)


def generations() -> tuple[int, int]:
    """The data and auth generations, in one cache round trip when both exist."""
    _READ_SINCE_BUMP.update(dict.fromkeys(_READ_SINCE_BUMP, True))
    found = cache.get_many([GENERATION_KEY, AUTH_GENERATION_KEY])
    data, auth = found.get(GENERATION_KEY), found.get(AUTH_GENERATION_KEY)
    return (int(data) if data is not None else generation(),
            int(auth) if auth is not None else generation(AUTH_GENERATION_KEY))


def bump(key: str = GENERATION_KEY) -> None:
    """Make every cached page (or, with the auth key, every resolved token) unreachable; never fails the write.

    On Redis one round trip (:data:`BUMP_SCRIPT`) over the process's client: a run's writes bump it a
    dozen times, and Django's ``incr`` builds a client and asks twice (EXISTS, INCRBY) each time.
    """
    _READ_SINCE_BUMP[key] = False
    try:
        if (fast := _fast()) is not None:
            fast.bump(keys=[fast.key(key)], args=[time.time_ns()])
            return
        cache.incr(key)
    except ValueError:  # missing: the next read starts a fresh generation
        generation(key)
    except Exception:  # noqa: BLE001 — a cache outage must not fail a write; reads miss it too
        logger.warning("Could not bump the API page-cache generation", exc_info=True)


def bump_auth() -> None:
    bump(AUTH_GENERATION_KEY)


def write_target(sql: Any) -> str | None:
    """The table a write statement names (lowercase, unquoted; "" when not read), or None for a read."""
    text = sql if isinstance(sql, str) else str(sql)
    head = text.lstrip(" (\n\t").split(None, 1)
    if not head:
        return None
    verb = head[0].upper()
    if verb == "WITH":
        upper = text.upper()
        return "" if any(f" {w} " in upper or f"\n{w} " in upper for w in ("INSERT", "UPDATE", "DELETE")) else None
    if verb not in WRITE_VERBS:
        return None
    words = text.split(None, 3)
    target = words[1] if verb == "UPDATE" else words[2] if len(words) > 2 and verb in ("INSERT", "DELETE") else ""
    return target.strip('"`').lower()


def is_write(sql: Any) -> bool:
    """A write that can change what a cached page shows (bookkeeping tables do not)."""
    target = write_target(sql)
    return target is not None and not (target and target.startswith(IGNORED_TABLES))


def track_writes(execute: Callable, sql: Any, params: Any, many: bool, context: dict) -> Any:
    """Database execute wrapper: a write bumps the generation now and when its transaction commits."""
    result = execute(sql, params, many, context)
    target = write_target(sql)
    if target is None:
        return result
    if target.startswith(AUTH_TABLES):
        _bump_now_and_on_commit(bump_auth, context["connection"], AUTH_GENERATION_KEY)
    elif not (target and target.startswith(IGNORED_TABLES)):
        _bump_now_and_on_commit(bump, context["connection"], GENERATION_KEY)
    return result


def _bump_now_and_on_commit(fn: Callable[[], None], conn: Any, key: str) -> None:
    """Bump now, and when the transaction commits (once, however many writes it holds).

    Other processes see the writes once they commit: the bump at commit is theirs. The bump now is for
    this process's own pages, which may show what its open transaction wrote; such a page read a
    generation before it wrote, so a write bumps now only when this process read a generation since its
    last bump (any thread: a bump after a page began moves the generation it is checked against, and the
    page is not stored). A worker executing a run reads none: one bump per transaction, at its commit.
    """
    if not conn.in_atomic_block:
        fn()
        return
    if _READ_SINCE_BUMP[key]:
        fn()
    if not any(item[1] is fn for item in conn.run_on_commit):  # the transaction's first write
        transaction.on_commit(fn, using=conn.alias)


def _install(sender: Any, connection: Any, **kwargs: Any) -> None:
    if track_writes not in connection.execute_wrappers:
        connection.execute_wrappers.append(track_writes)


def connect() -> None:
    """Watch every connection Django opens (called from ``AtlasConfig.ready``)."""
    from django.core.signals import setting_changed

    connection_created.connect(_install, dispatch_uid="atlas.api.pagecache")
    setting_changed.connect(_reset_fast, dispatch_uid="atlas.api.pagecache.fast")
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


def page_base(request: Any, digest: str | None = None) -> str:
    """The page's key without its generation: what was asked, how, by which permissions."""
    raw = "\n".join([
        request.method, request.get_host(), request.get_full_path(), request.META.get("HTTP_ACCEPT", ""),
        digest if digest is not None else permission_digest(request.user),
    ])
    return PAGE_PREFIX + hashlib.sha256(raw.encode()).hexdigest()


def page_key(request: Any, gen: int, digest: str | None = None) -> str:
    return f"{page_base(request, digest)}:{gen}"


def _page_response(hit: tuple) -> HttpResponse:
    content, headers = hit[0], hit[1]
    response = HttpResponse(content)
    for name, value in headers.items():
        response[name] = value
    response["X-Atlas-Page-Cache"] = "hit"
    return response


def cached_response(request: Any, view: Any = None) -> HttpResponse | None:
    """The stored page for this request, or None (and the request marked to store what it renders).

    ``view``: the DRF view answering; its throttles are stored with the page, for the early path.
    """
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
        return _page_response(hit)
    throttles = tuple(f"{t.__module__}.{t.__qualname__}" for t in getattr(view, "throttle_classes", ()))
    setattr(request._request if hasattr(request, "_request") else request, _MARK, (key, gen, throttles))
    return None


def store(request: HttpRequest, response: HttpResponse) -> None:
    """Keep a rendered 200 page if no write happened while it was answered (see the module docstring)."""
    mark = getattr(request, _MARK, None)
    if mark is None or response.status_code != 200 or response.streaming:
        return
    key, gen, throttles = mark
    headers = {name: value for name, value in response.items() if name.lower() not in UNSTORED_HEADERS}
    try:
        if generation() != gen:
            return
        cache.set(key, (response.content, headers, throttles), PAGE_SECONDS)
    except Exception:  # noqa: BLE001
        logger.warning("Could not store an API page", exc_info=True)
        return
    response["X-Atlas-Page-Cache"] = "miss"


class CachedReadMixin:
    """For viewsets: ``list`` and ``retrieve`` answered from the page cache when they can be."""

    def list(self, request, *args, **kwargs):
        return cached_response(request, self) or super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        return cached_response(request, self) or super().retrieve(request, *args, **kwargs)


class PageCacheMiddleware:
    """Stores pages once every inner middleware (audit scopes included) has finished with them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        store(request, response)
        return response


# --- the early path -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Identity:
    """A token resolved by knox: whose it is, their permission digest, until when it holds."""

    user_pk: Any
    digest: str
    expiry: datetime | None

    @property
    def is_authenticated(self) -> bool:  # read by DRF's throttles (UserRateThrottle keys on ``pk``)
        return True

    @property
    def pk(self) -> Any:
        return self.user_pk


_IDENTITIES: dict[tuple[str, int, int], _Identity] = {}
_IDENTITIES_MAX = 4096
_THROTTLES: dict[str, Any] = {}


def _identity(token: str, data_gen: int, auth_gen: int) -> _Identity | None:
    """The token's identity under these generations: from this process's memory, else resolved by knox."""
    key = (hashlib.sha256(token.encode()).hexdigest(), data_gen, auth_gen)
    found = _IDENTITIES.get(key)
    if found is None:
        from knox.auth import TokenAuthentication
        from rest_framework.exceptions import AuthenticationFailed

        try:
            user, auth_token = TokenAuthentication().authenticate_credentials(token.encode())
        except AuthenticationFailed:
            return None  # the usual path answers the 401
        found = _Identity(user.pk, permission_digest(user), auth_token.expiry)
        if len(_IDENTITIES) >= _IDENTITIES_MAX:
            _IDENTITIES.clear()
        _IDENTITIES[key] = found
    if found.expiry is not None and found.expiry <= timezone.now():
        return None
    return found


def _throttles_allow(paths: tuple[str, ...], identity: _Identity, request: HttpRequest) -> bool:
    """The view's throttles, counted as DRF counts them for this user (a refusal records nothing)."""
    shim = SimpleNamespace(user=identity, META=request.META)
    for path in paths:
        throttle_class = _THROTTLES.get(path) or _THROTTLES.setdefault(path, import_string(path))
        if not throttle_class().allow_request(shim, None):
            return False
    return True


# --- the early path on Redis: two round trips --------------------------------------------------
# Django's RedisCache builds a client object per call (about 0.1 ms of CPU each) and answers one
# command per round trip: the early path took five (both generations, the page, the throttle's add
# and incr). On Redis it keeps one client per process over the cache's own pool and takes two: one
# script reads both generations and the page under the data generation it just read (keyed by the
# permission digest this token had last; a changed digest reads the page once more), one pipeline
# counts the throttles. Same keys and values as the cache's (prefix, version, serializer).
EARLY_SCRIPT = """
local data = redis.call('GET', KEYS[1])
local auth = redis.call('GET', KEYS[2])
if not data or not auth then return {data or false, auth or false, false} end
return {data, auth, redis.call('GET', ARGV[1] .. ':' .. data) or false}
"""


# A generation bumped: INCR where it exists; else started from a value never used before (ARGV[1]: now, in ns).
BUMP_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCR', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('INCR', KEYS[1])
"""


class _FastRedis:
    def __init__(self, backend: Any) -> None:
        inner = backend._cache  # django.core.cache.backends.redis.RedisCacheClient
        self.client = inner._client(connection_pool=inner._get_connection_pool(True))
        self.loads, self.dumps = inner._serializer.loads, inner._serializer.dumps
        self.key = backend.make_and_validate_key
        self.script = self.client.register_script(EARLY_SCRIPT)
        self.bump = self.client.register_script(BUMP_SCRIPT)


_FAST: dict[str, Any] = {}
_LATEST_DIGEST: dict[str, str] = {}  # token digest -> the permission digest it had last


def _fast() -> _FastRedis | None:
    if "client" not in _FAST:
        from django.core.cache import caches
        from django.core.cache.backends.redis import RedisCache

        backend = caches["default"]
        _FAST["client"] = _FastRedis(backend) if type(backend) is RedisCache else None
    return _FAST["client"]


def _reset_fast(*args: Any, **kwargs: Any) -> None:
    _FAST.clear()


def _fast_hit(fast: _FastRedis, request: HttpRequest, token: str) -> tuple[_Identity | None, Any]:
    """(identity, stored page or None) in one round trip when the token's digest is unchanged."""
    token_key = hashlib.sha256(token.encode()).hexdigest()
    digest = _LATEST_DIGEST.get(token_key, "")
    _READ_SINCE_BUMP.update(dict.fromkeys(_READ_SINCE_BUMP, True))
    data, auth, page = fast.script(keys=[fast.key(GENERATION_KEY), fast.key(AUTH_GENERATION_KEY)],
                                   args=[fast.key(page_base(request, digest))])
    if data is None or auth is None:
        data_gen, auth_gen = generations()
        page = None
    else:
        data_gen, auth_gen = int(data), int(auth)
    identity = _identity(token, data_gen, auth_gen)
    if identity is None:
        return None, None
    if identity.digest != digest:
        _LATEST_DIGEST[token_key] = identity.digest
        if len(_LATEST_DIGEST) > _IDENTITIES_MAX:
            _LATEST_DIGEST.clear()
        return identity, cache.get(page_key(request, data_gen, identity.digest))
    return identity, (fast.loads(page) if page is not None else None)


def _fast_throttles_allow(fast: _FastRedis, paths: tuple[str, ...], identity: _Identity, request: HttpRequest) -> bool:
    """:func:`_throttles_allow` in one pipeline: each counted throttle's window set if new, then counted."""
    from .throttling import _Counted

    shim = SimpleNamespace(user=identity, META=request.META)
    pipe = fast.client.pipeline(transaction=False)
    limits = []
    for path in paths:
        throttle_class = _THROTTLES.get(path) or _THROTTLES.setdefault(path, import_string(path))
        throttle = throttle_class()
        if not isinstance(throttle, _Counted):
            if not throttle.allow_request(shim, None):
                return False
            continue
        key = throttle.get_cache_key(shim, None) if throttle.rate is not None else None
        if key is None:
            continue
        seconds = max(1, math.ceil(throttle.duration))
        count_key = fast.key(f"{key}:n")
        pipe.set(count_key, 0, ex=seconds, nx=True)
        pipe.incr(count_key)
        pipe.set(fast.key(f"{key}:t0"), fast.dumps(throttle.timer()), ex=seconds, nx=True)
        limits.append(throttle.num_requests)
    if not limits:
        return True
    counts = pipe.execute()[1::3]
    return all(count <= limit for count, limit in zip(counts, limits, strict=True))


def early_response(request: HttpRequest) -> HttpResponse | None:
    """A stored page for a token-authenticated read, before the rest of Django and DRF; else None."""
    if request.method not in ("GET", "HEAD") or not request.path.startswith("/api/"):
        return None
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Token ") or request.META.get("CONTENT_LENGTH") not in (None, "", "0"):
        return None
    if not enabled():
        return None
    try:
        fast = _fast()
        if fast is not None:
            identity, hit = _fast_hit(fast, request, header[6:].strip())
            if identity is None or hit is None or not _fast_throttles_allow(fast, hit[2], identity, request):
                return None
            return _page_response(hit)
        data_gen, auth_gen = generations()
        identity = _identity(header[6:].strip(), data_gen, auth_gen)
        if identity is None:
            return None
        hit = cache.get(page_key(request, data_gen, identity.digest))
        if hit is None or not _throttles_allow(hit[2], identity, request):
            return None
    except DisallowedHost:
        return None  # the usual path answers it
    except Exception:  # noqa: BLE001 — no cache, no database: the usual path decides
        logger.warning("API page cache: the early path failed", exc_info=True)
        return None
    return _page_response(hit)


class EarlyPageMiddleware:
    """Answers stored pages to token reads before sessions, CSRF, auth and DRF (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return early_response(request) or self.get_response(request)
