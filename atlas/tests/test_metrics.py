"""/metrics: after a real run, Atlas's families parse, follow Prometheus naming, and hold the run's numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from prometheus_client.parser import text_string_to_metric_families

from atlas import extensions, metrics
from pipelines.models import PipelineRun, RunStatus
from pipelines.tests.conftest import run_now

SCRAPE_TOKEN = "test-scrape-token"


@pytest.fixture(autouse=True)
def _scrape_token(settings):
    """/metrics is not public (issue 12): these tests scrape as Prometheus does, with the token."""
    settings.ATLAS_METRICS_TOKEN = SCRAPE_TOKEN


def scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {SCRAPE_TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def samples(family, name: str | None = None) -> dict[tuple, float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in family.samples
        if name is None or s.name == name
    }


@pytest.fixture
def after_a_run(wh, simple_pipeline):
    pipeline = simple_pipeline(csv_text="id,name,amount\n1,Ann,10\n2,Bob,20\n3,Cy,5,extra,fields,here\n",
                               max_rejected_share=0.5)
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return pipeline


def test_run_counts_and_row_totals_after_a_real_run(client, after_a_run):
    families = scrape(client)
    runs = families["atlas_pipeline_runs"]
    assert runs.type == "counter"
    assert samples(runs, "atlas_pipeline_runs_total") == {(("pipeline", "people"), ("status", "succeeded")): 1.0}
    processed = samples(families["atlas_rows_processed"], "atlas_rows_processed_total")
    assert processed == {(("layer", "explore"),): 2.0, (("layer", "chart"),): 2.0, (("layer", "navigate"),): 1.0}
    rejected = samples(families["atlas_rows_rejected"], "atlas_rows_rejected_total")
    assert rejected[(("layer", "explore"),)] == 1.0
    assert samples(families["atlas_quarantined_rows"]) == {(("dataset", "raw_people"),): 1.0}


def test_step_durations_are_a_histogram_by_layer(client, after_a_run):
    histogram = scrape(client)["atlas_step_duration_seconds"]
    assert histogram.type == "histogram"
    counts = samples(histogram, "atlas_step_duration_seconds_count")
    assert counts == {(("layer", "explore"),): 1.0, (("layer", "chart"),): 1.0, (("layer", "navigate"),): 1.0}
    inf = {k: v for k, v in samples(histogram, "atlas_step_duration_seconds_bucket").items() if ("le", "+Inf") in k}
    assert sorted(inf.values()) == [1.0, 1.0, 1.0]
    assert all(v >= 0 for v in samples(histogram, "atlas_step_duration_seconds_sum").values())


def test_histogram_buckets_count_durations_on_this_engine(client, after_a_run):
    step_run = PipelineRun.objects.get().step_runs.get(step_name="refine")
    step_run.started_at = timezone.now() - timedelta(seconds=100)
    step_run.finished_at = step_run.started_at + timedelta(seconds=90)
    step_run.save()
    buckets = samples(scrape(client)["atlas_step_duration_seconds"], "atlas_step_duration_seconds_bucket")
    assert buckets[(("layer", "chart"), ("le", "60.0"))] == 0.0
    assert buckets[(("layer", "chart"), ("le", "120.0"))] == 1.0
    total = samples(scrape(client)["atlas_step_duration_seconds"], "atlas_step_duration_seconds_sum")
    assert total[(("layer", "chart"),)] == pytest.approx(90.0)


def test_freshness_per_dataset_in_seconds(client, after_a_run):
    age = samples(scrape(client)["atlas_dataset_last_load_age_seconds"])
    assert set(age) == {(("dataset", n), ("layer", layer)) for n, layer in
                        (("raw_people", "explore"), ("people", "chart"), ("people_total", "navigate"))}
    assert all(0 <= v < 120 for v in age.values())


def test_active_runs_are_a_gauge_not_a_counter(client, wh, simple_pipeline):
    from pipelines import runner

    runner.start_run(simple_pipeline(), dispatch=False)
    families = scrape(client)
    assert samples(families["atlas_pipeline_runs_active"]) == {(("pipeline", "people"), ("status", "queued")): 1.0}
    assert samples(families["atlas_pipeline_runs"]) == {}


def test_beat_lag_for_an_overdue_schedule(client, db):
    every_minute = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="late", task="x", interval=every_minute,
                                last_run_at=timezone.now() - timedelta(minutes=10))
    crontab = CrontabSchedule.objects.create(minute="*")
    PeriodicTask.objects.create(name="on time", task="y", crontab=crontab, last_run_at=timezone.now())
    lag = samples(scrape(client)["atlas_beat_schedule_lag_seconds"])
    assert 500 < lag[(("task", "late"),)] < 700
    assert lag[(("task", "on time"),)] == 0.0


def test_names_follow_prometheus_conventions(client, after_a_run):
    families = scrape(client)
    atlas = {n: f for n, f in families.items() if n.startswith("atlas_")}
    assert {"atlas_pipeline_runs", "atlas_step_duration_seconds", "atlas_rows_processed", "atlas_rows_rejected",
            "atlas_quarantined_rows", "atlas_dataset_last_load_age_seconds", "atlas_beat_schedule_lag_seconds",
            "atlas_audit_events"} <= set(atlas)
    for name, family in atlas.items():
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), name
        for sample in family.samples:
            assert not {"run", "run_id", "id", "user"} & set(sample.labels), (name, sample.labels)
    assert any(n.startswith("django_http_") for n in families), "django-prometheus metrics are exposed too"


def test_a_failing_source_does_not_hide_the_others(client, after_a_run):
    def broken():
        raise RuntimeError("boom")

    with extensions.added("broken_app", {"metric_sources": [broken]}):
        assert "atlas_pipeline_runs" in scrape(client)


def test_an_app_can_add_its_own_family(client, db):
    from prometheus_client.core import GaugeMetricFamily

    def mine():
        family = GaugeMetricFamily("atlas_test_things", "Things, for this test.")
        family.add_metric([], 7)
        yield family

    with extensions.added("my_app", {"metric_sources": [mine]}):  # as an AppConfig declares it
        assert samples(scrape(client)["atlas_test_things"]) == {(): 7.0}


def test_quarantined_rows_count_ingest_rejects_and_rows_drop_checks_moved(client, after_a_run):
    from pipelines.models import Dataset
    from quality.models import CheckRun

    people = Dataset.objects.get(name="people")
    CheckRun.objects.create(dataset=people, trigger="manual", table="chart.people", status="warned", rows_quarantined=3)
    assert samples(scrape(client)["atlas_quarantined_rows"]) == {(("dataset", "raw_people"),): 1.0, (("dataset", "people"),): 3.0}


def test_every_family_the_issue_lists_is_exposed(client, after_a_run):
    from compliance.models import PiiFinding
    from lineage.models import OutboxEvent
    from pipelines.models import Dataset
    from quality.models import CheckResult, CheckRun

    people = Dataset.objects.get(name="people")
    check_run = CheckRun.objects.create(dataset=people, trigger="manual", table="chart.people", status="failed")
    CheckResult.objects.create(check_run=check_run, check_name="c", kind="not_null", severity="fail", outcome="fail")
    PiiFinding.objects.create(dataset=people, column="name", entity="PERSON", status="confirmed")
    OutboxEvent.objects.create(ordering_key="k", run_uuid="u", event_type="START", job_name="j", payload={})
    families = scrape(client)
    assert samples(families["atlas_check_results"], "atlas_check_results_total")[
        (("outcome", "fail"), ("severity", "fail"))] == 1.0
    assert samples(families["atlas_pii_findings"])[(("entity", "PERSON"), ("status", "confirmed"))] == 1.0
    assert samples(families["atlas_lineage_outbox_backlog"])[()] >= 1.0


COUNT_IN_A_WORKER = """
import django
django.setup()
from atlas import extensions, metrics
metrics.count_lineage_delivery("delivered", {n})
metrics.count_lineage_delivery("retry")
"""


def test_counters_of_several_worker_processes_add_up_at_one_scrape(client, db, tmp_path, monkeypatch):
    """Two worker processes count deliveries; one scrape of the web process shows the sum (multiprocess mode)."""
    import os
    import subprocess
    import sys

    from django.conf import settings as django_settings

    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "DJANGO_SETTINGS_MODULE": "atlas.settings",
           "DEBUG": "true", "ATLAS_VAR_DIR": str(tmp_path / "var")}
    for n in (2, 5):
        subprocess.run([sys.executable, "-c", COUNT_IN_A_WORKER.format(n=n)], env=env, check=True,
                       cwd=django_settings.BASE_DIR, timeout=120)
    assert len(list(multiproc.glob("counter_*.db"))) == 2  # one file per process
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(multiproc))
    deliveries = scrape(client)["atlas_lineage_deliveries"]
    assert deliveries.type == "counter"
    assert samples(deliveries, "atlas_lineage_deliveries_total") == {
        (("outcome", "delivered"),): 7.0, (("outcome", "retry"),): 2.0,
    }


def test_an_unknown_delivery_outcome_is_refused():
    with pytest.raises(ValueError, match="Unknown delivery outcome 'lost'"):
        metrics.count_lineage_delivery("lost")
