"""The process's one heartbeat thread for every run it executes (a worker's pool of threads runs many)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pipelines import heartbeat, runner
from pipelines.models import Pipeline, PipelineRun, RunStatus

from .conftest import run_now
from .workers import pooled_pipelines

OLD = timezone.now() - timedelta(hours=2)


def running(n: int) -> list[PipelineRun]:
    """``n`` runs of ``n`` pipelines, marked running as attempt 1 with a heartbeat two hours old."""
    runs = []
    for i in range(n):
        run = runner.start_run(Pipeline.objects.create(name=f"beating_{i}"), dispatch=False)
        PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, attempt=1, heartbeat_at=OLD)
        runs.append(run)
    return runs


def beats_of(runs: list[PipelineRun]) -> dict[int, object]:
    return dict(PipelineRun.objects.filter(pk__in=[r.pk for r in runs]).values_list("pk", "heartbeat_at"))


def test_every_run_of_the_process_is_marked_in_one_statement_and_the_taken_over_one_is_flagged(db):
    runs = running(3)
    beats = [heartbeat.RunHeartbeat(r.pk, 1) for r in runs]
    with CaptureQueriesContext(connection) as captured:  # 3 runs, 1 UPDATE (of those not locked now)
        assert heartbeat.write_all(beats) == 3
    assert [q["sql"].split()[0] for q in captured if "SAVEPOINT" not in q["sql"]] == ["UPDATE"]
    assert all(at > OLD for at in beats_of(runs).values())
    assert not any(b.superseded for b in beats)

    PipelineRun.objects.filter(pk=runs[1].pk).update(attempt=2, heartbeat_at=OLD)  # taken over by attempt 2
    PipelineRun.objects.filter(pk=runs[2].pk).update(status=RunStatus.SUCCEEDED, heartbeat_at=OLD)  # over
    assert heartbeat.write_all(beats) == 1
    assert [b.superseded for b in beats] == [False, True, False]  # over is not taken over
    assert beats_of(runs)[runs[1].pk] == OLD  # another attempt's run is not marked by this one


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_skips_a_run_whose_row_is_locked_instead_of_waiting_for_it():
    """Found on Spark (issue 21): a beat queued behind the row lock of a run's open transaction, and the
    run's end then waited for the beating thread (16 s of a 42 s test). A beat never waits for a writer."""
    locked, free = running(2)
    beats = [heartbeat.RunHeartbeat(locked.pk, 1), heartbeat.RunHeartbeat(free.pk, 1)]
    done: list[int] = []

    def beat_from_another_connection() -> None:
        try:
            done.append(heartbeat.write_all(beats))
        finally:
            connections.close_all()

    with transaction.atomic():  # a writer holds the row of one run
        PipelineRun.objects.filter(pk=locked.pk).update(current_step="busy")
        thread = threading.Thread(target=beat_from_another_connection)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive() and done == [1]  # it did not wait: the other run is marked
    assert beats_of([locked])[locked.pk] == OLD and beats_of([free])[free.pk] > OLD
    assert not any(b.superseded for b in beats)  # skipped is not taken over


@pytest.mark.django_db(transaction=True)
def test_on_sqlite_a_heartbeat_gives_up_a_held_write_lock_soon_and_the_run_ending_does_not_wait(settings):
    """Found on Spark (issue 21), the embedded default's metadata: the beat waited SQLite's 30 s for the write
    lock of a transaction still open, and the run ending waited for the beat (16 s of a 42 s test)."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's single write lock (PostgreSQL skips a locked row: the test above)")
    settings.ATLAS_RUN_HEARTBEAT_SECONDS = 0.05
    (run,) = running(1)
    with transaction.atomic():  # the write lock held, as a hook's transaction or a test's holds it
        PipelineRun.objects.filter(pk=run.pk).update(current_step="busy")
        with heartbeat.RunHeartbeat(run.pk, 1):
            time.sleep(0.3)  # the beat is now waiting for the lock
            started = time.monotonic()
        waited = time.monotonic() - started  # (the run's end, still inside its transaction)
    assert waited < heartbeat.SQLITE_LOCK_WAIT_MS / 1000 + 5  # a moment, not the connection's 30 s
    assert heartbeat.BEATS.registered() == []


@pytest.mark.django_db(transaction=True)
def test_one_thread_beats_for_all_registered_runs_and_ends_with_the_last(settings):
    settings.ATLAS_RUN_HEARTBEAT_SECONDS = 0.05
    runs = running(3)
    before = {t.name for t in threading.enumerate()}
    with heartbeat.RunHeartbeat(runs[0].pk, 1), heartbeat.RunHeartbeat(runs[1].pk, 1), \
            heartbeat.RunHeartbeat(runs[2].pk, 1):
        beaters = [t for t in threading.enumerate() if t.name == "atlas-heartbeat"]
        assert len(beaters) == 1 and "atlas-heartbeat" not in before
        deadline = time.monotonic() + 10
        while any(at == OLD for at in beats_of(runs).values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(at > OLD for at in beats_of(runs).values())
    assert not beaters[0].is_alive()  # the last run out waited for the thread to end (its connection closed)
    assert heartbeat.BEATS.registered() == []


@pytest.mark.django_db(transaction=True)
def test_runs_executed_by_a_pool_of_threads_share_the_heartbeat_and_all_succeed(wh, simple_pipeline, settings):
    """Four runs at once in four threads of one process, as a worker's thread pool executes them."""
    settings.ATLAS_RUN_HEARTBEAT_SECONDS = 0.05
    assert run_now(simple_pipeline()).status == RunStatus.SUCCEEDED  # chart.people, which they all read
    pipelines = pooled_pipelines(4)
    runs = [runner.start_run(p, dispatch=False) for p in pipelines]
    threads = [threading.Thread(target=runner._execute_in_thread, args=(r.pk,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for r in runs:
        r.refresh_from_db()
        assert r.status == RunStatus.SUCCEEDED, r.error
        assert r.attempts.get().worker.split("/", 1)[1]  # the thread is named: runs share the process
    assert run_now(pipelines[0]).status == RunStatus.SUCCEEDED


def test_cancel_flags_are_read_for_every_run_at_once_and_a_watchdog_reads_its_runs_flag(
    wh, simple_pipeline, django_assert_num_queries
):
    from types import SimpleNamespace

    from pipelines.watchdog import watchdog

    runs = running(3)
    PipelineRun.objects.filter(pk=runs[1].pk).update(cancel_requested=True)
    beats = [heartbeat.RunHeartbeat(r.pk, 1) for r in runs]
    with django_assert_num_queries(1):
        heartbeat.read_cancels(beats)
    assert [b.cancel_requested for b in beats] == [False, True, False]

    step = simple_pipeline().steps.get(name="refine")
    dog = watchdog(SimpleNamespace(run=runs[1], warehouse=wh, step=step))
    with heartbeat.RunHeartbeat(runs[1].pk, 1) as beat:
        with django_assert_num_queries(0):  # executing here: the flag the heartbeat thread keeps
            assert dog.cancelled() is False
        beat.cancel_requested = True
        assert dog.cancelled() is True
    assert dog.cancelled() is True  # not executing here (any more): the database says
