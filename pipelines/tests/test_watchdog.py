"""Cancel and time limits: a running step's warehouse statement is stopped, published tables stay as they were.

Runs execute in a thread of their own while the test cancels them, as a worker and
the admin would; every wait has a generous bound, and the figures measured are printed.
"""

from __future__ import annotations

import random
import threading
import time

import psycopg
import pytest
from django.core.exceptions import ValidationError
from django.db import connections

from conftest import ENGINE
from pipelines import runner, watchdog
from pipelines.models import PipelineRun, RunStatus, Step, StepRun

from .conftest import run_now

# The tests whose run executes in another thread commit what they write (transaction=True).
threaded = pytest.mark.django_db(transaction=True)

# Bounds, not expectations: cancel answers within about one poll (0.2 s here); the
# statements stopped would run for minutes (a lock held until the test ends, a
# four-way self join of thousands of rows).
BOUND = 30.0


def people_csv(rows: int, seed: int) -> str:
    rnd = random.Random(seed)
    names = ["Ann", "Bob", "Cy", "Dee", "Eve", "Flo", "Gus"]
    lines = ["id,name,amount"]
    lines += [f"{i},{rnd.choice(names)}{rnd.randint(1, 99)},{rnd.randint(1, 500)}" for i in range(1, rows + 1)]
    return "\n".join(lines) + "\n"


LONG_SQL = (
    "SELECT count(*) AS people, sum(a.amount + b.amount + c.amount + d.amount) AS amount"
    " FROM chart.people AS a CROSS JOIN chart.people AS b CROSS JOIN chart.people AS c CROSS JOIN chart.people AS d"
)


def published(wh) -> dict[str, list[tuple]]:
    with wh.cursor() as cur:
        return {
            table: cur.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("chart.people", "navigate.people_total")
        }


def tables_in(wh, schema: str) -> set[str]:
    with wh.cursor() as cur:
        return {
            r[0]
            for r in cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
            ).fetchall()
        }


@pytest.fixture
def loaded(wh, simple_pipeline, settings):
    """A pipeline run once (tables published), its aggregate step then given ``sql``; returns (pipeline, step)."""
    settings.ATLAS_WATCHDOG_POLL_SECONDS = 0.2
    pipeline = simple_pipeline(people_csv(1200, seed=14))
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    return pipeline, pipeline.steps.get(name="total")


def run_in_thread(pipeline, step: Step) -> tuple[PipelineRun, threading.Thread]:
    """Start a run of ``step`` alone in a thread (as a worker would); return when the step is running."""
    run = runner.start_run(pipeline, dispatch=False)

    def execute() -> None:
        try:
            runner.execute_run(run.pk, only={step.pk})
        finally:
            connections.close_all()

    thread = threading.Thread(target=execute, daemon=True)
    thread.start()
    deadline = time.monotonic() + BOUND
    while not StepRun.objects.filter(run=run, step=step, status=RunStatus.RUNNING).exists():
        assert thread.is_alive() and time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    time.sleep(0.5)  # inside its statement by now
    return run, thread


def end_of(run: PipelineRun, thread: threading.Thread) -> float:
    """Seconds until the run's thread ends (fails past the bound)."""
    t0 = time.monotonic()
    thread.join(BOUND)
    assert not thread.is_alive(), f"the run was still going {BOUND} s later"
    run.refresh_from_db()
    return time.monotonic() - t0


@threaded
@pytest.mark.skipif(ENGINE != "postgres", reason="a lock held by another session: PostgreSQL")
def test_a_step_blocked_on_a_lock_is_cancelled_within_seconds_and_the_run_ends_cancelled(loaded):
    pipeline, total = loaded
    from atlas.warehouse import get_warehouse

    wh = get_warehouse()
    before = published(wh)
    with psycopg.connect(wh.conninfo) as blocker:  # holds the input table until the end of the test
        blocker.execute("LOCK TABLE chart.people IN ACCESS EXCLUSIVE MODE")
        run, thread = run_in_thread(pipeline, total)
        assert runner.cancel_run(run) == "stopping"
        took = end_of(run, thread)
        blocker.rollback()
    print(f"\ncancel of a step blocked on a lock: run ended {took:.2f} s after the cancel")
    assert run.status == RunStatus.CANCELLED and run.cancel_requested
    assert "Cancelled by request while step 'total' ran" in run.error
    step_run = run.step_runs.get()
    assert step_run.status == RunStatus.CANCELLED and "statement was stopped" in step_run.error
    assert published(wh) == before
    assert tables_in(wh, "navigate") == {"people_total"}  # nothing staged is left
    assert run_now(pipeline).status == RunStatus.SUCCEEDED  # the pipeline is free again


