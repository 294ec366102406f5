"""Readiness for orchestrators: ``/readyz`` answers 200 only when Atlas can do its work.

``/healthz`` (``atlas.views``) says the process is up; ``/readyz`` says its
dependencies are: Django's database reachable and fully migrated, the
warehouse reachable, and — when a broker is configured — the broker. Each
check returns a reason instead of raising, so a 503 tells the operator
what to fix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)
BROKER_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    reason: str = ""
    seconds: float = 0.0


def check_database() -> str | None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()
    return None


def check_migrations() -> str | None:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        more = f" and {len(plan) - 5} more" if len(plan) > 5 else ""
        return f"{len(plan)} migration(s) not applied: {names}{more}; run manage.py migrate."
    return None


def check_warehouse() -> str | None:
    from atlas.warehouse import get_warehouse

    with get_warehouse().cursor() as cur:
        cur.execute("SELECT 1").fetchone()
    return None


def check_broker() -> str | None:
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL, connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    return None


def checks() -> list[tuple[str, Callable[[], str | None]]]:
    """The checks that apply to this configuration (no broker check when tasks run in-process)."""
    found: list[tuple[str, Callable[[], str | None]]] = [
        ("database", check_database),
        ("migrations", check_migrations),
        ("warehouse", check_warehouse),
    ]
    if settings.CELERY_BROKER_URL:
        found.append(("broker", check_broker))
    return found


def run_checks() -> list[CheckResult]:
    results = []
    for name, check in checks():
        started = time.perf_counter()
        try:
            reason = check()
        except Exception as exc:  # any failure means "not ready"; the reason says which
            logger.warning("Readiness check %s failed: %s", name, exc)
            reason = f"{type(exc).__name__}: {exc}"
        results.append(CheckResult(name, reason is None, reason or "", time.perf_counter() - started))
    return results


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, else 503 with each failing check's reason."""
    results = run_checks()
    ready = all(r.ok for r in results)
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {
            r.name: {"ok": r.ok, **({"reason": r.reason} if r.reason else {}), "seconds": round(r.seconds, 4)}
            for r in results
        },
    }
    return JsonResponse(body, status=200 if ready else 503)
