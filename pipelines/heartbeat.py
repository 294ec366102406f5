"""Heartbeats of the runs a process executes: one thread and one UPDATE per interval for all of them.

A worker with a pool of threads executes many runs at once (README "When things fail",
"200 pipelines due at once"). Each run registers while it executes
(``with RunHeartbeat(run_id, attempt) as beat:``); the process's one heartbeat thread marks
every registered run alive every ``ATLAS_RUN_HEARTBEAT_SECONDS`` in one statement, on one
database connection — not a thread, a connection and a write per run. The thread starts
with the first registration and ends (closing its connection) when none is left.

A run whose attempt was declared lost and taken over by another (this worker was cut off
long enough) is not marked: its ``superseded`` is set, and the runner stops that attempt.
The same thread reads, every ``ATLAS_WATCHDOG_POLL_SECONDS``, which of its runs were asked
to cancel (one SELECT for all): a running step's watchdog reads that flag instead of
querying on a connection of its own.
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections.abc import Iterable
from functools import reduce

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import Q
from django.utils import timezone

logger = logging.getLogger(__name__)


class RunHeartbeat:
    """One executing run's registration with the process's heartbeat thread; a context manager.

    ``attempt``: the attempt this process executes (None: mark the run whatever its attempt).
    """

    def __init__(self, run_id: int, attempt: int | None = None) -> None:
        self.run_id, self.attempt = run_id, attempt
        self.superseded = False
        self.cancel_requested = False  # read for every registered run at once (read_cancels)

    def write(self) -> None:
        """Mark this run alive now (the heartbeat thread does it for every registered run at once)."""
        write_all([self])

    def __enter__(self) -> RunHeartbeat:
        BEATS.add(self)
        return self

    def __exit__(self, *exc) -> None:
        BEATS.remove(self)


def write_all(beats: Iterable[RunHeartbeat]) -> int:
    """Mark every run of ``beats`` still running as this attempt alive, in one UPDATE; flag the superseded.

    Returns the number of runs marked. Only when fewer were marked than asked is the
    database asked which runs another attempt has taken over.
    """
    from .models import PipelineRun, RunStatus

    beats = list(beats)
    if not beats:
        return 0
    mine = reduce(operator.or_, (Q(pk=b.run_id) if b.attempt is None else Q(pk=b.run_id, attempt=b.attempt)
                                 for b in beats))
    # A run whose row is locked now (its end being stored, a transaction holding it) is skipped, not
    # waited for: a heartbeat never queues behind a writer (one that waited would hold every other
    # run's beat, and a run ending waits for this thread). Its writer marks it, or the next beat does.
    live = PipelineRun.objects.filter(mine, status=RunStatus.RUNNING).select_for_update(skip_locked=True)
    with transaction.atomic():  # (Django's rule for FOR UPDATE, even in a subquery)
        marked = PipelineRun.objects.filter(pk__in=live.values("pk")).update(heartbeat_at=timezone.now())
    if marked < len(beats):
        attempts = [b for b in beats if b.attempt is not None]
        now = dict(PipelineRun.objects.filter(pk__in=[b.run_id for b in attempts]).values_list("pk", "attempt"))
        for b in attempts:
            if b.run_id in now and now[b.run_id] != b.attempt:
                b.superseded = True
    return marked


# How long this thread's SQLite connection waits for another's write lock before giving up this beat.
SQLITE_LOCK_WAIT_MS = 2000


def _wait_briefly_for_locks() -> None:
    """This thread's connection waits a moment for a held write lock, not the 30 s a run's connection waits.

    SQLite has one write lock for the whole database: a transaction holding it (a hook's, or a
    test's, which holds it from its first write to its end) would hold the beat, and the run ending
    meanwhile would wait for this thread. PostgreSQL's rows are skipped instead (``write_all``).
    """
    conn = connections["default"]
    if not conn.features.has_select_for_update_skip_locked:  # SQLite: one write lock, no row to skip
        with conn.cursor() as cur:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_LOCK_WAIT_MS}")


def read_cancels(beats: Iterable[RunHeartbeat]) -> None:
    """Which of the runs were asked to cancel, in one SELECT: their step's watchdog reads the flag, not the database."""
    from .models import PipelineRun

    beats = list(beats)
    if not beats:
        return
    asked = set(PipelineRun.objects.filter(pk__in=[b.run_id for b in beats], cancel_requested=True)
                .values_list("pk", flat=True))
    for b in beats:
        if b.run_id in asked:
            b.cancel_requested = True


class Beats:
    """The registered runs of this process and the one thread that marks them alive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._beats: set[RunHeartbeat] = set()
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None

    def add(self, beat: RunHeartbeat) -> None:
        with self._lock:
            self._beats.add(beat)
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._loop, args=(self._stop,), name="atlas-heartbeat",
                                                daemon=True)
                self._thread.start()

    def remove(self, beat: RunHeartbeat) -> None:
        """Unregister; the last run out stops the thread and waits for it (its connection closed)."""
        with self._lock:
            self._beats.discard(beat)
            if self._beats or self._thread is None:
                return
            thread, self._thread = self._thread, None  # the next run to start starts a new one
            self._stop.set()
        thread.join(timeout=30)  # at most a write in flight

    def registered(self) -> list[RunHeartbeat]:
        with self._lock:
            return list(self._beats)

    def of(self, run_id: int) -> RunHeartbeat | None:
        """The registration of ``run_id`` in this process, if it executes the run."""
        with self._lock:
            return next((b for b in self._beats if b.run_id == run_id), None)

    def _loop(self, stop: threading.Event) -> None:
        """Every ATLAS_WATCHDOG_POLL_SECONDS the cancel flags; every ATLAS_RUN_HEARTBEAT_SECONDS the heartbeats."""
        written = time.monotonic()
        try:
            while not stop.wait(min(settings.ATLAS_WATCHDOG_POLL_SECONDS, settings.ATLAS_RUN_HEARTBEAT_SECONDS)):
                beats = self.registered()
                try:
                    if time.monotonic() - written >= settings.ATLAS_RUN_HEARTBEAT_SECONDS * 0.95:
                        _wait_briefly_for_locks()  # before the write only: the cancel flags' read takes no lock
                        write_all(beats)
                        written = time.monotonic()
                    read_cancels(beats)
                except DatabaseError as exc:
                    # One missed beat (SQLite busy while a hook holds the write lock, a dropped
                    # connection) must not end the thread: the runs would later look lost.
                    logger.warning("Heartbeat of %d run(s) not written (%s); next try in %s s.", len(beats), exc,
                                   settings.ATLAS_RUN_HEARTBEAT_SECONDS)
                    connections["default"].close()
                except Exception:  # never let the thread die: every run of the process would look lost
                    logger.exception("Heartbeat of %d run(s) not written; next try in %s s.", len(beats),
                                     settings.ATLAS_RUN_HEARTBEAT_SECONDS)
        finally:
            connections.close_all()  # this thread's own connection


BEATS = Beats()
