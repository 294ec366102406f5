"""Which step errors are worth another try, and how long to wait before it.

An allowlist: only errors that say "the same work may well succeed in a moment"
are transient — a lost or refused database connection, a serialization failure,
a deadlock, a lock timeout, the broker unreachable. A failing check
(``GateFailed``), an SQL error, bad data, a statement cancelled on request or by
its timeout: never; they fail the step at once.
"""

from __future__ import annotations

import random

from django.conf import settings
from django.db import InterfaceError as DjangoInterfaceError
from django.db import OperationalError as DjangoOperationalError

# SQLSTATE codes (PostgreSQL) of transient failures: connection exceptions (class 08),
# serialization failure, deadlock, lock not available (lock_timeout), the server shutting
# down or terminating the backend (pg_terminate_backend), too many connections.
TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"}
TRANSIENT_SQLSTATE_CLASSES = {"08"}


def _chain(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is an error another try may not meet."""
    import psycopg
    from kombu.exceptions import OperationalError as KombuOperationalError

    for err in _chain(exc):
        if isinstance(err, KombuOperationalError):
            return True
        if isinstance(err, psycopg.Error):
            state = getattr(err, "sqlstate", None)
            if state is None:
                # No SQLSTATE: the connection itself broke (server closed it, network down).
                return isinstance(err, psycopg.OperationalError | psycopg.InterfaceError)
            return state in TRANSIENT_SQLSTATES or state[:2] in TRANSIENT_SQLSTATE_CLASSES
        if isinstance(err, DjangoInterfaceError):
            return True
        if isinstance(err, DjangoOperationalError) and err.__cause__ is None:
            # SQLite's "database is locked" (a busy writer), or a driver error without its cause.
            return "locked" in str(err) or "connection" in str(err).lower()
        if _is_duckdb_conflict(err):
            return True
    return False


def _is_duckdb_conflict(err: BaseException) -> bool:
    import duckdb

    return isinstance(err, duckdb.TransactionException) and "conflict" in str(err).lower()


def backoff_seconds(retry: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (1, 2, ...): exponential, capped, with full jitter.

    ``base * 2**(retry-1)`` capped at ``ATLAS_STEP_RETRY_MAX_SECONDS``, then a uniform draw from
    half of it to all of it, so steps failing together do not all come back at the same instant.
    """
    if retry < 1:
        raise ValueError("retry counts from 1")
    ceiling = min(settings.ATLAS_STEP_RETRY_MAX_SECONDS, settings.ATLAS_STEP_RETRY_BASE_SECONDS * 2 ** (retry - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)
