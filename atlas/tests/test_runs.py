"""One run-record base: every job's history row starts, finishes and fails the same way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from atlas.runs import RunRecordBase, RunStatus
from compliance.models import PiiScan
from pipelines.models import Dataset, PipelineRun, StepRun
from quality.models import CheckRun
from retention.models import RetentionRun


@pytest.mark.parametrize("model", [PipelineRun, StepRun, PiiScan, CheckRun, RetentionRun])
def test_every_run_record_shares_the_base(model):
    assert issubclass(model, RunRecordBase)
    names = {f.name for f in model._meta.get_fields()}
    assert {"status", "started_at", "finished_at", "error"} <= names


def test_a_run_starts_finishes_and_keeps_its_outcome(db):
    ds = Dataset.objects.create(name="d", layer="chart", table="d")
    run = CheckRun.objects.create(dataset=ds, trigger=CheckRun.Trigger.MANUAL, table="chart.d")
    run.start()
    assert run.status == CheckRun.Status.RUNNING and run.finished_at is None
    run.finish(CheckRun.Status.PASSED, rows_checked=12)
    run.refresh_from_db()
    assert (run.status, run.rows_checked, run.error) == (CheckRun.Status.PASSED, 12, "")
    assert run.finished_at >= run.started_at and run.duration == run.finished_at - run.started_at


def test_a_failure_records_the_error_with_the_records_own_failed_status(db):
    ds = Dataset.objects.create(name="d", layer="chart", table="d")
    check = CheckRun.objects.create(dataset=ds, trigger=CheckRun.Trigger.MANUAL, table="chart.d")
    check.fail("the warehouse refused it")
    check.refresh_from_db()
    assert (check.status, check.error) == (CheckRun.Status.ERROR, "the warehouse refused it")  # FAILED: blocked
    scan = PiiScan.objects.create(dataset=ds)
    scan.fail("no table", traceback="Traceback ...")
    scan.refresh_from_db()
    assert (scan.status, scan.error, scan.traceback) == (RunStatus.FAILED, "no table", "Traceback ...")


def test_a_retry_starts_afresh():
    run = RetentionRun(status=RunStatus.FAILED, error="boom", finished_at=timezone.now())
    run.start(save=False)
    assert (run.status, run.error, run.finished_at) == (RunStatus.RUNNING, "", None)


def test_duration_is_none_before_the_start_and_grows_while_it_runs():
    run = PipelineRun()
    assert run.duration is None
    run.started_at = timezone.now() - timedelta(seconds=5)
    assert run.duration >= timedelta(seconds=5)
    run.finished_at = run.started_at + timedelta(seconds=2)
    assert run.duration == timedelta(seconds=2)
