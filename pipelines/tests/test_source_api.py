"""JSON API sources against a real local HTTP server (pipelines/httpapi.py).

The issue's failure first: URL sources were a single plain GET; an API behind a bearer
token, paginated, now loads every page's records, flattened to rows.
"""

from __future__ import annotations

import email.utils
import json
import time

import pytest
from django.core.exceptions import ValidationError

from atlas.warehouse.filereader import IngestError
from pipelines import httpapi
from pipelines.models import RunStatus, Source, StepRun
from pipelines.sources import source_files

from .conftest import explore_rows, run_now
from .connector_fixtures import json_answer

TOKEN = "tok-5ecret-value-42"
PEOPLE = [
    {"id": i, "name": f"P{i}", "address": {"city": f"C{i}", "geo": {"lat": i / 2}}, "tags": ["a", str(i)]}
    for i in range(1, 8)
]


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("ATLAS_SOURCE_SECRET_API_TOKEN", TOKEN)
    return "env:ATLAS_SOURCE_SECRET_API_TOKEN"


def authorised(handler) -> bool:
    return handler.headers.get("Authorization") == f"Bearer {TOKEN}"


def serve_link_pages(api, records: list[dict], size: int = 3) -> None:
    def people(handler, query):
        if not authorised(handler):
            return json_answer({"error": "unauthorised", "echo": handler.headers.get("Authorization")}, 401)
        page = int(query.get("page", 1))
        chunk = records[(page - 1) * size : page * size]
        headers = {}
        if page * size < len(records):
            headers["Link"] = f'</people?page={page + 1}>; rel="next", </people?page=1>; rel="first"'
        return json_answer({"data": chunk}, **headers)

    api.routes["/people"] = people


def api_source(api, path: str = "/people", **options) -> Source:
    return Source(name="api", kind="api", format="jsonl", location=api.base + path, options=options)


def read_rows(source: Source) -> list[dict]:
    with source_files(source) as files:
        files = list(files)
        if not files:
            return []
        with open(files[0].path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]


def test_a_paginated_api_behind_a_bearer_token_loads_every_page_flattened(wh, api, token, ingest_pipeline):
    serve_link_pages(api, PEOPLE)
    pipeline = ingest_pipeline(
        kind="api", fmt="jsonl", location=api.base + "/people", table="people",
        options={"bearer": token, "records": "data", "pagination": {"style": "link"}},
    )
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    rows = explore_rows(wh, "people", 'id, name, "address.city", "address.geo.lat", tags')
    assert sorted(rows, key=lambda r: int(r[0])) == [
        (str(p["id"]), p["name"], p["address"]["city"], str(p["address"]["geo"]["lat"]), json.dumps(p["tags"], separators=(",", ":")))
        for p in PEOPLE
    ]
    assert [s["query"].get("page") for s in api.seen] == [None, "2", "3"]
    assert StepRun.objects.get(run=run).rows_out == 7
    assert TOKEN not in json.dumps(list(Source.objects.values_list("options", flat=True)))


@pytest.mark.parametrize("style", ["link", "cursor", "next", "page"])
def test_each_pagination_style_reads_every_record_once(db, api, token, style):
    size = 3

    def people(handler, query):
        assert authorised(handler)
        if style == "cursor":
            start = int(query.get("after", 0))
            chunk = PEOPLE[start : start + size]
            more = start + size < len(PEOPLE)
            return json_answer({"items": chunk, "meta": {"next_cursor": str(start + size) if more else None}})
        if style == "next":
            start = int(query.get("offset", 0))
            more = start + size < len(PEOPLE)
            return json_answer({"items": PEOPLE[start : start + size], "links": {"next": f"/people?offset={start + size}" if more else None}})
        if style == "page":
            page, per = int(query["p"]), int(query["per_page"])
            return json_answer({"items": PEOPLE[(page - 1) * per : page * per]})
        page = int(query.get("page", 1))
        link = {"Link": f'<{api.base}/people?page={page + 1}>; rel="next"'} if page * size < len(PEOPLE) else {}
        return json_answer({"items": PEOPLE[(page - 1) * size : page * size]}, **link)

    api.routes["/people"] = people
    pagination = {
        "link": {"style": "link"},
        "cursor": {"style": "cursor", "cursor": "meta.next_cursor", "param": "after"},
        "next": {"style": "next", "field": "links.next"},
        "page": {"style": "page", "param": "p", "size_param": "per_page", "size": size, "start": 1},
    }[style]
    source = api_source(api, bearer=token, records="items", pagination=pagination)
    source.full_clean()
    rows = read_rows(source)
    assert [r["id"] for r in rows] == [p["id"] for p in PEOPLE]
    assert rows[0] == {"id": 1, "name": "P1", "address.city": "C1", "address.geo.lat": 0.5, "tags": '["a","1"]'}
    assert len(api.seen) == 3  # 3 + 3 + 1 records (page style: the short page is the last)


