"""Bounded metadata (issue 17): history past its keep period goes, the latest and the active stay."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from atlas import extensions, housekeeping
from atlas.runs import RunStatus
from compliance.models import PiiScan
from lineage.models import LineageNode, OutboxEvent, ReceivedEvent
from pipelines.models import Dataset, LoadedBatch, Pipeline, PipelineRun, StepRun
from quality.models import CheckRun

pytestmark = pytest.mark.django_db
NOW = timezone.now()
OLD = NOW - timedelta(days=400)


def _runs(pipeline: Pipeline, n: int, *, when, status=RunStatus.SUCCEEDED) -> list[PipelineRun]:
    runs = []
    for _ in range(n):
        run = PipelineRun.objects.create(pipeline=pipeline, trigger="manual", status=status, created_at=when)
        StepRun.objects.create(run=run, step_name="ingest", kind="ingest", status=status)
        runs.append(run)
    return runs


def test_old_runs_go_the_latest_and_the_active_stay(settings):
    settings.ATLAS_KEEP_RUN_DAYS, settings.ATLAS_KEEP_LATEST = 90, 3
    busy, quiet = Pipeline.objects.create(name="busy"), Pipeline.objects.create(name="quiet")
    old = _runs(busy, 25, when=OLD)
    new = _runs(busy, 2, when=NOW)
    active = _runs(busy, 1, when=OLD, status=RunStatus.RUNNING)[0]  # stuck for a year: not housekeeping's call
    only = _runs(quiet, 2, when=OLD)  # a pipeline that last ran long ago keeps its latest runs
    raw = Dataset.objects.create(name="raw", layer="explore", table="raw")
    ledger = LoadedBatch.objects.create(
        dataset=raw, step_run=old[0].step_runs.get(), batch_id="b", file="f.csv", checksum="c", status="loaded"
    )

    done = housekeeping.prune_metadata(now=NOW)

    # busy's latest three (by key) are the two new runs and the active one: all 25 old runs go.
    assert done["pipeline runs"] == 25
    kept = set(PipelineRun.objects.values_list("pk", flat=True))
    assert kept == {active.pk, *(r.pk for r in new), *(r.pk for r in only)}
    assert StepRun.objects.filter(run_id__in=[r.pk for r in old]).count() == 0  # step runs go with their run
    ledger.refresh_from_db()
    assert ledger.step_run_id is None  # the ledger stays: a loaded file is still skipped by checksum


def test_zero_days_keeps_for_ever(settings):
    settings.ATLAS_KEEP_RUN_DAYS, settings.ATLAS_KEEP_LATEST = 0, 1
    _runs(Pipeline.objects.create(name="p"), 5, when=OLD)
    assert housekeeping.prune_metadata(now=NOW)["pipeline runs"] == 0
    assert PipelineRun.objects.count() == 5


def test_check_runs_and_scans_keep_the_latest_per_dataset(settings):
    settings.ATLAS_KEEP_LATEST = 2
    ds = Dataset.objects.create(name="orders", layer="chart", table="orders")
    checks = [CheckRun.objects.create(dataset=ds, trigger="manual", table="chart.orders", status="passed",
                                      started_at=OLD) for _ in range(5)]
    running = CheckRun.objects.create(dataset=ds, trigger="manual", table="chart.orders", started_at=OLD)
    scans = [PiiScan.objects.create(dataset=ds, status=RunStatus.SUCCEEDED) for _ in range(4)]
    PiiScan.objects.filter(pk__in=[s.pk for s in scans]).update(created_at=OLD)

    done = housekeeping.prune_metadata(now=NOW)

    # The running check run is the newest by key: it and the last finished one are the latest two.
    assert done["check runs"] == 4
    assert set(CheckRun.objects.values_list("pk", flat=True)) == {running.pk, checks[-1].pk}
    assert done["PII scans"] == 2
    assert set(PiiScan.objects.values_list("pk", flat=True)) == {scans[-2].pk, scans[-1].pk}


def _event(status: str, *, created=OLD, delivered=None) -> OutboxEvent:
    return OutboxEvent.objects.create(
        ordering_key="k", run_uuid="r", event_type="START", job_name="j", payload={}, status=status,
        created_at=created, delivered_at=delivered,
    )


def test_lineage_events_delivered_or_given_up_go_pending_stay(settings):
    settings.ATLAS_KEEP_LINEAGE_EVENT_DAYS, settings.ATLAS_KEEP_RECEIVED_LINEAGE_DAYS = 30, 90
    gone = [_event("delivered", delivered=OLD), _event("failed")]
    stay = [_event("delivered", delivered=NOW), _event("pending"), _event("failed", created=NOW)]
    old_in = ReceivedEvent.objects.create(payload={}, received_at=OLD)
    new_in = ReceivedEvent.objects.create(payload={}, received_at=NOW)

    done = housekeeping.prune_metadata(now=NOW)

    assert done["lineage events delivered"] == 1 and done["lineage events given up"] == 1
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {e.pk for e in stay}
    assert not OutboxEvent.objects.filter(pk__in=[e.pk for e in gone]).exists()
    assert list(ReceivedEvent.objects.values_list("pk", flat=True)) == [new_in.pk]
    assert old_in.pk != new_in.pk


def test_prunes_in_batches(settings, monkeypatch):
    monkeypatch.setattr(housekeeping, "BATCH", 7)
    settings.ATLAS_KEEP_LATEST = 1
    _runs(Pipeline.objects.create(name="p"), 30, when=OLD)
    assert housekeeping.prune_metadata(now=NOW)["pipeline runs"] == 29
    assert PipelineRun.objects.count() == 1


def test_one_failing_pruner_does_not_stop_the_others(settings, caplog):
    settings.ATLAS_KEEP_LATEST = 1
    _runs(Pipeline.objects.create(name="p"), 3, when=OLD)

    def broken(now):
        raise RuntimeError("disk on fire")

    with extensions.added("broken_app", {"metadata_pruners": [broken]}):
        done = housekeeping.prune_metadata(now=NOW)
    assert done["pipeline runs"] == 2
    assert "broken" in caplog.text


def test_command_reports_what_it_deleted(settings):
    settings.ATLAS_KEEP_LATEST = 1
    _runs(Pipeline.objects.create(name="p"), 3, when=timezone.now() - timedelta(days=settings.ATLAS_KEEP_RUN_DAYS + 1))
    out = StringIO()
    call_command("prune_metadata", stdout=out)
    assert "pipeline runs: 2 deleted" in out.getvalue()


@pytest.mark.step_hooks
def test_without_an_endpoint_no_event_is_kept_but_the_graph_is(settings, simple_pipeline):
    from atlas.tests.plugin import run_now

    settings.OPENLINEAGE_URL, settings.OPENLINEAGE_KEEP_WITHOUT_ENDPOINT = "", False
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.SUCCEEDED
    assert OutboxEvent.objects.count() == 0  # nothing would ever deliver them
    assert LineageNode.objects.filter(name="chart.people").exists()

    settings.OPENLINEAGE_URL = "http://lineage.example"  # with an endpoint, events wait for delivery
    run_now(Pipeline.objects.get(name="people"))
    assert OutboxEvent.objects.filter(status="pending").exists()
