"""The PII scan after an ingest is part of the run's recoverable state (issue 14).

A worker killed during the scan left it "running" forever, and the file, skipped by
checksum afterwards, was never scanned. Now the resumed run re-does the scan (the
interrupted one ends failed, with the reason); a run not resumed leaves it owed to the
pipeline's next run. (Issue 20: the scan is a task of its own, queued by the ingest and run
by the run after its steps or before a step whose gate needs it: compliance.scan_tasks.)
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance import detection
from compliance.models import PiiScan
from pipelines import runner
from pipelines.models import PipelineRun, RunStatus
from pipelines.tests.conftest import run_now
from pipelines.tests.faults import Killed

pytestmark = pytest.mark.step_hooks("compliance.hooks.PiiHook")


@pytest.fixture
def scan_killed_once(monkeypatch):
    """The first scan after an ingest starts (its record "running"), then its worker dies."""
    real, calls = detection.run_scan, []

    def scan(record, **kwargs):
        calls.append(record.dataset.name)
        if len(calls) == 1:
            assert record.status == RunStatus.RUNNING
            raise Killed("the worker died during the scan")
        return real(record, **kwargs)

    monkeypatch.setattr(detection, "run_scan", scan)
    return calls


def kill_and_lose(pipeline) -> PipelineRun:
    run = runner.start_run(pipeline, dispatch=False)
    with pytest.raises(Killed):
        runner.execute_run(run.pk)
    PipelineRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    return run


def test_a_scan_interrupted_with_its_worker_is_failed_and_redone_by_the_resumed_run(
    wh, simple_pipeline, scan_killed_once, settings
):
    settings.PII_SCAN_AFTER_INGEST = True
    run = kill_and_lose(simple_pipeline())
    interrupted = PiiScan.objects.get()
    assert interrupted.status == RunStatus.RUNNING  # as the killed worker left it
    runner.reap_stale_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    interrupted.refresh_from_db()
    assert interrupted.status == RunStatus.FAILED and interrupted.error.startswith("Interrupted")
    redone = PiiScan.objects.exclude(pk=interrupted.pk).get()
    assert redone.status == RunStatus.SUCCEEDED and redone.dataset == interrupted.dataset
    assert not PiiScan.objects.filter(status=RunStatus.RUNNING).exists()


def test_a_scan_owed_by_a_run_not_resumed_is_done_by_the_next_run(wh, simple_pipeline, scan_killed_once, settings):
    settings.PII_SCAN_AFTER_INGEST, settings.ATLAS_RUN_MAX_ATTEMPTS = True, 1
    pipeline = simple_pipeline()
    run = kill_and_lose(pipeline)
    runner.reap_stale_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "Not resumed" in run.error
    interrupted = PiiScan.objects.get(status=RunStatus.FAILED)  # never "running" forever
    assert interrupted.error.startswith("Interrupted")
    owed = PiiScan.objects.get(status=RunStatus.QUEUED)  # its batches, owed to the dataset's next ingest
    assert owed.batches == interrupted.batches and owed.batches
    nxt = run_now(pipeline)
    assert nxt.step_runs.get(step_name="ingest").status == RunStatus.SKIPPED  # the file: already loaded
    assert PiiScan.objects.filter(status=RunStatus.SUCCEEDED, dataset=interrupted.dataset).count() == 1  # scanned
    owed.refresh_from_db()
    assert owed.status == RunStatus.SUCCEEDED and owed.run == nxt  # adopted by the run that loaded nothing new


def piiscan_queries(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if '"compliance_piiscan"' in q["sql"]]


def test_a_first_attempt_that_queued_no_scan_does_not_look_for_interrupted_ones(wh, simple_pipeline):
    """Issue 14 (a run's fixed cost): no query at its end; the reaper, holding the run from elsewhere, still looks."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from compliance.hooks import PiiHook
    from pipelines.hooks import RunContext
    from pipelines.tests.workers import pooled_pipelines

    assert run_now(simple_pipeline()).status == RunStatus.SUCCEEDED
    scans = PiiScan.objects.count()
    run = runner.start_run(pooled_pipelines(1)[0], dispatch=False)  # one aggregate step: no scan to queue
    with CaptureQueriesContext(connection) as captured:
        runner.execute_run(run.pk)
    assert piiscan_queries(captured) == [], "\n".join(piiscan_queries(captured))
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    elsewhere = PipelineRun.objects.get(pk=run.pk)  # as the reaper or another process reads it: not marked
    with CaptureQueriesContext(connection) as captured:
        PiiHook().run_finished(RunContext(run=elsewhere, status=elsewhere.status))
    assert len(piiscan_queries(captured)) == 1
    assert PiiScan.objects.count() == scans  # and found none of this run's to requeue