def test_an_auth_failure_is_a_clear_error_without_the_secret_and_loads_nothing(wh, api, monkeypatch, ingest_pipeline):
    serve_link_pages(api, PEOPLE)
    monkeypatch.setenv("ATLAS_SOURCE_SECRET_API_TOKEN", "wrong-" + TOKEN)
    pipeline = ingest_pipeline(
        kind="api", fmt="jsonl", location=api.base + "/people", table="denied",
        options={"bearer": "env:ATLAS_SOURCE_SECRET_API_TOKEN", "records": "data", "pagination": {"style": "link"}},
    )
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    error = StepRun.objects.get(run=run).error
    assert "refused the credentials (HTTP 401)" in error and "page 1" in error
    assert TOKEN not in error and "wrong-" not in error
    assert not wh.table_exists("explore", "denied")
    assert len(api.seen) == 1  # an auth failure is not retried


def test_429_with_retry_after_is_honoured_then_the_page_loads(db, api, token):
    answers = iter([json_answer({"error": "slow down"}, 429, **{"Retry-After": "1"})])

    def people(handler, query):
        return next(answers, None) or json_answer({"data": PEOPLE[:2]})

    api.routes["/people"] = people
    rows = read_rows(api_source(api, bearer=token, records="data"))
    assert [r["id"] for r in rows] == [1, 2]
    assert len(api.seen) == 2
    assert api.seen[1]["at"] - api.seen[0]["at"] >= 1.0  # waited at least the Retry-After


def test_5xx_answers_are_retried_with_backoff_then_succeed_or_fail_clearly(db, api, token, settings):
    failures = {"n": 0}

    def flaky(handler, query):
        failures["n"] += 1
        return (json_answer({}, 503) if failures["n"] <= 2 else json_answer({"data": PEOPLE[:1]}))

    api.routes["/people"] = flaky
    assert [r["id"] for r in read_rows(api_source(api, bearer=token, records="data"))] == [1]
    assert len(api.seen) == 3

    api.routes["/broken"] = lambda handler, query: json_answer({"trace": TOKEN}, 500)
    settings.ATLAS_API_MAX_RETRIES = 2
    with pytest.raises(IngestError) as info, source_files(api_source(api, "/broken", bearer=token)):
        pass
    assert "failed after 3 attempts; last: HTTP 500" in str(info.value)
    assert TOKEN not in str(info.value)


def test_a_retry_after_beyond_the_ceiling_fails_at_once(db, api, token, settings):
    settings.ATLAS_API_MAX_RETRY_AFTER_SECONDS = 5
    api.routes["/people"] = lambda handler, query: json_answer({}, 503, **{"Retry-After": "3600"})
    with pytest.raises(IngestError, match="asking to wait 3600 s, more than ATLAS_API_MAX_RETRY_AFTER_SECONDS"), source_files(api_source(api, bearer=token)):
        pass
    assert len(api.seen) == 1


@pytest.mark.parametrize(
    ("page2", "message"),
    [
        (b'{"data": [{"id": 4},', "is not valid JSON: Expecting"),
        (b'{"rows": []}', "no list at the records path 'data'; the page holds keys rows"),
        (b'{"data": [{"id": 4}, 5]}', "record 2 is a JSON int, not an object"),
        (b'{"data": [{"id": 4}]}\xff', "is not UTF-8 JSON"),
    ],
)
def test_a_malformed_page_is_a_clear_error_and_nothing_is_half_loaded(wh, api, token, ingest_pipeline, page2, message):
    def people(handler, query):
        if query.get("page") == "2":
            return 200, {"Content-Type": "application/json"}, page2
        return json_answer({"data": PEOPLE[:3]}, Link='</people?page=2>; rel="next"')

    api.routes["/people"] = people
    pipeline = ingest_pipeline(
        kind="api", fmt="jsonl", location=api.base + "/people", table="halfway",
        options={"bearer": token, "records": "data", "pagination": {"style": "link"}},
    )
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    error = StepRun.objects.get(run=run).error
    assert "(page 2)" in error and message in error, error
    assert not wh.table_exists("explore", "halfway")  # page 1's three records were not loaded either


def test_page_and_record_limits_stop_the_read(db, api, token, settings):
    serve_link_pages(api, PEOPLE)
    base = {"bearer": token, "records": "data", "pagination": {"style": "link"}}
    assert [r["id"] for r in read_rows(api_source(api, **base, max_pages=2))] == [1, 2, 3, 4, 5, 6]
    assert [r["id"] for r in read_rows(api_source(api, **base, max_records=4))] == [1, 2, 3, 4]
    settings.ATLAS_API_MAX_PAGES = 2
    with pytest.raises(IngestError, match="more than ATLAS_API_MAX_PAGES \\(2\\) pages; set max_pages"), source_files(api_source(api, **base)):
        pass


