"""/metrics answers snapshots at most ATLAS_METRICS_CACHE_SECONDS old: never a metadata scan per scrape (issue 17)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from prometheus_client.parser import text_string_to_metric_families

from atlas import metrics
from pipelines.models import Pipeline, PipelineRun, RunStatus

TOKEN = "test-scrape-token"
SCRAPE = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture
def snapshots(settings, db):
    settings.ATLAS_METRICS_TOKEN = TOKEN
    settings.ATLAS_METRICS_CACHE_SECONDS = 5
    metrics._LOCAL.clear()
    cache.clear()
    yield
    metrics._LOCAL.clear()


def _runs(response) -> float:
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    return sum(s.value for s in families["atlas_pipeline_runs"].samples if s.name == "atlas_pipeline_runs_total")


def _age(seconds: float) -> None:
    """Every snapshot, in this process and in the shared cache, made ``seconds`` earlier."""
    for key, snap in list(metrics._LOCAL.items()):
        metrics._LOCAL[key] = aged = metrics.Snapshot(snap.made_at - seconds, snap.text, snap.etag)
        if key != "process":
            cache.set(key, aged, 60)


def test_a_scrape_within_the_period_reads_nothing_and_says_how_old(client, snapshots, django_assert_num_queries):
    pipeline = Pipeline.objects.create(name="p")
    PipelineRun.objects.create(pipeline=pipeline, trigger="manual", status=RunStatus.SUCCEEDED)
    first = client.get("/metrics", **SCRAPE)
    assert first.status_code == 200 and _runs(first) == 1
    PipelineRun.objects.create(pipeline=pipeline, trigger="manual", status=RunStatus.FAILED)
    with django_assert_num_queries(0):  # no session, no user, no metadata scan
        second = client.get("/metrics", **SCRAPE)
    assert _runs(second) == 1, "within the period the snapshot is answered as it was"
    assert int(second["Age"]) <= 5 and second["ETag"] == first["ETag"] and second["Last-Modified"]
    _age(5)
    third = client.get("/metrics", **SCRAPE)
    assert _runs(third) == 2 and third["ETag"] != first["ETag"] and int(third["Age"]) == 0


def test_another_process_answers_the_shared_snapshot(client, snapshots, django_assert_num_queries):
    client.get("/metrics", **SCRAPE)
    metrics._LOCAL.pop(next(k for k in metrics._LOCAL if k != "process"))  # a process that never scraped
    with django_assert_num_queries(0):
        assert client.get("/metrics", **SCRAPE).status_code == 200


def test_while_one_process_refreshes_the_others_answer_the_previous_snapshot(client, snapshots, django_assert_num_queries):
    client.get("/metrics", **SCRAPE)
    _age(6)
    cache.add(metrics.REFRESH_LOCK_KEY.format(sources=metrics._sources_key()), 1, 30)  # another process refreshes
    with django_assert_num_queries(0):
        answer = client.get("/metrics", **SCRAPE)
    assert int(answer["Age"]) >= 6
    cache.delete(metrics.REFRESH_LOCK_KEY.format(sources=metrics._sources_key()))
    assert int(client.get("/metrics", **SCRAPE)["Age"]) == 0


def test_an_unchanged_snapshot_is_a_304_without_a_body(client, snapshots):
    etag = client.get("/metrics", **SCRAPE)["ETag"]
    answer = client.get("/metrics", HTTP_IF_NONE_MATCH=etag, **SCRAPE)
    assert answer.status_code == 304 and answer.content == b"" and answer["ETag"] == etag


def test_a_wrong_token_still_goes_the_usual_way(client, snapshots):
    answer = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert answer.status_code == 401 and b"atlas_" not in answer.content


def test_zero_reads_the_database_at_every_scrape(client, snapshots, settings):
    settings.ATLAS_METRICS_CACHE_SECONDS = 0
    pipeline = Pipeline.objects.create(name="p")
    client.get("/metrics", **SCRAPE)
    PipelineRun.objects.create(pipeline=pipeline, trigger="manual", status=RunStatus.SUCCEEDED)
    assert _runs(client.get("/metrics", **SCRAPE)) == 1
