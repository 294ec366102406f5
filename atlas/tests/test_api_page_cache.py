"""Rendered API pages cached until the next write (issue 17: p99 < 100 ms under 20 clients).

The cache must never serve a page older than the last write: every kind of write
(a save, ``QuerySet.update``, raw SQL, a committed transaction) is visible on the next
request; users whose permissions differ never share a rendering; a page during
which something was written (a clear PII view's audit event) is not stored.
"""

from __future__ import annotations

import os
import uuid

import pytest
from django.core.cache import cache
from django.db import connection, transaction

from atlas.api import pagecache
from atlas.api.testing import token_client, user_with_role
from atlas.tests.plugin import service_or_skip
from pipelines.models import Dataset

pytestmark = pytest.mark.django_db

URL = "/api/v1/datasets/"


@pytest.fixture
def page_cache(settings):
    settings.ATLAS_API_PAGE_CACHE = "on"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def client(page_cache):
    Dataset.objects.create(name="orders", layer="explore", table="orders")
    return token_client(user_with_role("Analyst"))


def _names(response) -> list[str]:
    assert response.status_code == 200, response.content[:300]
    return [d["name"] for d in response.json()["results"]]


def test_a_repeated_read_is_answered_from_the_cache(client):
    first = client.get(URL)
    assert first["X-Atlas-Page-Cache"] == "miss"
    second = client.get(URL)
    assert second["X-Atlas-Page-Cache"] == "hit"
    assert second.content == first.content
    assert second["Content-Type"] == first["Content-Type"]


def test_each_query_string_is_its_own_page(client):
    Dataset.objects.create(name="customers", layer="chart", table="customers")
    assert _names(client.get(URL, {"layer": "chart"})) == ["customers"]
    assert _names(client.get(URL, {"layer": "explore"})) == ["orders"]


def test_a_save_is_visible_on_the_next_request(client):
    assert _names(client.get(URL)) == ["orders"]
    Dataset.objects.create(name="payments", layer="explore", table="payments")
    response = client.get(URL)
    assert response["X-Atlas-Page-Cache"] == "miss"
    assert _names(response) == ["orders", "payments"]


def test_a_queryset_update_is_visible(client):
    client.get(URL)
    Dataset.objects.filter(name="orders").update(name="orders_v2")
    assert _names(client.get(URL)) == ["orders_v2"]


def test_raw_sql_is_visible(client):
    client.get(URL)
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {Dataset._meta.db_table}")
    assert _names(client.get(URL)) == []


def test_a_committed_transaction_is_visible(client):
    client.get(URL)
    with transaction.atomic():
        Dataset.objects.create(name="refunds", layer="explore", table="refunds")
    assert _names(client.get(URL)) == ["orders", "refunds"]


def test_a_write_through_the_api_is_visible(client, page_cache):
    steward = token_client(user_with_role("Steward", username="steward-x"))
    admin_like = token_client(user_with_role("Operator", username="operator-x"))
    before = admin_like.get(URL)
    response = admin_like.post(URL, {"name": "made_by_api", "layer": "explore", "table": "made_by_api"}, format="json")
    assert response.status_code == 201, response.content
    assert "made_by_api" in _names(admin_like.get(URL)) and "made_by_api" not in _names(before)
    assert "made_by_api" in _names(steward.get(URL))


def test_users_with_other_permissions_never_share_a_page(client):
    other = token_client(user_with_role("Auditor"))
    client.get(URL)
    assert client.get(URL)["X-Atlas-Page-Cache"] == "hit"
    assert other.get(URL)["X-Atlas-Page-Cache"] == "miss"  # a rendering of its own


def test_users_of_one_role_share_pages(client):
    colleague = token_client(user_with_role("Analyst", username="analyst-2"))
    client.get(URL)
    assert colleague.get(URL)["X-Atlas-Page-Cache"] == "hit"


def test_a_page_during_which_something_was_written_is_not_stored(client, rf):
    request = rf.get(URL)
    request.user = user_with_role("Analyst", username="analyst-3")
    assert pagecache.cached_response(request) is None  # a miss: marked to be stored
    key, _generation, _throttles = getattr(request, pagecache._MARK)
    Dataset.objects.create(name="written_meanwhile", layer="explore", table="w")  # e.g. a clear view's audit row
    response = client.get(URL, {"layer": "chart"})
    pagecache.store(request, response)
    assert cache.get(key) is None


def test_bookkeeping_writes_do_not_make_pages_stale(client):
    client.get(URL)
    with connection.cursor() as cur:
        cur.execute("DELETE FROM django_session WHERE 1 = 0")
    assert client.get(URL)["X-Atlas-Page-Cache"] == "hit"


