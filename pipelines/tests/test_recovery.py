"""Recovery (issue 14): resume after a lost worker, retries, partial failure, broker down, the janitor.

In this process, on the engine of this pass: a ``Killed`` BaseException stands for
SIGKILL (the run is left as a killed worker leaves it); the real worker, Redis and
SIGKILL are in ``test_faults.py``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, OperationalError
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from atlas.warehouse import WarehouseError
from pipelines import attempts, retries, runner, tasks
from pipelines.hooks import GateFailed
from pipelines.models import (
    PARTIALLY_FAILED,
    Dataset,
    LoadedBatch,
    Pipeline,
    PipelineRun,
    RunAttempt,
    RunStatus,
    Source,
    Step,
)

from .faults import Killed, KillOnce, Published

KILL = "pipelines.tests.faults.KillOnce"
PUBLISHED = "pipelines.tests.faults.Published"


def rows(wh, table):
    with wh.cursor() as cur:
        return cur.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def lose(run: PipelineRun) -> None:
    """The worker of ``run`` is gone: its heartbeat is older than the lost threshold."""
    PipelineRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))


def killed_run(pipeline: Pipeline) -> PipelineRun:
    run = runner.start_run(pipeline, dispatch=False)
    with pytest.raises(Killed):
        runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # as a killed worker leaves it
    return run


@pytest.fixture
def fault_hooks(settings):
    Published.calls.clear()
    KillOnce.arm("", "")  # disarmed until the test arms it
    settings.ATLAS_STEP_HOOKS = [KILL, PUBLISHED]


# --- resume ---------------------------------------------------------------------------------
def test_a_run_killed_after_staging_resumes_at_that_step_and_does_not_redo_the_published_ones(
    wh, simple_pipeline, fault_hooks
):
    pipeline = simple_pipeline()
    KillOnce.arm("staged", "refine")
    run = killed_run(pipeline)
    assert run.step_runs.get(step_name="ingest").status == RunStatus.SUCCEEDED
    assert wh.table_exists("chart", "people") is False  # killed before publishing: not half there
    left = [n for _, n, _ in wh.relations(["chart"]) if attempts.TAG_RE.search(n)]
    assert left == [f"people__r{run.pk}a1_stg"]  # the dead attempt's staging table, named for it

    lose(run)
    assert runner.reap_stale_runs() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempt == 2
    assert rows(wh, "chart.people") == [(1, "Ann", 10), (2, "Bob", 20), (3, "Cy", 5)]
    ingest = run.step_runs.get(step_name="ingest")
    assert LoadedBatch.objects.filter(step_run=ingest).count() == 1  # not loaded again
    assert [c[0] for c in Published.calls] == ["ingest", "refine", "total"]  # once each
    refine = run.step_runs.get(step_name="refine")
    assert refine.tries[0]["error"].startswith("Interrupted: the worker executing it was lost")
    assert refine.tries[0]["run_attempt"] == 1
    outcomes = list(run.attempts.values_list("number", "outcome"))
    assert outcomes == [(1, RunAttempt.Outcome.LOST), (2, RunAttempt.Outcome.ENDED)]

    assert attempts.clean_up_attempts().relations == [f"chart.people__r{run.pk}a1_stg"]
    assert not [n for _, n, _ in wh.relations(["explore", "chart", "navigate"]) if attempts.TAG_RE.search(n)
                and not _is_published_partition(wh, n)]


def _is_published_partition(wh, name: str) -> bool:
    """On PostgreSQL an ingest's staging table becomes a partition of the Explore table (kept)."""
    return wh.dialect == "postgres" and name.startswith("people__")


def test_an_append_step_killed_after_its_publish_committed_is_not_published_twice(wh, simple_pipeline, fault_hooks):
    pipeline = simple_pipeline()
    pipeline.steps.filter(name="refine").update(write_mode="append")
    run_now(pipeline)
    before = rows(wh, "chart.people")
    KillOnce.arm("published", "refine")  # the publish committed; the worker died before its hooks
    run = killed_run(pipeline)
    assert len(rows(wh, "chart.people")) == 2 * len(before)  # the new batch is in, once
    lose(run)
    runner.reap_stale_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(rows(wh, "chart.people")) == 2 * len(before)  # no duplicate rows after the resume
    assert ("refine", run.pk, 2) in Published.calls  # its published hooks, owed, were done


