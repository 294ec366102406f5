"""The PII scan after an ingest is a task of its own in the run (issue 20, part 3).

It used to run inside the ingest's ``published`` hook: hidden in no step's time, and every
step after the ingest waited for it. Now the ingest queues it; a step whose gate needs the
findings (a refine reading the dataset) runs it first, the others do not wait, and the run
shows it as its own row. A scan of an append reads the new batch only and merges its
evidence with the column's. These tests run on the embedded default and on PostgreSQL.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from atlas.warehouse import WarehouseError
from compliance.models import PiiFinding, PiiScan
from compliance.scan_tasks import describe, run_panel
from pipelines.models import Dataset, LoadedBatch, RunStatus, Source, Step
from pipelines.runner import save_step_inputs

from .conftest import CUSTOMERS_CSV, run_now

ORDERS_CSV = "order_id,amount\n1,10.50\n2,20.00\n3,7.25\n"


# --- the sampler: the new batch's rows only -------------------------------------------------
def test_a_batch_id_atlas_never_makes_is_refused_before_any_sql(wh):
    with wh.cursor() as cur:
        cur.execute('CREATE TABLE explore."t_batches" (v text, _batch_id text)')
    for bad in ("b1' OR '1'='1", "", "b1; DROP TABLE x", "é" * 3):
        with pytest.raises(WarehouseError, match="batch id"):
            wh.sample_distinct("explore", "t_batches", ["v"], limit=10, scan_rows=100, batches=[bad])


def test_sampling_some_batches_reads_their_rows_only(wh):
    with wh.cursor() as cur:
        cur.execute('CREATE TABLE explore."t_batches" (v text, _batch_id text)')
        cur.execute("INSERT INTO explore.\"t_batches\" VALUES ('old-1', 'b1'), ('old-2', 'b1'), ('new-1', 'b2'),"
                    " ('new-2', 'b2'), ('other', 'b3')")
    got = wh.sample_distinct("explore", "t_batches", ["v"], limit=10, scan_rows=100, batches=["b2"])
    assert sorted(got["v"]) == ["new-1", "new-2"]
    both = wh.sample_distinct("explore", "t_batches", ["v"], limit=10, scan_rows=100, batches=["b2", "b3"])
    assert sorted(both["v"]) == ["new-1", "new-2", "other"]
    # Above scan_rows the rows of the batches are sampled, never rows of another batch.
    sampled = wh.sample_distinct("explore", "t_batches", ["v"], limit=10, scan_rows=1, batches=["b2"])
    assert set(sampled["v"]) <= {"new-1", "new-2"}


# --- the task in the run ----------------------------------------------------------------------
@pytest.fixture
def customers_and_orders(customers_pipeline, make_csv):
    """The customers pipeline, plus an ingest of orders that reads nothing the scan gates."""

    def build(**kwargs):
        pipeline = customers_pipeline(**kwargs)
        orders = Dataset.objects.create(name="raw_orders", layer="explore", table="orders_raw")
        source = Source.objects.create(name="orders", location=str(make_csv(ORDERS_CSV, "orders.csv")))
        Step.objects.create(pipeline=pipeline, name="orders", kind="ingest", source=source, output=orders,
                            write_mode="append", position=1)
        Step.objects.filter(pipeline=pipeline, name="refine").update(position=2)
        save_step_inputs(pipeline)
        return pipeline

    return build


def test_the_scan_is_not_inside_the_ingest_and_an_unrelated_step_does_not_wait_for_it(
    wh, pii_hook, customers_and_orders
):
    run = run_now(customers_and_orders())
    assert run.status == RunStatus.SUCCEEDED, run.error
    ingest = run.step_runs.get(step_name="ingest")
    orders = run.step_runs.get(step_name="orders")
    refine = run.step_runs.get(step_name="refine")
    scan = PiiScan.objects.get(dataset__table="customers", trigger=PiiScan.Trigger.INGEST)
    # Its own record in the run, of the step run that loaded, of the batch it loaded.
    assert (scan.run, scan.step_run, scan.status) == (run, ingest, RunStatus.SUCCEEDED)
    assert scan.batches == list(LoadedBatch.objects.filter(step_run=ingest).values_list("batch_id", flat=True))
    assert ingest.details["pii_scan"] == scan.pk
    # After the ingest ended, after the unrelated ingest, and before the refine that reads the dataset ended.
    assert scan.started_at >= ingest.finished_at
    assert scan.started_at >= orders.finished_at
    assert refine.started_at <= scan.started_at and scan.finished_at <= refine.finished_at
    # The refine's gate saw the findings: privacy by default protected the e-mail before Chart.
    assert "email" in refine.details["pii_policies"]
    orders_scan = PiiScan.objects.get(dataset__table="orders_raw")
    assert orders_scan.run == run and orders_scan.status == RunStatus.SUCCEEDED  # run after the last step
    assert orders_scan.started_at >= refine.finished_at


def test_the_run_shows_each_scan_as_its_own_row(wh, pii_hook, customers_pipeline):
    run = run_now(customers_pipeline())
    scan = PiiScan.objects.get(run=run)
    assert describe(scan).startswith("PII scan of explore.customers (1 new batch): ")
    assert describe(scan).endswith(f"s, {scan.findings_count} findings") and scan.findings_count >= 3
    request = RequestFactory().get("/")
    request.user = get_user_model().objects.create_superuser("root", password="x")
    html = run_panel(request, run)
    assert "PII scans" in html and "PII scan of explore.customers" in html and f"#{scan.pk}" in html
    assert "PII scan of explore.customers" in run_panel(request, scan.step_run)
    request.user = get_user_model().objects.create_user("nobody", password="x", is_staff=True)
    assert run_panel(request, run) is None  # no permission to see scans: no section


def test_an_append_scans_its_new_batch_only_and_merges_the_evidence(wh, pii_hook, customers_pipeline, make_csv):
    pipeline = customers_pipeline()
    first = run_now(pipeline)
    assert first.status == RunStatus.SUCCEEDED, first.error
    email = PiiFinding.objects.get(column="email", entity="EMAIL_ADDRESS")
    assert (email.share, email.sample_size) == (1.0, 4)
    postcode = PiiFinding.objects.get(column="postcode", entity="POSTCODE")
    phone = PiiFinding.objects.get(column="phone", entity="PHONE_NUMBER")
    # A second file: two e-mails and two values that are not; no postcode at all; no phone values.
    make_csv("customer_id,first_name,email,phone,birth_date,postcode,notes\n"
             "5,Eva,eva.meier@example.com,,1980-01-02,unknown,\n"
             "6,Paul,paul.roth@example.org,,1982-02-03,not given,\n"
             "7,Lena,unknown,,1984-03-04,ask us,\n"
             "8,Tom,n/a,,1986-04-05,later,\n", "customers.csv")
    second = run_now(pipeline)
    assert second.status == RunStatus.SUCCEEDED, second.error
    scan = PiiScan.objects.get(run=second)
    new_batch = LoadedBatch.objects.get(step_run__run=second, status="loaded").batch_id
    assert scan.batches == [new_batch]
    assert scan.details["columns"]["email"] == "EMAIL_ADDRESS"
    email.refresh_from_db()
    # As if one scan had seen the 8 values: 6 e-mails.
    assert (email.share, email.sample_size, email.last_scan_id) == (0.75, 8, scan.pk)
    first_batch = LoadedBatch.objects.get(step_run__run=first, status="loaded").batch_id
    assert email.covers["batches"] == [first_batch, new_batch] and email.covers["batches_since"] == 2
    # No postcode in the new batch: the finding stays (the first batch's rows still hold them), diluted
    # by the 4 values that are not postcodes.
    share = postcode.share
    postcode.refresh_from_db()
    assert (postcode.share, postcode.sample_size) == (round(share * 4 / 8, 4), 8)
    assert postcode.covers["batches"] == [first_batch, new_batch]
    # No phone values at all in the new batch: no evidence either way, the evidence as it was.
    before = (phone.share, phone.mean_score, phone.sample_size, phone.confidence)
    phone.refresh_from_db()
    assert (phone.share, phone.mean_score, phone.sample_size, phone.confidence) == before


def test_a_full_refresh_scans_the_whole_table_again(wh, pii_hook, customers_pipeline):
    pipeline = customers_pipeline()
    run_now(pipeline)
    again = run_now(pipeline, full_refresh=True)
    assert again.status == RunStatus.SUCCEEDED, again.error
    scan = PiiScan.objects.get(run=again)
    assert scan.batches == [] and scan.status == RunStatus.SUCCEEDED
    email = PiiFinding.objects.get(column="email", entity="EMAIL_ADDRESS")
    assert email.covers == {"whole_table_scan": scan.pk, "batches": [], "batches_since": 0}


def test_a_queued_scan_left_by_a_run_is_taken_over_by_the_next_ingest(wh, pii_hook, customers_pipeline, make_csv):
    pipeline = customers_pipeline()
    run_now(pipeline)
    first = PiiScan.objects.get()
    # As a run cancelled after its ingest leaves it: queued, never run.
    PiiScan.objects.filter(pk=first.pk).update(status=RunStatus.QUEUED, started_at=None, finished_at=None)
    make_csv(CUSTOMERS_CSV.replace("Anna", "Anne"), "customers.csv")
    nxt = run_now(pipeline)
    first.refresh_from_db()
    assert first.status == RunStatus.SKIPPED and "Taken over by PII scan" in first.error
    scan = PiiScan.objects.get(run=nxt)
    assert scan.batches[0] == first.batches[0] and len(scan.batches) == 2  # no batch left unscanned
    assert scan.status == RunStatus.SUCCEEDED


def test_a_scan_stopped_by_the_runs_cancel_leaves_its_batches_queued(wh, pii_hook, customers_pipeline, monkeypatch):
    from compliance import detection
    from pipelines.models import PipelineRun

    def cancelled_midway(scan, **kwargs):  # the cancel interrupts the scan's warehouse statement
        PipelineRun.objects.filter(pk=scan.run_id).update(cancel_requested=True)
        scan.fail("Interrupted: the statement was cancelled.")
        return scan

    monkeypatch.setattr(detection, "run_scan", cancelled_midway)
    run_now(customers_pipeline())  # the run itself stops at the watchdog's next look (not this test's matter)
    stopped = PiiScan.objects.get(status=RunStatus.FAILED)
    owed = PiiScan.objects.get(status=RunStatus.QUEUED)
    assert f"scanned by PII scan #{owed.pk}" in stopped.error
    assert owed.batches == stopped.batches and owed.batches  # the next ingest of the dataset takes them over