@pytest.mark.parametrize(
    "sql, write",
    [
        ("SELECT 1", False),
        ('INSERT INTO "pipelines_dataset" VALUES (1)', True),
        ('UPDATE "pipelines_pipelinerun" SET status = 1', True),
        ("WITH x AS (SELECT 1) DELETE FROM t WHERE id IN (SELECT * FROM x)", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", False),
        ('DELETE FROM "django_session" WHERE 1', False),
        ('UPDATE "knox_authtoken" SET expiry = 1', False),
        ("  (SELECT 1) UNION (SELECT 2)", False),
        ("", False),
    ],
)
def test_what_counts_as_a_write(sql, write):
    assert pagecache.is_write(sql) is write


def test_off_means_never_cached(client, settings):
    settings.ATLAS_API_PAGE_CACHE = "off"
    client.get(URL)
    assert "X-Atlas-Page-Cache" not in client.get(URL)


def test_auto_is_off_with_a_per_process_cache(settings):
    settings.ATLAS_API_PAGE_CACHE = "auto"
    assert not pagecache.enabled()  # tests use the memory cache: another process's writes would go unseen
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}}
    assert pagecache.enabled()


@pytest.mark.redis
def test_with_redis_a_write_is_visible_on_the_next_request(settings):
    service_or_skip("Redis", "127.0.0.1", 6379)
    from django.core.cache import caches

    settings.CACHES = _redis_caches()
    settings.ATLAS_API_PAGE_CACHE = "auto"  # Django's setting_changed handler reopens the caches
    try:
        Dataset.objects.create(name="orders", layer="explore", table="orders")
        client = token_client(user_with_role("Analyst"))
        client.get(URL)
        assert client.get(URL)["X-Atlas-Page-Cache"] == "hit"
        Dataset.objects.filter(name="orders").update(row_count=42)
        response = client.get(URL)
        assert response["X-Atlas-Page-Cache"] == "miss"
        assert response.json()["results"][0]["row_count"] == 42
    finally:
        _forget_keys(caches["default"])


# --- the early path: a stored page answered before sessions, auth and DRF ------------------------------
def test_a_token_read_of_a_stored_page_runs_no_query_and_keeps_the_views_headers(client, django_assert_num_queries):
    first = client.get(URL)
    client.get(URL)  # the token resolved once in this process for this generation
    with django_assert_num_queries(0):
        hit = client.get(URL)
    assert hit["X-Atlas-Page-Cache"] == "hit" and hit.content == first.content
    for header in ("Content-Type", "Allow", "Vary", "X-Frame-Options", "X-Content-Type-Options"):
        assert hit[header] == first[header], header


def test_a_revoked_token_is_refused_even_when_its_page_is_stored(client):
    from knox.models import AuthToken

    assert client.get(URL)["X-Atlas-Page-Cache"] == "miss"
    assert client.get(URL)["X-Atlas-Page-Cache"] == "hit"
    AuthToken.objects.all().delete()  # a logout, a revocation (manage.py revoke_api_tokens)
    assert client.get(URL).status_code == 401


def test_a_token_that_expires_is_refused_even_when_its_page_is_stored(page_cache):
    import time
    from datetime import timedelta

    from knox.models import AuthToken
    from rest_framework.test import APIClient

    Dataset.objects.create(name="orders", layer="explore", table="orders")
    _row, key = AuthToken.objects.create(user=user_with_role("Analyst", username="short-lived"),
                                         expiry=timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.get(URL)
    assert client.get(URL)["X-Atlas-Page-Cache"] == "hit"
    time.sleep(1.1)  # it expires with nothing written (the resolved identity holds its expiry)
    assert client.get(URL).status_code == 401


def test_a_stored_page_still_counts_against_the_users_throttle(client, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "3/min"}}
    assert [client.get(URL).status_code for _ in range(3)] == [200, 200, 200]  # a miss, then two hits
    response = client.get(URL)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


def test_a_session_read_takes_the_usual_path(page_cache, django_user_model):
    from django.test import Client

    Dataset.objects.create(name="orders", layer="explore", table="orders")
    user = user_with_role("Analyst", username="session-reader")
    browser = Client()
    browser.force_login(user)
    assert browser.get(URL)["X-Atlas-Page-Cache"] == "miss"
    assert browser.get(URL)["X-Atlas-Page-Cache"] == "hit"  # from the view's own look-up, after DRF's auth
    assert pagecache.early_response(browser.get(URL).wsgi_request) is None


# --- the early path on Redis: two round trips, the same answers ----------------------------------------
def _redis_caches() -> dict:
    """A Redis cache of this test's own: a key prefix of its own, in this xdist worker's own database.

    Databases 3, 4, ... by worker: never a Celery broker's (10 + worker, pipelines/tests/workers.py).
    These tests used to share one database and FLUSHDB it when they ended: another worker's test
    lost its page cache (or its broker's queue) in the middle.
    """
    db = 3 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": f"redis://127.0.0.1:6379/{db}", "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


