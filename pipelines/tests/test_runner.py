"""The runner: order, lock, failure, hooks, write modes, cancel — on the engine of this pass."""

import time
from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.utils import timezone

from pipelines import heartbeat, runner
from pipelines.models import PipelineRun, RunStatus, Step, StepRun

from . import hooks_for_tests
from .conftest import run_now
from .faults import start_at_once


def rows(wh, table):
    with wh.cursor() as cur:
        return cur.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def test_a_run_goes_through_all_three_layers_in_data_order(wh, simple_pipeline):
    pipeline = simple_pipeline()
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert [s.step_name for s in run.step_runs.all()] == ["ingest", "refine", "total"]
    assert rows(wh, "chart.people") == [(1, "Ann", 10), (2, "Bob", 20), (3, "Cy", 5)]
    assert rows(wh, "navigate.people_total") == [(3, 35)]
    assert (run.rows_in, run.rows_out, run.rows_rejected) == (3, 3 + 3 + 1, 0)  # in: what the ingest read
    total = pipeline.steps.get(name="total").output
    assert total.row_count == 1 and total.last_loaded_at is not None
    assert [c.name for c in total.columns.all()] == ["people", "amount"]


def test_steps_declared_out_of_order_still_run_in_data_order(wh, simple_pipeline):
    pipeline = simple_pipeline()
    pipeline.steps.filter(name="total").update(position=0)
    pipeline.steps.filter(name="ingest").update(position=9)
    run = run_now(pipeline)
    assert [s.step_name for s in run.step_runs.all()] == ["ingest", "refine", "total"]


def test_a_second_trigger_while_a_run_is_active_is_refused(wh, simple_pipeline):
    pipeline = simple_pipeline()
    first = runner.start_run(pipeline, dispatch=False)
    with pytest.raises(runner.RunAlreadyActive, match=f"already has a run in progress \\(run #{first.pk}"):
        runner.start_run(pipeline, dispatch=False)
    assert PipelineRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_triggers_at_the_same_instant_make_one_run(simple_pipeline):
    outcomes = start_at_once(simple_pipeline(), dispatch=False)
    assert sorted(outcomes, key=str).count("refused") == 1
    assert PipelineRun.objects.count() == 1


def test_executing_a_run_twice_does_nothing_the_second_time(wh, simple_pipeline):
    run = runner.start_run(simple_pipeline(), dispatch=False)
    assert runner.execute_run(run.pk) is not None
    assert runner.execute_run(run.pk) is None
    assert StepRun.objects.count() == 3


def test_a_finished_run_frees_the_lock(wh, simple_pipeline):
    pipeline = simple_pipeline()
    run_now(pipeline)
    assert run_now(pipeline).status == RunStatus.SUCCEEDED


def test_a_disabled_pipeline_is_refused(wh, simple_pipeline):
    pipeline = simple_pipeline()
    pipeline.enabled = False
    pipeline.save()
    with pytest.raises(runner.RunRefused, match="disabled"):
        runner.start_run(pipeline)


def test_a_failing_step_fails_the_run_and_leaves_published_tables_as_they_were(wh, simple_pipeline):
    pipeline = simple_pipeline()
    run_now(pipeline)
    before = rows(wh, "chart.people")
    pipeline.steps.filter(name="refine").update(
        sql="SELECT CAST(name AS integer) AS id, name, CAST(amount AS numeric(12, 2)) AS amount FROM explore.people"
    )
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    refine = run.step_runs.get(step_name="refine")
    assert refine.status == RunStatus.FAILED and refine.error and "Traceback" in refine.traceback
    assert "Step 'refine' failed" in run.error
    total = run.step_runs.get(step_name="total")  # downstream of the failure: skipped, with the reason
    assert total.status == RunStatus.SKIPPED and total.error == "Skipped: upstream 'refine' failed."
    assert rows(wh, "chart.people") == before
    with wh.cursor() as cur:
        left = cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE %s", ["%\\_\\_stg%"]
        ).fetchall()
    assert left == []


DEDUP_SQL = (
    "SELECT DISTINCT ON (id) id, name, amount FROM (SELECT CAST(id AS integer) AS id, name,"
    " CAST(amount AS numeric(12,2)) AS amount, _ingested_at, _row_number FROM explore.people) AS t"
    " ORDER BY id, _ingested_at DESC, _row_number DESC"
)


def test_merge_replaces_rows_by_key_and_append_adds(wh, simple_pipeline):
    pipeline = simple_pipeline()
    pipeline.steps.filter(name="refine").update(write_mode="merge", merge_keys="id", sql=DEDUP_SQL)
    run_now(pipeline)
    source = pipeline.steps.get(name="ingest").source
    with open(source.location, "w") as fh:
        fh.write("id,name,amount\n2,Bob,99\n4,Dee,1\n")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert {r[0]: r[2] for r in rows(wh, "chart.people")} == {1: 10, 2: 99, 3: 5, 4: 1}

    pipeline.steps.filter(name="total").update(write_mode="append")
    run_now(pipeline)
    assert rows(wh, "navigate.people_total") == [(4, 115), (4, 115)]


def test_a_merge_with_duplicate_keys_is_refused(wh, simple_pipeline):
    pipeline = simple_pipeline("id,name,amount\n1,A,1\n1,B,2\n")
    run_now(pipeline)
    pipeline.steps.filter(name="refine").update(write_mode="merge", merge_keys="id")
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    assert "appear more than once" in run.step_runs.get(step_name="refine").error