def test_an_append_transform_whose_attempt_died_inside_publish_after_commit_is_not_redone(
    wh, simple_pipeline, settings, monkeypatch
):
    pipeline = simple_pipeline()
    pipeline.steps.filter(name="refine").update(write_mode="append")
    run_now(pipeline)
    before = len(rows(wh, "chart.people"))
    real_publish = type(wh).publish
    calls = []

    def publish_then_die(self, **kwargs):
        result = real_publish(self, **kwargs)
        calls.append(kwargs["target"])
        if len(calls) == 1:
            raise Killed("died right after the publishing transaction committed")
        return result

    monkeypatch.setattr(type(wh), "publish", publish_then_die)
    run = killed_run(pipeline)
    lose(run)
    runner.reap_stale_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(rows(wh, "chart.people")) == 2 * before  # the receipt said: published; not appended again
    assert calls == ["people", "people_total"]


def test_an_ingest_whose_attempt_died_after_publishing_gets_its_published_hooks_on_resume(
    wh, simple_pipeline, fault_hooks, monkeypatch
):
    pipeline = simple_pipeline()
    real = type(wh).publish_batches
    done = []

    def publish_then_die(self, **kwargs):
        real(self, **kwargs)
        done.append(1)
        if len(done) == 1:
            raise Killed("died after the batches were published, before recording it")

    monkeypatch.setattr(type(wh), "publish_batches", publish_then_die)
    run = killed_run(pipeline)
    lose(run)
    runner.reap_stale_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    ingest = run.step_runs.get(step_name="ingest")
    assert ingest.status == RunStatus.SUCCEEDED and ingest.after_publish == "done"
    assert ("ingest", run.pk, 2) in Published.calls  # the PII scan after ingest is not skipped
    assert len(done) == 1  # the files were not loaded again


def test_a_run_that_failed_for_good_with_its_published_hooks_owed_gets_them_from_the_next_run(
    wh, simple_pipeline, fault_hooks, settings
):
    settings.ATLAS_RUN_MAX_ATTEMPTS = 1
    pipeline = simple_pipeline()
    KillOnce.arm("published", "ingest")
    run = killed_run(pipeline)
    lose(run)
    runner.reap_stale_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "Not resumed" in run.error
    assert run.step_runs.get(step_name="ingest").after_publish == "pending"
    Published.calls.clear()
    nxt = run_now(pipeline)
    assert nxt.step_runs.get(step_name="ingest").status == RunStatus.SKIPPED  # the file is already loaded
    assert ("ingest", nxt.pk, 1) in Published.calls  # but its owed hooks (the scan) run now
    assert run.step_runs.get(step_name="ingest").after_publish == "done"


def test_a_lost_run_of_some_steps_resumes_only_those(wh, simple_pipeline, fault_hooks):
    pipeline = simple_pipeline()
    run_now(pipeline)
    KillOnce.arm("staged", "refine")
    run = runner.start_run(pipeline, dispatch=False)
    with pytest.raises(Killed):
        runner.execute_run(run.pk, only={pipeline.steps.get(name="refine").pk})  # as the privacy rebuild does
    lose(run)
    runner.reap_stale_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and [sr.step_name for sr in run.step_runs.all()] == ["refine"]


class _DiesMidWork:
    def begin(self, ctx):
        return None

    def run(self, ctx, *, progress):
        raise Killed("the process re-processing quarantined rows died")


def test_a_lost_run_doing_work_of_its_own_is_failed_not_resumed(wh, simple_pipeline):
    pipeline = simple_pipeline()
    step = pipeline.steps.get(name="ingest")
    with pytest.raises(Killed):
        runner.run_work(step, _DiesMidWork(), origin="reprocess")
    run = PipelineRun.objects.get()
    lose(run)
    runner.reap_stale_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "Not resumed: its work cannot be resumed by a worker" in run.error
    assert run.step_runs.get().status == RunStatus.FAILED