@threaded
def test_a_long_query_is_interrupted_by_a_cancel_and_published_tables_stay(loaded):
    pipeline, total = loaded
    from atlas.warehouse import get_warehouse

    wh = get_warehouse()
    before = published(wh)
    Step.objects.filter(pk=total.pk).update(sql=LONG_SQL)
    run, thread = run_in_thread(pipeline, total)
    assert runner.cancel_run(run) == "stopping"
    took = end_of(run, thread)
    print(f"\ncancel of a long query ({ENGINE}): run ended {took:.2f} s after the cancel")
    assert run.status == RunStatus.CANCELLED, run.error
    assert run.step_runs.get().status == RunStatus.CANCELLED
    assert published(wh) == before
    assert tables_in(wh, "navigate") == {"people_total"}


def test_a_step_past_its_time_limit_fails_with_the_limit_named(loaded):
    pipeline, total = loaded
    from atlas.warehouse import get_warehouse

    wh = get_warehouse()
    before = published(wh)
    Step.objects.filter(pk=total.pk).update(sql=LONG_SQL, timeout_seconds=1)
    t0 = time.monotonic()
    run = runner.start_run(pipeline, dispatch=False)
    runner.execute_run(run.pk, only={total.pk})
    took = time.monotonic() - t0
    run.refresh_from_db()
    print(f"\nsoft time limit of 1 s ({ENGINE}): the run ended after {took:.2f} s")
    assert took < BOUND
    assert run.status == RunStatus.FAILED
    step_run = run.step_runs.get()
    assert step_run.status == RunStatus.FAILED
    assert "ran longer than its time limit of 1 s" in step_run.error and "timeout_seconds" in step_run.error
    assert published(wh) == before


def test_a_statement_deaf_to_the_cancel_is_ended_at_the_hard_limit(loaded, monkeypatch):
    pipeline, total = loaded
    from atlas.warehouse import get_warehouse

    wh = get_warehouse()
    before = published(wh)
    Step.objects.filter(pk=total.pk).update(sql=LONG_SQL, timeout_seconds=1, hard_timeout_seconds=2)
    ends = []
    real = type(wh)._interrupt_sessions

    def deaf(self, sessions, *, terminate):  # a statement that does not heed a cancel: only ending it works
        if not terminate:
            return 0
        ends.append(len(sessions))
        return real(self, sessions, terminate=True)

    monkeypatch.setattr(type(wh), "_interrupt_sessions", deaf)
    run = runner.start_run(pipeline, dispatch=False)
    runner.execute_run(run.pk, only={total.pk})
    run.refresh_from_db()
    assert ends and ends[0] >= 1
    assert run.status == RunStatus.FAILED
    assert "ran longer than its time limit of 1 s" in run.step_runs.get().error
    monkeypatch.undo()
    assert published(wh) == before
    assert tables_in(wh, "navigate") == {"people_total"}  # the staging table was dropped on a new connection


def test_a_statement_after_a_stop_raises_interrupted_not_a_warehouse_error(wh):
    """A statement refused after the cancel raises ``Interrupted``, not a ``WarehouseError`` a caller might catch."""
    from atlas.warehouse import WarehouseError
    from atlas.warehouse.interrupts import Interrupted

    with wh.watch() as watch:
        wh.interrupt(watch, "stopped for the test")
        with pytest.raises(Interrupted, match="stopped for the test") as raised, wh.cursor() as cur:
            cur.execute("SELECT 1")
        assert not isinstance(raised.value, WarehouseError)
    with wh.cursor() as cur:  # outside the watch, the thread's statements run again
        assert cur.execute("SELECT 1").fetchone() == (1,)


# --- limits: definitions -----------------------------------------------------------------
def test_a_hard_limit_below_the_soft_one_is_refused_at_save(wh, simple_pipeline):
    total = simple_pipeline().steps.get(name="total")
    total.timeout_seconds, total.hard_timeout_seconds = 60, 30
    with pytest.raises(ValidationError) as raised:
        total.full_clean()
    assert "must not be below the soft one" in str(raised.value.message_dict["hard_timeout_seconds"])


def test_limits_come_from_the_step_or_the_settings(settings):
    settings.ATLAS_STEP_TIMEOUT_SECONDS, settings.ATLAS_STEP_HARD_TIMEOUT_SECONDS = 100, 160
    assert watchdog.step_limits(Step()) == watchdog.Limits(100, 160)
    assert watchdog.step_limits(Step(timeout_seconds=10, hard_timeout_seconds=20)) == watchdog.Limits(10, 20)
    assert watchdog.step_limits(Step(timeout_seconds=0, hard_timeout_seconds=0)) == watchdog.Limits(None, None)
    # A step's own soft limit above the default hard one: the hard one yields.
    assert watchdog.step_limits(Step(timeout_seconds=500)) == watchdog.Limits(500, 500)
    settings.ATLAS_STEP_TIMEOUT_SECONDS = settings.ATLAS_STEP_HARD_TIMEOUT_SECONDS = 0
    assert watchdog.step_limits(Step()) == watchdog.Limits(None, None)
    with pytest.raises(ValueError, match="must not be below"):
        watchdog.Limits(soft=10, hard=5)
