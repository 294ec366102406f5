"""The metric families the shipped alert rules read (deploy/prometheus/alerts.yml): their values.

``atlas/tests/test_observability_shipped.py`` proves the rules name only exported
metrics; these prove the metrics say what the rules assume.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from atlas.tests.test_metrics import SCRAPE_TOKEN, samples, scrape
from pipelines.models import Dataset, PipelineRun, RunStatus
from pipelines.tests.conftest import run_now


@pytest.fixture(autouse=True)
def _scrape_token(settings):
    settings.ATLAS_METRICS_TOKEN = SCRAPE_TOKEN


def test_the_oldest_active_run_is_timed_from_creation_when_queued_and_from_start_when_running(
    client, wh, simple_pipeline
):
    from pipelines import runner

    pipeline = simple_pipeline()
    run = runner.start_run(pipeline, dispatch=False)
    PipelineRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=20))
    queued = samples(scrape(client)["atlas_pipeline_run_oldest_active_seconds"])
    assert 1190 < queued[(("pipeline", "people"), ("status", "queued"))] < 1300

    PipelineRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now() - timedelta(hours=3)
    )
    running = samples(scrape(client)["atlas_pipeline_run_oldest_active_seconds"])
    assert list(running) == [(("pipeline", "people"), ("status", "running"))]
    assert 3 * 3600 - 10 < running[(("pipeline", "people"), ("status", "running"))] < 3 * 3600 + 120


def test_no_active_run_gives_no_oldest_run_sample(client, db):
    assert samples(scrape(client)["atlas_pipeline_run_oldest_active_seconds"]) == {}


def test_a_freshness_check_that_did_not_pass_is_breached_until_it_passes(client, wh, simple_pipeline):
    from quality.models import Check, CheckKind, Severity
    from quality.service import check_freshness

    run = run_now(simple_pipeline())
    assert run.status == RunStatus.SUCCEEDED, run.error
    raw = Dataset.objects.get(name="raw_people")
    check = Check.objects.create(
        dataset=raw, name="loaded_recently", kind=CheckKind.FRESHNESS, columns=["_ingested_at"],
        params={"max_age_hours": 1}, severity=Severity.FAIL,
    )
    key = (("check", "loaded_recently"), ("dataset", "raw_people"), ("layer", "explore"))
    assert samples(scrape(client)["atlas_dataset_freshness_breached"]) == {key: 0.0}  # not evaluated yet

    check.params = {"max_age_hours": 1e-9}  # 3.6 µs: stale by the time it is evaluated
    check.save()
    check_freshness()
    assert samples(scrape(client)["atlas_dataset_freshness_breached"]) == {key: 1.0}

    check.params = {"max_age_hours": 24}
    check.save()
    check_freshness()
    assert samples(scrape(client)["atlas_dataset_freshness_breached"]) == {key: 0.0}


def test_open_subject_requests_by_kind_and_due_state(client, db):
    from privacy.models import DataSubjectRequest, RequestStatus

    now = timezone.now()

    def request(kind, due_in_days, status=RequestStatus.RECEIVED):
        DataSubjectRequest.objects.create(
            kind=kind, identifiers={"email": ["x@example.com"]}, received_at=now - timedelta(days=30),
            due_at=now + timedelta(days=due_in_days), status=status,
        )

    request("erasure", -1)
    request("erasure", -2)
    request("erasure", 3)
    request("access", 20)
    request("access", -5, status=RequestStatus.COMPLETED)  # closed: not open, not counted
    got = samples(scrape(client)["atlas_subject_requests_open"])
    assert got == {
        (("kind", "access"), ("state", "due_soon")): 0.0,
        (("kind", "access"), ("state", "on_time")): 1.0,
        (("kind", "access"), ("state", "overdue")): 0.0,
        (("kind", "erasure"), ("state", "due_soon")): 1.0,
        (("kind", "erasure"), ("state", "on_time")): 0.0,
        (("kind", "erasure"), ("state", "overdue")): 2.0,
    }