def test_the_redelivered_task_of_a_killed_worker_takes_the_run_over_once_its_heartbeat_is_silent(
    wh, simple_pipeline, settings
):
    pipeline = simple_pipeline()
    run = runner.start_run(pipeline, dispatch=False)
    PipelineRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, attempt=1, celery_task_id="task-1", heartbeat_at=timezone.now()
    )
    RunAttempt.objects.create(run=run, number=1, celery_task_id="task-1")
    # Heartbeat still fresh: the worker may be alive; the redelivered task must not run it twice.
    assert runner.execute_run(run.pk, task_id="task-1") is None
    assert runner.awaiting_takeover(run.pk, "task-1") and not runner.awaiting_takeover(run.pk, "other")
    lose(run)
    resumed = runner.execute_run(run.pk, task_id="task-1")
    assert resumed is not None and resumed.status == RunStatus.SUCCEEDED and resumed.attempt == 2
    assert RunAttempt.objects.get(run=run, number=1).outcome == RunAttempt.Outcome.LOST


def test_a_superseded_attempt_stops_without_recording(wh, simple_pipeline, settings):
    run = runner.start_run(simple_pipeline(), dispatch=False)
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, attempt=3)
    beat = runner._Heartbeat(run.pk, 2)  # attempt 2 was declared lost; attempt 3 runs
    beat.write()
    assert beat.superseded


# --- queued runs, the broker ------------------------------------------------------------------
def test_a_queued_run_never_sent_is_sent_by_the_reaper(wh, simple_pipeline):
    pipeline = simple_pipeline()
    run = runner.start_run(pipeline, dispatch=False)  # as if the process died before sending
    assert runner.reap_stale_runs() == 0  # just created: its sender may be sending now
    PipelineRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(seconds=30))
    assert runner.reap_stale_runs() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED


def test_a_queued_run_sent_but_never_taken_is_sent_again_at_doubling_intervals(
    wh, simple_pipeline, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    sent = []
    monkeypatch.setattr(tasks.execute_run_task, "delay", lambda run_id: sent.append(run_id) or _Result(len(sent)))
    with django_capture_on_commit_callbacks(execute=True):
        run = runner.start_run(simple_pipeline())
    assert sent == [run.pk]
    assert runner.reap_stale_runs() == 0
    PipelineRun.objects.filter(pk=run.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.ATLAS_RUN_REDISPATCH_SECONDS + 1)
    )
    assert runner.reap_stale_runs() == 1 and sent == [run.pk, run.pk]
    PipelineRun.objects.filter(pk=run.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.ATLAS_RUN_REDISPATCH_SECONDS + 1)
    )
    assert runner.reap_stale_runs() == 0  # the second wait is twice as long
    run.refresh_from_db()
    assert run.dispatches == 2 and run.celery_task_id == "task-2"


