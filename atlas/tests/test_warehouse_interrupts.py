"""The warehouse side of cancel and time limits: the statement timeout, and stopping a watched statement.

On the engine of this pass: PostgreSQL (``statement_timeout``, ``pg_cancel_backend`` from
another connection) or DuckDB (a timer and ``interrupt()``).
"""

from __future__ import annotations

import threading
import time

import pytest

from atlas.warehouse import get_warehouse, reset_warehouses
from atlas.warehouse.errors import StatementTimeout, WarehouseError
from atlas.warehouse.interrupts import Interrupted
from conftest import ENGINE

BOUND = 30.0  # seconds; the statements below would run far longer


def long_statement() -> str:
    """A statement that runs for minutes on either engine."""
    if ENGINE == "postgres":
        return "SELECT pg_sleep(600)"
    return "SELECT sum(a.range * b.range) FROM range(3000000) AS a, range(3000000) AS b"


def test_an_own_statement_past_the_warehouse_statement_timeout_is_stopped_with_the_setting_named(wh, settings):
    settings.ATLAS_WAREHOUSE_STATEMENT_TIMEOUT_SECONDS = 0.5
    reset_warehouses()  # PostgreSQL sets the timeout when it connects
    warehouse = get_warehouse()
    t0 = time.monotonic()
    expected = pytest.raises(StatementTimeout, match="ATLAS_WAREHOUSE_STATEMENT_TIMEOUT_SECONDS")
    with expected as raised, warehouse.cursor() as cur:
        cur.execute(long_statement())
    took = time.monotonic() - t0
    print(f"\nstatement timeout of 0.5 s ({ENGINE}): stopped after {took:.2f} s")
    assert took < BOUND
    assert isinstance(raised.value, WarehouseError) and "ran longer than 0.5 s" in str(raised.value)
    with warehouse.cursor() as cur:  # the connection serves the next statement
        assert cur.execute("SELECT 1").fetchone() == (1,)


def test_no_statement_timeout_when_it_is_zero(wh, settings):
    settings.ATLAS_WAREHOUSE_STATEMENT_TIMEOUT_SECONDS = 0
    reset_warehouses()
    warehouse = get_warehouse()
    assert warehouse.statement_timeout_seconds() == 0
    with warehouse.cursor() as cur:
        assert cur.execute("SELECT 2").fetchone() == (2,)


def test_a_watched_statement_is_stopped_from_another_thread_and_the_work_starts_nothing_more(wh):
    outcome: list[BaseException] = []
    started = threading.Event()
    watches = []

    def work() -> None:
        with wh.watch() as watch:
            watches.append(watch)
            try:
                with wh.cursor() as cur:
                    started.set()
                    cur.execute(long_statement())
            except BaseException as exc:  # what the work saw
                outcome.append(exc)
            try:
                with wh.cursor() as cur:
                    cur.execute("SELECT 1")
            except BaseException as exc:
                outcome.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    assert started.wait(BOUND)
    time.sleep(0.3)  # inside the statement
    t0 = time.monotonic()
    reached = wh.interrupt(watches[0], "stopped by the test")
    while thread.is_alive() and time.monotonic() - t0 < 2:
        wh.interrupt(watches[0], "stopped by the test")  # as the watchdog does at every poll
        thread.join(0.2)
    thread.join(BOUND)
    took = time.monotonic() - t0
    print(f"\ninterrupt of a watched statement ({ENGINE}): stopped after {took:.2f} s")
    assert not thread.is_alive() and reached >= 1
    assert [type(e) for e in outcome] == [Interrupted, Interrupted]
    assert all("stopped by the test" in str(e) for e in outcome)


def test_an_interrupt_of_a_watch_without_sessions_reaches_none(wh):
    with wh.watch() as watch:
        assert wh.interrupt(watch, "nothing running") == 0
        assert watch.reason == "nothing running"
        wh.interrupt(watch, "a second reason")
        assert watch.reason == "nothing running"  # the first reason stays
