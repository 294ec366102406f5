"""Inputs that once answered 500 (issue 17, found by fuzzing and by hand): each a clear 4xx now."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from atlas.api.parsers import MAX_DEPTH, json_depth
from atlas.api.testing import assert_error, token_client
from atlas.sql.validate import MAX_NESTING, MAX_SQL_CHARS
from lineage.models import ReceivedEvent
from pipelines.models import Dataset, Pipeline

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return token_client(get_user_model().objects.create_superuser("boss", password="pw"))


def _event(**changes) -> dict:
    return {
        "eventType": "START",
        "eventTime": "2026-01-01T00:00:00Z",
        "run": {"runId": "01890000-0000-7000-8000-000000000000"},
        "job": {"namespace": "other-tool", "name": "nightly"},
        "producer": "https://example.com/producer",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        **changes,
    }


@pytest.mark.parametrize("cron", ["-1 * * * *", "*/-5 * * * *", "1--2 * * * *", "0 0 L * *", "0 0 * * 7", "60 * * * *"])
def test_a_crontab_out_of_the_grammar_is_a_409_naming_the_field(api, cron):
    """A string the schema allows, refused by the model's rule: 409 conflict (400 is for what breaks the schema)."""
    error = assert_error(api.post("/api/v1/pipelines/", {"name": "p", "schedule": cron}), 409, "conflict")
    assert "crontab" in str(error["detail"]).lower()
    assert not Pipeline.objects.exists()


def test_deeply_nested_sql_is_refused_before_the_parser_recurses(api):
    out = Dataset.objects.create(name="o", layer="chart", table="o")
    Dataset.objects.create(name="r", layer="explore", table="r")
    pipeline = Pipeline.objects.create(name="pp")
    sql = "SELECT " + "(" * 3000 + "1" + ")" * 3000 + " AS x FROM explore.r"
    error = assert_error(
        api.post("/api/v1/steps/", {"pipeline": pipeline.pk, "name": "s", "kind": "refine", "output": out.pk, "sql": sql}),
        409,
    )
    assert f"deeper than {MAX_NESTING}" in str(error["detail"])


def test_parentheses_inside_strings_and_comments_do_not_count(api):
    from atlas.sql.validate import parse_statement

    parse_statement("SELECT '" + "(" * 500 + "' AS x -- " + "(" * 500 + "\nFROM explore.r")


def test_sql_longer_than_the_limit_is_refused_with_its_size(api):
    from atlas.sql import SQLRefused
    from atlas.sql.validate import parse_statement

    with pytest.raises(SQLRefused, match="characters long"):
        parse_statement("SELECT 1 AS x" + " " * MAX_SQL_CHARS)


def test_json_nested_100k_deep_is_a_400_not_a_recursion_error(api):
    response = api.generic("POST", "/api/v1/lineage", "[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert_error(response, 400)
    response = api.generic("POST", "/api/v1/pipelines/", '{"name": ' + "[" * 5000 + "]" * 5000 + "}",
                           content_type="application/json")
    assert_error(response, 400)


def test_json_depth_skips_strings_and_escapes():
    assert json_depth(b'{"a": [1, {"b": "[[[[\\"]]]"}]}') == 3
    assert json_depth(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)) == MAX_DEPTH + 1
    assert json_depth(b'"{{{{"') == 0


@pytest.mark.parametrize(
    "changes,where",
    [
        ({"eventTime": "yesterday"}, "eventTime"),
        ({"eventTime": "2026-13-45T99:00:00Z"}, "eventTime"),
        ({"producer": "not a uri at all"}, "producer"),
    ],
)
def test_lineage_receive_checks_formats(api, changes, where):
    error = assert_error(api.post("/api/v1/lineage", _event(**changes)), 400)
    assert where in str(error["detail"])
    assert not ReceivedEvent.objects.exists()


def test_lineage_receive_is_idempotent(api):
    first = api.post("/api/v1/lineage", _event())
    again = api.post("/api/v1/lineage", _event())
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert ReceivedEvent.objects.count() == 1
    other = api.post("/api/v1/lineage", _event(eventType="COMPLETE"))
    assert other.status_code == 201 and ReceivedEvent.objects.count() == 2