def test_a_queued_run_no_worker_takes_is_failed_after_its_last_dispatch_saying_where_to_look(
    wh, simple_pipeline, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER, settings.ATLAS_RUN_MAX_DISPATCHES = False, 2
    sent = []
    monkeypatch.setattr(tasks.execute_run_task, "delay", lambda run_id: sent.append(run_id) or _Result(len(sent)))
    with django_capture_on_commit_callbacks(execute=True):
        run = runner.start_run(simple_pipeline())
    long_ago = timezone.now() - timedelta(hours=1)
    PipelineRun.objects.filter(pk=run.pk).update(dispatched_at=long_ago)
    assert runner.reap_stale_runs() == 1 and len(sent) == 2  # sent again: the second dispatch
    PipelineRun.objects.filter(pk=run.pk).update(dispatched_at=long_ago)
    assert runner.reap_stale_runs() == 1 and len(sent) == 2  # not a third time: failed
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.finished_at is not None
    assert "No worker took this run: it was sent 2 times" in run.error and "'celery'" in run.error
    assert runner.start_run(run.pipeline, dispatch=False).status == RunStatus.QUEUED  # the pipeline is free again


class _Result:
    def __init__(self, n: int) -> None:
        self.id = f"task-{n}"


@pytest.fixture
def broker_down(settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False

    def refuse(run_id):
        raise KombuOperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.execute_run_task, "delay", refuse)


@pytest.mark.django_db(transaction=True)
def test_a_trigger_while_the_broker_is_down_fails_clearly_and_leaves_nothing_queued(simple_pipeline, broker_down):
    pipeline = simple_pipeline()
    with pytest.raises(runner.BrokerUnavailable) as caught:
        runner.start_run(pipeline)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("The task queue (broker) cannot be reached")
    assert "Connection refused" in message
    run = PipelineRun.objects.get()
    assert run.status == RunStatus.FAILED and run.error == message
    assert not PipelineRun.objects.active().exists()


@pytest.mark.django_db(transaction=True)
def test_run_pipeline_with_the_broker_down_prints_one_line(simple_pipeline, broker_down):
    simple_pipeline()
    with pytest.raises(CommandError) as caught:
        call_command("run_pipeline", "people")
    assert "\n" not in str(caught.value) and "broker" in str(caught.value)


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_503_with_one_line_when_the_broker_is_down(simple_pipeline, broker_down, admin_client):
    pipeline = simple_pipeline()
    response = admin_client.post(f"/api/v1/pipelines/{pipeline.pk}/run/")
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["error"]["code"] == "broker_unavailable" and "\n" not in body["error"]["message"]
    assert not PipelineRun.objects.active().exists()


@pytest.mark.django_db(transaction=True)
def test_the_admin_says_the_broker_is_down_in_one_message(simple_pipeline, broker_down, admin_client):
    pipeline = simple_pipeline()
    response = admin_client.post(f"/admin/pipelines/pipeline/{pipeline.pk}/run/", follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) == 1 and shown[0].startswith("The task queue (broker) cannot be reached")
    assert not PipelineRun.objects.active().exists()


# --- retries ------------------------------------------------------------------------------------
class FlakyOnce:
    """Raise the configured error once, in ``prepare`` of the refine step."""

    error: BaseException | None = None
    times = 1

    def prepare(self, ctx):
        if ctx.step.name == "refine" and type(self).times > 0:
            type(self).times -= 1
            raise type(self).error


@pytest.fixture
def flaky(settings):
    settings.ATLAS_STEP_HOOKS = ["pipelines.tests.test_recovery.FlakyOnce"]
    settings.ATLAS_STEP_RETRY_BASE_SECONDS = 0.01
    settings.ATLAS_STEP_RETRY_MAX_SECONDS = 0.02
    return FlakyOnce


def lost_connection() -> WarehouseError:
    try:
        raise psycopg.OperationalError("server closed the connection unexpectedly")
    except psycopg.OperationalError as exc:
        try:
            raise WarehouseError("server closed the connection unexpectedly") from exc
        except WarehouseError as wrapped:
            return wrapped


def test_a_step_failing_on_a_lost_connection_is_retried_and_each_try_is_kept(wh, simple_pipeline, flaky):
    flaky.error, flaky.times = lost_connection(), 1
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.SUCCEEDED, run.error
    refine = run.step_runs.get(step_name="refine")
    assert [t["try"] for t in refine.tries] == [1, 2]
    assert refine.tries[0]["transient"] is True and "server closed the connection" in refine.tries[0]["error"]
    assert 0 < refine.tries[0]["retry_in"] <= 0.02 and refine.tries[1]["error"] == ""


def test_a_step_failing_on_transient_errors_past_its_retries_fails_with_every_try(wh, simple_pipeline, flaky, settings):
    settings.ATLAS_STEP_RETRIES = 2
    flaky.error, flaky.times = lost_connection(), 5
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.FAILED
    refine = run.step_runs.get(step_name="refine")
    assert len(refine.tries) == 3 and all(t["transient"] for t in refine.tries)


@pytest.mark.parametrize(
    "error",
    [GateFailed("3 rows fail the not-null check on id"), WarehouseError('syntax error at or near "SELEC"')],
    ids=["failing-check", "sql-error"],
)
def test_data_errors_are_never_retried(wh, simple_pipeline, flaky, error):
    flaky.error, flaky.times = error, 1
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.FAILED
    refine = run.step_runs.get(step_name="refine")
    assert len(refine.tries) == 1 and "transient" not in refine.tries[0]


def _psycopg_error(cls):
    return cls("message")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (psycopg.errors.SerializationFailure("could not serialize access"), True),
        (psycopg.errors.DeadlockDetected("deadlock detected"), True),
        (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), True),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (KombuOperationalError("Error 111 connecting"), True),
        (psycopg.errors.QueryCanceled("canceling statement due to user request"), False),
        (psycopg.errors.SyntaxError("syntax error"), False),
        (psycopg.errors.UniqueViolation("duplicate key"), False),
        (GateFailed("check failed"), False),
        (ValueError("bad value"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_only_an_allowlist_of_errors_is_transient(error, transient):
    assert retries.is_transient(error) is transient
    try:
        raise WarehouseError("wrapped") from error
    except WarehouseError as wrapped:
        assert retries.is_transient(wrapped) is transient  # as the warehouse raises them


def test_a_lost_django_connection_is_transient():
    assert retries.is_transient(OperationalError("server closed the connection unexpectedly")) is True
    assert retries.is_transient(OperationalError("database is locked")) is True
    assert retries.is_transient(DatabaseError("value too long for type character varying(10)")) is False


def test_backoff_is_exponential_capped_and_jittered(settings):
    settings.ATLAS_STEP_RETRY_BASE_SECONDS, settings.ATLAS_STEP_RETRY_MAX_SECONDS = 2.0, 10.0
    rng = random.Random(7)
    waits = [[retries.backoff_seconds(n, rng=rng) for _ in range(50)] for n in (1, 2, 3, 4, 5)]
    for n, ceiling in zip((1, 2, 3, 4, 5), (2, 4, 8, 10, 10), strict=True):
        drawn = waits[n - 1]
        assert all(ceiling / 2 <= w <= ceiling for w in drawn)
        assert len({round(w, 6) for w in drawn}) > 40  # jitter: not one instant
    with pytest.raises(ValueError, match="counts from 1"):
        retries.backoff_seconds(0)


# --- recording never depends on what failed -----------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_write_that_meets_a_lost_connection_is_retried_on_a_fresh_one(monkeypatch):
    from django.db import connection

    closes, calls = [], []
    monkeypatch.setattr(connection, "close", lambda: closes.append(1))

    def write():
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return "stored"

    monkeypatch.setattr(runner.time, "sleep", lambda s: None)
    assert runner.durably(write, "a test write") == "stored"
    assert len(calls) == 2 and closes == [1]


# --- partial failure ------------------------------------------------------------------------------
@pytest.fixture
def two_branches(db, make_csv):
    """Two independent branches: a (ingest, refine) and b (ingest, refine), plus a join of both."""

    def build() -> Pipeline:
        pipeline = Pipeline.objects.create(name="branches")
        for i, name in enumerate(("a", "b")):
            src = Source.objects.create(name=f"src_{name}", location=str(make_csv(f"id,v\n1,{i}\n2,{i + 1}\n", f"{name}.csv")))
            raw = Dataset.objects.create(name=f"raw_{name}", layer="explore", table=f"raw_{name}")
            clean = Dataset.objects.create(name=f"clean_{name}", layer="chart", table=f"clean_{name}")
            Step.objects.create(pipeline=pipeline, name=f"load_{name}", kind="ingest", source=src, output=raw)
            Step.objects.create(
                pipeline=pipeline, name=f"refine_{name}", kind="refine", output=clean, position=1,
                sql=f"SELECT CAST(id AS integer) AS id, CAST(v AS integer) AS v FROM explore.raw_{name}",
            )
        joined = Dataset.objects.create(name="joined", layer="navigate", table="joined")
        Step.objects.create(
            pipeline=pipeline, name="join", kind="aggregate", output=joined, position=2,
            sql="SELECT a.id, a.v AS a, b.v AS b FROM chart.clean_a AS a JOIN chart.clean_b AS b ON a.id = b.id",
        )
        return pipeline

    return build


def test_a_failed_step_skips_only_its_downstream_and_the_run_ends_partially_failed(wh, two_branches):
    pipeline = two_branches()
    pipeline.steps.filter(name="refine_a").update(sql="SELECT CAST(v AS integer) / 0 AS id FROM explore.raw_a")
    run = run_now(pipeline)
    status = {sr.step_name: (sr.status, sr.error) for sr in run.step_runs.all()}
    assert status["refine_a"][0] == RunStatus.FAILED
    assert status["refine_b"] == (RunStatus.SUCCEEDED, "")  # the independent branch went on
    assert status["join"] == (RunStatus.SKIPPED, "Skipped: upstream 'refine_a' failed.")
    assert run.status == PARTIALLY_FAILED
    assert run.error.startswith("Step 'refine_a' failed:")
    assert "1 failed (refine_a); 1 skipped as their upstream failed (join); 3 succeeded" in run.error
    assert rows(wh, "chart.clean_b") == [(1, 1), (2, 2)]


def test_re_running_the_failed_and_skipped_steps_runs_only_them(wh, two_branches, django_capture_on_commit_callbacks):
    pipeline = two_branches()
    good_sql = pipeline.steps.get(name="refine_a").sql
    pipeline.steps.filter(name="refine_a").update(sql="SELECT CAST(v AS integer) / 0 AS id FROM explore.raw_a")
    first = run_now(pipeline)
    pipeline.steps.filter(name="refine_a").update(sql=good_sql)
    with django_capture_on_commit_callbacks(execute=True):  # embedded: the re-run executes here
        rerun = runner.rerun_failed(first)
    rerun.refresh_from_db()
    assert rerun.status == RunStatus.SUCCEEDED, rerun.error
    assert rerun.rerun_of == first
    assert sorted(sr.step_name for sr in rerun.step_runs.all()) == ["join", "refine_a"]
    assert rows(wh, "navigate.joined") == [(1, 0, 1), (2, 1, 2)]
    with pytest.raises(runner.RunRefused, match="only a failed or partially failed run"):
        runner.rerun_failed(rerun)


def test_a_failure_in_a_chain_fails_the_run(wh, simple_pipeline):
    pipeline = simple_pipeline()
    pipeline.steps.filter(name="ingest").update(max_rejected_share=0)
    pipeline.steps.filter(name="refine").update(sql="SELECT nothing FROM explore.people")
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED  # nothing independent of the failure succeeded


def test_rerun_from_manage_py_and_the_api(wh, two_branches, admin_client):
    pipeline = two_branches()
    good_sql = pipeline.steps.get(name="refine_a").sql
    pipeline.steps.filter(name="refine_a").update(sql="SELECT CAST(v AS integer) / 0 AS id FROM explore.raw_a")
    first = run_now(pipeline)
    pipeline.steps.filter(name="refine_a").update(sql=good_sql)
    call_command("run_pipeline", "branches", "--rerun-failed", str(first.pk))
    rerun = PipelineRun.objects.get(rerun_of=first)
    assert rerun.status == RunStatus.SUCCEEDED
    response = admin_client.post(f"/api/v1/runs/{rerun.pk}/rerun-failed/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "run_refused"
    with pytest.raises(CommandError, match="only a failed or partially failed run"):
        call_command("run_pipeline", "branches", "--rerun-failed", str(rerun.pk))
    pipeline.steps.filter(name="refine_b").update(sql="SELECT CAST(v AS integer) / 0 AS id FROM explore.raw_b")
    second = run_now(pipeline)
    pipeline.steps.filter(name="refine_b").update(sql=good_sql.replace("raw_a", "raw_b"))
    response = admin_client.post(f"/api/v1/runs/{second.pk}/rerun-failed/")
    assert response.status_code == 201, response.content
    assert response.json()["rerun_of"] == second.pk


# --- the janitor ---------------------------------------------------------------------------------
def test_the_janitor_drops_only_what_dead_attempts_left(wh, simple_pipeline, tmp_path, settings):
    pipeline = simple_pipeline()
    done = run_now(pipeline)
    live = runner.start_run(pipeline, dispatch=False)
    PipelineRun.objects.filter(pk=live.pk).update(status=RunStatus.RUNNING, attempt=2, heartbeat_at=timezone.now())
    wh.ensure_schemas()
    names = {
        "dead_run": f"people__r{done.pk}a1_stg",  # a run that ended
        "lost_attempt": f"people__r{live.pk}a1_stg",  # attempt 1 of a run now at attempt 2
        "live_attempt": f"people__r{live.pk}a2_stg",
    }
    with wh.cursor() as cur:
        for name in names.values():
            cur.execute(f'CREATE TABLE chart."{name}" (id integer)')
    cleaned = attempts.clean_up_attempts()
    assert sorted(cleaned.relations) == sorted([f"chart.{names['dead_run']}", f"chart.{names['lost_attempt']}"])
    left = {n for _, n, _ in wh.relations(["chart", "navigate", "explore"])}
    assert names["live_attempt"] in left and {"people", "people_total"} <= left


def _quarantined_batches(wh, table: str) -> dict[str, int]:
    if not wh.table_exists("explore", f"{table}__quarantine"):
        return {}
    with wh.cursor() as cur:
        got = cur.execute(f'SELECT "_batch_id", count(*) FROM explore."{table}__quarantine" GROUP BY 1').fetchall()
    return {b: int(n) for b, n in got}


def test_the_janitor_deletes_the_quarantine_rows_of_a_dead_attempts_unpublished_batch_and_keeps_the_rest(
    wh, simple_pipeline, fault_hooks, settings
):
    """Published batches' rejects and a refused file's rejects are evidence; a dead attempt's are not."""
    settings.ATLAS_RUN_MAX_ATTEMPTS = 1  # the lost attempt is not resumed: its batch is never published
    pipeline = simple_pipeline("id,name,amount\n1,Ann,10\n2,Bob,20,extra\n3,Cy,5\n", max_rejected_share=0.5)
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    published = _quarantined_batches(wh, "people")
    assert list(published.values()) == [1]

    path = Path(pipeline.steps.get(name="ingest").source.location)
    path.write_text("id,name,amount\n4,Dee,7\n5,Eve,8,extra\n")
    KillOnce.arm("staged", "ingest")
    dead = killed_run(pipeline)
    lose(dead)
    runner.reap_stale_runs()
    dead.refresh_from_db()
    assert dead.status == RunStatus.FAILED
    orphan = set(_quarantined_batches(wh, "people")) - set(published)
    assert len(orphan) == 1  # the dead attempt's reject, of a batch never published

    path.write_text("id,name,amount\n6,x,1,extra\n7,y,2,extra\n8,z,3\n")  # over the limit: refused
    assert run_now(pipeline).status == RunStatus.FAILED
    refused = set(_quarantined_batches(wh, "people")) - set(published) - orphan
    assert LoadedBatch.objects.get(batch_id__in=refused).status == LoadedBatch.Status.REJECTED

    cleaned = attempts.clean_up_attempts()
    assert cleaned.quarantine_rows == 1
    left = _quarantined_batches(wh, "people")
    assert set(left) == set(published) | refused and not orphan & set(left)
    assert attempts.clean_up_attempts().quarantine_rows == 0  # nothing more on the next pass


def test_the_janitor_keeps_a_quarantine_batch_a_live_run_may_still_publish(wh, simple_pipeline, fault_hooks):
    pipeline = simple_pipeline("id,name,amount\n1,Ann,10\n2,Bob,20,extra\n", max_rejected_share=0.5)
    KillOnce.arm("staged", "ingest")
    run = killed_run(pipeline)  # running, its heartbeat not yet silent
    assert len(_quarantined_batches(wh, "people")) == 1
    assert attempts.clean_up_attempts().quarantine_rows == 0
    lose(run)
    runner.reap_stale_runs()  # resumed: the file staged again, its earlier rejects replaced
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert list(_quarantined_batches(wh, "people").values()) == [1]
    assert attempts.clean_up_attempts().quarantine_rows == 0


def test_the_janitor_drops_what_releases_before_per_attempt_naming_left(wh, simple_pipeline, monkeypatch):
    """``people__stg<run>`` (transform), ``people__b<batch>`` (ingest), ``b<batch>_p<n>``/``_rn<n>`` (direct COPY)."""
    pipeline = simple_pipeline()
    over = run_now(pipeline)
    ingest = over.step_runs.get(step_name="ingest")
    running = runner.start_run(pipeline, dispatch=False)
    PipelineRun.objects.filter(pk=running.pk).update(status=RunStatus.RUNNING, heartbeat_at=timezone.now())
    ended_batch, running_batch, unknown_batch = "b" + "1" * 16, "b" + "2" * 16, "b" + "3" * 16
    raw = Dataset.objects.get(layer="explore", table="people")
    LoadedBatch.objects.create(dataset=raw, step_run=ingest, batch_id=ended_batch, file="f", checksum="c1", status="loaded")
    step_running = running.step_runs.create(step_name="ingest", kind="ingest", position=0)
    LoadedBatch.objects.create(dataset=raw, step_run=step_running, batch_id=running_batch, file="f", checksum="c2",
                               status="loaded")
    named_like_one = Dataset.objects.create(name="odd", layer="explore", table=f"{unknown_batch}_p2")
    tables = {
        ("chart", f"people__stg{over.pk}"): True,  # the run is over
        ("chart", f"people__stg{running.pk}"): False,  # the run may still use it
        ("explore", f"people__{ended_batch}"): True,
        ("explore", f"{ended_batch}_p1"): True,
        ("explore", f"people__{running_batch}"): False,
        ("explore", f"{unknown_batch}_p1"): "when idle",  # no record: only when no run is running
        ("explore", named_like_one.table): False,  # a dataset's own table, whatever its name
    }
    wh.ensure_quarantine_table("explore", "people")
    sequences = set()
    with wh.cursor() as cur:
        for schema, name in tables:
            cur.execute(f'CREATE TABLE {schema}."{name}" (id integer)')
        if wh.dialect == "postgres":  # the direct COPY (PostgreSQL only) numbered a part's rows from one
            cur.execute(f'CREATE SEQUENCE explore."{ended_batch}_rn1"')
            sequences.add(f"explore.{ended_batch}_rn1")
    dropped = set(attempts.clean_up_attempts().relations)
    assert dropped == {f"{s}.{n}" for (s, n), gone in tables.items() if gone is True} | sequences

    PipelineRun.objects.filter(pk=running.pk).update(status=RunStatus.FAILED)
    dropped = set(attempts.clean_up_attempts().relations)
    assert dropped == {f"chart.people__stg{running.pk}", f"explore.people__{running_batch}", f"explore.{unknown_batch}_p1"}
    left = {n for _, n, _ in wh.relations(["explore", "chart"])}
    assert {"people", "people__quarantine", named_like_one.table} <= left


@pytest.mark.parametrize(
    "name, owner",
    [("orders__stg12", ("run", "12")), ("orders__b0123456789abcdef", ("batch", "b0123456789abcdef")),
     ("b0123456789abcdef_p3", ("batch", "b0123456789abcdef")), ("b0123456789abcdef_rn0", ("batch", "b0123456789abcdef")),
     ("orders", None), ("orders__quarantine", None), ("orders__r3a1_stg", None), ("b0123_p1", None),
     ("stg12", None), ("orders__stg", None)],
)
def test_legacy_names_are_recognised_exactly(name, owner):
    assert attempts.legacy_owner(name) == owner


def test_the_janitor_removes_load_directories_of_processes_that_are_gone(tmp_path, settings, monkeypatch, db, wh):
    settings.VAR_DIR = tmp_path
    base = tmp_path / "tmp"
    base.mkdir()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a process, then killed
    child.kill()
    child.wait()
    dead_pid = child.pid
    gone = base / f"atlas-src-{dead_pid}-abc"
    mine = base / f"atlas-src-{os.getpid()}-def"
    young = base / f"atlas-load-{dead_pid}-new"
    other = base / "someone-else"
    for d in (gone, mine, young, other):
        d.mkdir()
        os.mkfifo(d / "rows.csv")  # what a COPY through DuckDB leaves
    past = time.time() - 3600
    for d in (gone, mine, other):
        os.utime(d, (past, past))
    cleaned = attempts.clean_up_attempts(temp_age_seconds=600)
    assert str(gone) in cleaned.directories
    assert not gone.exists() and mine.exists() and young.exists() and other.exists()


def test_staging_names_carry_the_attempt_and_fit_postgresql():
    tag = attempts.attempt_tag(123456789, 12)
    name = attempts.ingest_staging_name("x" * 48, tag, "b" + "f" * 16)
    assert len(name) <= 58 and attempts.TAG_RE.search(name).groups() == ("123456789", "12")
    assert attempts.TAG_RE.search(attempts.transform_staging_name("y" * 48, tag))
    assert not attempts.TAG_RE.search("people__quarantine")


def test_the_reaper_and_janitor_are_beat_jobs_at_the_heartbeat_cadence(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["atlas: reap stale runs"]["schedule"] == settings.ATLAS_RUN_HEARTBEAT_SECONDS
    assert schedule["atlas: clean up after dead attempts"]["task"] == "pipelines.clean_up_attempts"
    assert settings.ATLAS_RUN_LOST_SECONDS <= 2 * settings.ATLAS_RUN_HEARTBEAT_SECONDS + 1


from .conftest import run_now  # noqa: E402