def test_appending_a_result_of_another_shape_is_refused(wh, simple_pipeline):
    pipeline = simple_pipeline()
    run_now(pipeline)
    pipeline.steps.filter(name="total").update(write_mode="append", sql="SELECT count(*) AS n FROM chart.people")
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    assert "differ from the published table (added n; removed amount, people)" in run.step_runs.get(step_name="total").error


def test_step_hooks_are_called_in_order_and_may_rewrite_the_select(wh, simple_pipeline, settings):
    settings.ATLAS_STEP_HOOKS = ["pipelines.tests.hooks_for_tests.Recorder"]
    hooks_for_tests.CALLS.clear()
    pipeline = simple_pipeline()
    pipeline.steps.filter(name="total").update(sql="SELECT 'REWRITE_ME' AS tag, count(*) AS n FROM chart.people")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    stages = [(c[0], c[1]) for c in hooks_for_tests.CALLS]
    assert stages == [
        ("prepare", "ingest"), ("staged", "ingest"), ("published", "ingest"),
        ("prepare", "refine"), ("staged", "refine"), ("published", "refine"),
        ("prepare", "total"), ("staged", "total"), ("published", "total"),
    ]
    assert rows(wh, "navigate.people_total") == [("rewritten", 3)]


def test_a_gate_in_a_hook_blocks_publishing(wh, simple_pipeline, settings):
    settings.ATLAS_STEP_HOOKS = [
        "pipelines.tests.hooks_for_tests.Recorder",
        "pipelines.tests.hooks_for_tests.BlockAggregates",
    ]
    hooks_for_tests.CALLS.clear()
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.FAILED
    assert run.step_runs.get(step_name="total").error == "blocked 1 staged rows"
    assert ("failed", "total", "blocked 1 staged rows") in hooks_for_tests.CALLS
    assert not wh.table_exists("navigate", "people_total")


def test_an_empty_hook_list_works(wh, simple_pipeline, settings):
    settings.ATLAS_STEP_HOOKS = []
    assert run_now(simple_pipeline()).status == RunStatus.SUCCEEDED


def test_cancelling_a_queued_run_frees_the_pipeline(wh, simple_pipeline):
    pipeline = simple_pipeline()
    run = runner.start_run(pipeline, dispatch=False)
    assert runner.cancel_run(run) == "cancelled"
    assert runner.execute_run(run.pk) is None
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run_now(pipeline).status == RunStatus.SUCCEEDED


def test_a_running_run_asked_to_cancel_stops_before_the_next_step(wh, simple_pipeline, settings):
    settings.ATLAS_STEP_HOOKS = ["pipelines.tests.test_runner.CancelAfterIngest"]
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.CANCELLED
    assert [s.status for s in run.step_runs.all()] == ["succeeded", "cancelled", "cancelled"]


class CancelAfterIngest:
    def published(self, ctx):
        if ctx.step.kind == "ingest":
            runner.cancel_run(ctx.run)


def test_a_run_whose_worker_died_is_resumed_by_the_reaper(wh, simple_pipeline, settings):
    pipeline = simple_pipeline()
    run = runner.start_run(pipeline, dispatch=False)
    PipelineRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now() - timedelta(hours=2),
        attempt=1,
    )
    assert runner.reap_stale_runs() == 1  # embedded: the resumed attempt runs in this process
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.attempt == 2


def test_a_lost_run_at_its_attempt_limit_is_failed_with_the_reason(wh, simple_pipeline, settings):
    settings.ATLAS_RUN_MAX_ATTEMPTS = 2
    pipeline = simple_pipeline()
    run = runner.start_run(pipeline, dispatch=False)
    PipelineRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now() - timedelta(hours=2),
        attempt=2,
    )
    assert runner.reap_stale_runs() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "stopped reporting" in run.error
    assert "Not resumed: it had 2 attempts (ATLAS_RUN_MAX_ATTEMPTS=2)" in run.error
    assert run_now(pipeline).status == RunStatus.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_a_missed_heartbeat_does_not_end_the_heartbeat(simple_pipeline, monkeypatch, settings):
    run = runner.start_run(simple_pipeline(), dispatch=False)
    old = timezone.now() - timedelta(hours=2)
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, heartbeat_at=old)
    settings.ATLAS_RUN_HEARTBEAT_SECONDS = 0.01
    beats, write = [], heartbeat.write_all

    def busy_once(registered):  # the first beat meets a busy database, as SQLite under a long hook does
        beats.append(1)
        if len(beats) == 1:
            raise DatabaseError("database is locked")
        return write(registered)

    monkeypatch.setattr(heartbeat, "write_all", busy_once)
    with runner._Heartbeat(run.pk):
        deadline = time.monotonic() + 10
        while PipelineRun.objects.get(pk=run.pk).heartbeat_at == old and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(beats) >= 2 and PipelineRun.objects.get(pk=run.pk).heartbeat_at > old


def test_a_pipeline_without_steps_fails_clearly(wh, db):
    from pipelines.models import Pipeline

    run = run_now(Pipeline.objects.create(name="empty"))
    assert run.status == RunStatus.FAILED and "has no steps" in run.error


def test_a_step_whose_input_was_never_loaded_fails_clearly(wh, simple_pipeline):
    pipeline = simple_pipeline()
    pipeline.steps.get(name="ingest").delete()
    Step.objects.filter(pipeline=pipeline)  # refine now reads explore.people, produced by nobody
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    assert "reads explore.people, which no step produces" in run.error