def _forget_keys(redis_cache) -> None:
    """Delete this test's keys (its prefix's), not the database's."""
    client = redis_cache._cache.get_client(None, write=True)
    for key in client.scan_iter(match=f"{redis_cache.key_prefix}:*"):
        client.delete(key)


@pytest.fixture
def redis_cache(settings):
    service_or_skip("Redis", "127.0.0.1", 6379)
    from django.core.cache import caches

    settings.CACHES = _redis_caches()
    settings.ATLAS_API_PAGE_CACHE = "auto"
    assert pagecache._fast() is not None
    yield
    _forget_keys(caches["default"])


@pytest.mark.redis
def test_with_redis_the_early_path_takes_two_round_trips_and_no_query(redis_cache, django_assert_num_queries):
    from unittest import mock

    Dataset.objects.create(name="orders", layer="explore", table="orders")
    client = token_client(user_with_role("Analyst"))
    first = client.get(URL)
    client.get(URL)  # the token resolved for this generation
    fast = pagecache._fast()
    with django_assert_num_queries(0), mock.patch.object(fast.client, "execute_command",
                                                         wraps=fast.client.execute_command) as commands:
        hit = client.get(URL)
    assert hit["X-Atlas-Page-Cache"] == "hit" and hit.content == first.content
    assert [c.args[0] for c in commands.call_args_list] == ["EVALSHA"]  # generations and page; the throttle pipelines
    Dataset.objects.filter(name="orders").update(row_count=42)  # a write: the next read is fresh
    assert client.get(URL).json()["results"][0]["row_count"] == 42


@pytest.mark.redis
def test_with_redis_the_early_path_counts_the_throttle_as_drf_does(redis_cache, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "3/min"}}
    Dataset.objects.create(name="orders", layer="explore", table="orders")
    client = token_client(user_with_role("Analyst"))
    assert [client.get(URL).status_code for _ in range(3)] == [200, 200, 200]  # a miss, then two early hits
    response = client.get(URL)
    assert response.status_code == 429 and 0 < int(response["Retry-After"]) <= 60


@pytest.mark.redis
def test_with_redis_other_permissions_never_share_a_page_on_the_early_path(redis_cache):
    Dataset.objects.create(name="orders", layer="explore", table="orders")
    analyst, auditor = token_client(user_with_role("Analyst")), token_client(user_with_role("Auditor", username="aud"))
    for _ in range(3):
        analyst.get(URL)
    assert auditor.get(URL)["X-Atlas-Page-Cache"] == "miss"
    from knox.models import AuthToken

    AuthToken.objects.all().delete()
    assert analyst.get(URL).status_code == 401


# --- a write's bump: once now and once at commit per transaction; on Redis one round trip ---------------
def test_a_transactions_writes_bump_the_generation_once_now_and_once_at_commit(page_cache, django_capture_on_commit_callbacks):
    before = pagecache.generation()
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        for name in ("a", "b", "c"):
            Dataset.objects.create(name=name, layer="explore", table=name)
        assert pagecache.generation() == before + 1  # the first write, at once: the writer's own page is not stored
    assert [c for c in callbacks if c is pagecache.bump] == [pagecache.bump]
    assert pagecache.generation() == before + 2  # and at commit, for every other process


def test_a_process_that_read_no_generation_since_its_last_bump_bumps_at_commit_only(page_cache, django_capture_on_commit_callbacks):
    """A worker renders no page: its transactions' writes bump once each, when they commit (issue 14: a run's cost)."""
    before = pagecache.generation()
    pagecache.bump()  # this process's last act on the generation was a bump: no page of its own since
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        Dataset.objects.create(name="a", layer="explore", table="a")
        assert cache.get(pagecache.GENERATION_KEY) == before + 1  # (read without marking a page): not bumped now
    assert [c for c in callbacks if c is pagecache.bump] == [pagecache.bump]
    assert pagecache.generation() == before + 2  # at commit, for every other process
    with transaction.atomic():  # a generation read since (a page began): the next transaction bumps at once too
        Dataset.objects.create(name="b", layer="explore", table="b")
        assert cache.get(pagecache.GENERATION_KEY) == before + 3


@pytest.mark.redis
def test_with_redis_a_bump_is_one_round_trip_and_a_missing_generation_starts_anew(redis_cache):
    import time
    from unittest import mock

    fast = pagecache._fast()
    start = pagecache.generation()
    with mock.patch.object(fast.client, "execute_command", wraps=fast.client.execute_command) as commands:
        pagecache.bump()
    assert [c.args[0] for c in commands.call_args_list] == ["EVALSHA"]
    assert pagecache.generation() == start + 1
    cache.delete(pagecache.GENERATION_KEY)  # evicted: the next bump starts from a value never used before
    now = time.time_ns()
    pagecache.bump()
    assert pagecache.generation() > max(now, start + 1)