def test_a_pagination_loop_and_a_next_page_on_another_origin_are_refused(db, api, token):
    api.routes["/loop"] = lambda handler, query: json_answer({"data": [{"id": 1}]}, Link='</loop>; rel="next"')
    with pytest.raises(IngestError, match="a pagination loop"), source_files(api_source(api, "/loop", bearer=token, records="data", pagination={"style": "link"})):
        pass
    api.routes["/away"] = lambda handler, query: json_answer({"data": [{"id": 1}]}, Link=f'<http://localhost:{api.port}/people>; rel="next"')
    with pytest.raises(IngestError, match="on another origin") as info, source_files(api_source(api, "/away", bearer=token, records="data", pagination={"style": "link"})):
        pass
    assert TOKEN not in str(info.value)
    assert [s["path"] for s in api.seen].count("/people") == 0  # the token never went there


def test_loopback_is_refused_unless_the_operator_allows_it(db, api, token, settings):
    settings.ATLAS_URL_ALLOWED_NETWORKS = []
    api.routes["/people"] = lambda handler, query: json_answer([{"id": 1}])
    with pytest.raises(IngestError, match="non-public address"), source_files(api_source(api, bearer=token)):
        pass
    assert api.seen == []


def test_keys_first_seen_late_become_columns_and_an_empty_api_skips_the_step(wh, api, ingest_pipeline):
    records = [{"id": i} for i in range(1, 400)] + [{"id": 400, "late": {"field": "x"}}]
    api.routes["/r"] = lambda handler, query: json_answer(records)
    pipeline = ingest_pipeline(kind="api", fmt="jsonl", location=api.base + "/r", table="late")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert explore_rows(wh, "late", 'id, "late.field"')[-1] == ("400", "x")
    api.routes["/r"] = lambda handler, query: json_answer([])
    assert run_now(pipeline).step_runs.get().status == RunStatus.SKIPPED


def test_flatten_dots_nested_objects_and_writes_arrays_as_json_text():
    assert httpapi.flatten({"a": {"b": {"c": 1}, "d": []}, "e": None, "f": {}}) == {"a.b.c": 1, "a.d": "[]", "e": None, "f": "{}"}
    with pytest.raises(ValueError, match="arises twice"):
        httpapi.flatten({"a.b": 1, "a": {"b": 2}})
    assert httpapi.next_link('<https://x/a?p=2>; rel="next", <https://x/a?p=9>; rel="last"') == "https://x/a?p=2"
    assert httpapi.next_link('<https://x/a?p=9>; rel="last"') is None
    assert httpapi.retry_after("7") == 7.0 and httpapi.retry_after("soon") is None
    assert 100 < httpapi.retry_after(email.utils.formatdate(time.time() + 120, usegmt=True)) <= 120


def test_backoff_doubles_with_jitter_and_is_capped(settings):
    settings.ATLAS_API_BACKOFF_SECONDS, settings.ATLAS_API_MAX_BACKOFF_SECONDS = 1.0, 10.0
    waits = {attempt: [httpapi.backoff(attempt) for _ in range(200)] for attempt in range(6)}
    for attempt, values in waits.items():
        ceiling = min(10.0, 2.0**attempt)
        assert all(ceiling / 2 <= v <= ceiling for v in values)
        assert len(set(values)) > 100  # jittered: retries of many clients spread out


@pytest.mark.parametrize(
    ("location", "fmt", "options", "field", "message"),
    [
        ("ftp://api.example.com/x", "jsonl", {}, "location", "needs the http:// or https:// URL"),
        ("https://api.example.com/x?api_key=abc", "jsonl", {}, "location", "look like a secret"),
        ("https://api.example.com/x", "csv", {}, "format", "set format to jsonl"),
        ("https://api.example.com/x", "jsonl", {"bearer": TOKEN}, "options", "never the secret itself"),
        ("https://api.example.com/x", "jsonl", {"bearer": "env:SECRET_KEY"}, "options", "may only reference"),
        ("https://api.example.com/x", "jsonl", {"headers": {"X-Api-Key": TOKEN}}, "options", "never the secret itself"),
        ("https://api.example.com/x", "jsonl", {"records": "data[0]"}, "options", "records must be a dotted path"),
        ("https://api.example.com/x", "jsonl", {"max_pages": 0}, "options", "max_pages must be a whole number"),
        ("https://api.example.com/x", "jsonl", {"pagination": {"style": "offset"}}, "options", "one of cursor, link, next, page"),
        ("https://api.example.com/x", "jsonl", {"pagination": {"style": "cursor", "cursor": "meta.next"}}, "options", "needs param"),
        ("https://api.example.com/x", "jsonl", {"pagination": {"style": "page", "param": "p"}}, "options", "needs size"),
        ("https://api.example.com/x", "jsonl", {"pagination": {"style": "link", "size": 3}}, "options", "takes no size"),
        ("https://api.example.com/x", "jsonl", {"endpoint_url": "x"}, "options", "Unknown option(s): endpoint_url"),
    ],
)
def test_bad_api_sources_are_refused_at_save_with_a_clear_error(db, location, fmt, options, field, message):
    source = Source(name="bad", kind="api", format=fmt, location=location, options=options)
    with pytest.raises(ValidationError) as info:
        source.full_clean()
    assert message in " ".join(info.value.message_dict.get(field, [])), info.value.message_dict
    assert TOKEN not in str(info.value)
