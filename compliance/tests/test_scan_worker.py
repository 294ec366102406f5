"""The post-ingest PII scan as a Celery task of its own, on a real worker of its queue (Redis, PostgreSQL).

The run's process runs the pipeline; a separate ``celery worker -Q atlas.pii_scans`` process runs the
scans its ingests queue. A gate that needs the findings waits for that worker (bounded), and a scan
worker killed in the middle leaves its scan recoverable.
"""

from __future__ import annotations

import os
import signal

import pytest
from django.conf import settings as django_settings

from compliance import scan_tasks
from compliance.models import PiiFinding, PiiScan
from pipelines.models import Dataset, Pipeline, RunStatus, Source, Step
from pipelines.runner import save_step_inputs
from pipelines.tests.workers import _wait_for

from .conftest import CUSTOMERS_CSV, run_now

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True),
              pytest.mark.step_hooks("compliance.hooks.PiiHook")]


def scan_worker(start, tmp_path, *, seconds: float = 0.0, **env: str):
    """A worker of the PII scan queue only (solo: the scan runs in its main process, which a test may kill)."""
    mark = tmp_path / "scan-worker.pid"
    return start(
        "worker", "--pool=solo", "--without-mingle", "--without-gossip", "--without-heartbeat",
        "-Q", django_settings.ATLAS_PII_SCAN_QUEUE, "--include", "compliance.tests.slow_scan",
        ATLAS_TEST_SCAN_MARK=str(mark), ATLAS_TEST_SCAN_SECONDS=str(seconds), **env,
    ), mark


def ingest_and_refine(make_csv):
    """Two pipelines over one dataset: an ingest of customers into Explore, and a refine of it into Chart."""
    source = Source.objects.create(name="customers", location=str(make_csv(CUSTOMERS_CSV, "customers.csv")))
    raw = Dataset.objects.create(name="raw_customers", layer="explore", table="customers")
    clean = Dataset.objects.create(name="customers", layer="chart", table="customers")
    ingest = Pipeline.objects.create(name="ingest_customers")
    Step.objects.create(pipeline=ingest, name="ingest", kind="ingest", source=source, output=raw, write_mode="append")
    refine = Pipeline.objects.create(name="refine_customers")
    Step.objects.create(pipeline=refine, name="refine", kind="refine", output=clean,
                        sql="SELECT customer_id, first_name, email, phone, notes FROM explore.customers")
    for pipeline in (ingest, refine):
        save_step_inputs(pipeline)
    return ingest, refine, raw


def test_the_scan_an_ingest_queues_runs_on_a_worker_of_its_queue_and_the_run_does_not_wait(
    broker, make_csv, start, tmp_path, wh
):
    ingest, _, raw = ingest_and_refine(make_csv)
    run = run_now(ingest)  # the run's end leaves the scan to the scan queue
    assert run.status == RunStatus.SUCCEEDED, run.error
    scan = PiiScan.objects.get(run=run)
    assert scan.status == RunStatus.QUEUED and scan.heartbeat_at is None
    assert not PiiFinding.objects.filter(dataset=raw).exists()

    scan_worker(start, tmp_path)

    def scanned():
        scan.refresh_from_db()
        return scan.status not in (RunStatus.QUEUED, RunStatus.RUNNING)

    _wait_for(scanned, tmp_path, timeout=120)
    assert scan.status == RunStatus.SUCCEEDED, scan.error
    assert scan.heartbeat_at is not None  # run by the scan worker, not by the run
    assert set(PiiFinding.objects.filter(dataset=raw).values_list("column", flat=True)) >= {"email", "phone"}
    assert "Task compliance.run_pii_scan[" in (tmp_path / "worker.log").read_text()


def test_a_gate_waits_for_the_scan_another_worker_runs_and_uses_its_findings(
    broker, make_csv, start, tmp_path, wh, settings
):
    settings.ATLAS_PII_SCAN_POLL_SECONDS = 0.1
    ingest, refine, raw = ingest_and_refine(make_csv)
    _, mark = scan_worker(start, tmp_path, seconds=3.0)
    assert run_now(ingest).status == RunStatus.SUCCEEDED
    _wait_for(mark.exists, tmp_path, timeout=120)  # the scan worker has claimed it and is classifying
    scan = PiiScan.objects.get(run__pipeline=ingest)
    assert scan.status == RunStatus.RUNNING

    run = run_now(refine)  # its gate needs the findings: it waits for the scan worker

    assert run.status == RunStatus.SUCCEEDED, run.error
    scan.refresh_from_db()
    step_run = run.step_runs.get()
    assert scan.status == RunStatus.SUCCEEDED and scan.heartbeat_at is not None
    assert step_run.started_at < scan.finished_at < step_run.finished_at
    # Privacy by default protected what the scan found before the refine wrote Chart.
    assert {"email", "phone"} <= set(step_run.details["pii_policies"])


def test_a_gate_that_waits_too_long_fails_the_step_with_the_reason(broker, make_csv, start, tmp_path, wh, settings):
    settings.ATLAS_PII_SCAN_WAIT_SECONDS = 1.0
    settings.ATLAS_PII_SCAN_POLL_SECONDS = 0.1
    ingest, refine, raw = ingest_and_refine(make_csv)
    _, mark = scan_worker(start, tmp_path, seconds=4.0)
    assert run_now(ingest).status == RunStatus.SUCCEEDED
    _wait_for(mark.exists, tmp_path, timeout=120)

    run = run_now(refine)

    assert run.status == RunStatus.FAILED
    error = run.step_runs.get().error
    assert "did not end within 1 s" in error and "explore.customers" in error
    assert not wh.table_exists("chart", "customers")  # nothing published without the findings


def test_a_scan_worker_killed_mid_scan_leaves_the_scan_recoverable(broker, make_csv, start, tmp_path, wh, settings):
    settings.ATLAS_PII_SCAN_HEARTBEAT_SECONDS = 0.5
    settings.ATLAS_PII_SCAN_LOST_SECONDS = 2.0
    ingest, _, raw = ingest_and_refine(make_csv)
    worker, mark = scan_worker(start, tmp_path, seconds=600.0, ATLAS_PII_SCAN_HEARTBEAT_SECONDS="0.5")
    assert run_now(ingest).status == RunStatus.SUCCEEDED
    _wait_for(mark.exists, tmp_path, timeout=120)
    scan = PiiScan.objects.get(run__pipeline=ingest)
    _wait_for(lambda: PiiScan.objects.filter(pk=scan.pk, heartbeat_at__isnull=False).exists(), tmp_path)
    os.kill(int(mark.read_text()), signal.SIGKILL)
    worker.wait(timeout=20)

    again = _wait_for(scan_tasks.reap_lost, tmp_path, timeout=60)  # once its heartbeat has been silent long enough
    scan.refresh_from_db()
    assert scan.status == RunStatus.FAILED and f"PII scan #{again[0].pk}" in scan.error
    assert again[0].status == RunStatus.QUEUED and again[0].batches == scan.batches and again[0].run_id == scan.run_id

    (tmp_path / "scan-worker.pid").unlink()
    scan_worker(start, tmp_path)  # a new worker takes the task recovery sent

    def rescanned():
        again[0].refresh_from_db()
        return again[0].status == RunStatus.SUCCEEDED

    _wait_for(rescanned, tmp_path, timeout=120)
    assert set(PiiFinding.objects.filter(dataset=raw).values_list("column", flat=True)) >= {"email", "phone"}
