"""Stopping a piece of work's warehouse statements from another thread.

A :class:`Watch` collects the warehouse sessions one piece of work (a pipeline step)
uses while it is active: on PostgreSQL the backend process ids of its connections, on
DuckDB its cursors. Another thread (``pipelines.watchdog``) can then stop them: the
backend cancels what they are running (``pg_cancel_backend``, DuckDB's ``interrupt``)
or, as a last resort, ends the connections (``pg_terminate_backend``). Once a watch is
tripped, every later statement of its work is refused with :class:`Interrupted`, so a
step whose statement was cancelled cannot go on to publish.

The watch of the current thread is set by ``Warehouse.watch()``; threads a backend
starts for the same work (parallel COPY parts) adopt it with ``Warehouse.adopt()``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Interrupted(Exception):  # noqa: N818 - what happened, like Django's ``Http404``
    """The work's warehouse statements were stopped on purpose (cancel, time limit); the message says why.

    Not a ``WarehouseError``: code that recovers from a failed statement (and goes on) must
    not recover from this, and it is never a transient error worth retrying.
    """


class Watch:
    """The warehouse sessions of one piece of work, and why it was stopped (``reason``), once it was."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[Any, Any] = {}
        self.reason: str | None = None
        self.terminated = False  # its connections were ended: the work's thread must open new ones

    def add(self, key: Any, session: Any) -> None:
        """Enlist a session (refused once the watch is tripped: nothing new starts)."""
        with self._lock:
            if self.reason is not None:
                raise Interrupted(self.reason)
            self._sessions[key] = session

    def discard(self, key: Any) -> None:
        with self._lock:
            self._sessions.pop(key, None)

    def sessions(self) -> list[Any]:
        with self._lock:
            return list(self._sessions.values())

    def trip(self, reason: str) -> None:
        """Mark the work stopped; the first reason stays."""
        with self._lock:
            if self.reason is None:
                self.reason = reason

    def check(self) -> None:
        """Raise :class:`Interrupted` once the watch is tripped."""
        if self.reason is not None:
            raise Interrupted(self.reason)


_local = threading.local()


def current() -> Watch | None:
    """The watch of this thread's work, if any."""
    return getattr(_local, "watch", None)


@contextmanager
def watching(watch: Watch | None) -> Iterator[Watch | None]:
    """Make ``watch`` this thread's for the block (None: no watch)."""
    previous = current()
    _local.watch = watch
    try:
        yield watch
    finally:
        _local.watch = previous


@contextmanager
def enlisted(key: Any, session: Any) -> Iterator[Watch | None]:
    """Enlist a session in this thread's watch for the block (nothing without a watch)."""
    watch = current()
    if watch is None:
        yield None
        return
    watch.add(key, session)
    try:
        yield watch
    finally:
        watch.discard(key)
