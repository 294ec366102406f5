"""What schemathesis's random draws (``ATLAS_FUZZ_EXPLORE=1``) found, each a test: the schema and the API agree.

A request the schema allows is never refused as malformed (400), and one it does not allow is never
accepted — for every field of the type, not only the one the draw happened to hit.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from django.contrib.auth import get_user_model
from drf_spectacular.generators import SchemaGenerator

from atlas.api.schema import NOT_BLANK, WHITE_SPACE
from atlas.api.testing import assert_error, token_client
from compliance.models import ColumnPolicy
from pipelines.models import Dataset, Pipeline, PipelineRun

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def api():
    return token_client(get_user_model().objects.create_superuser("boss", password="pw"))


def _post(api, path: str, body: str):
    """A raw JSON body, so that numbers are sent exactly as written (``1e17``, ``1e400``)."""
    return api.generic("POST", path, body, content_type="application/json")


def _request_properties(schema):
    for name, component in schema["components"]["schemas"].items():
        if name.endswith("Request"):
            for prop, sub in component.get("properties", {}).items():
                yield f"{name}.{prop}", sub


# --- a name of white space ------------------------------------------------------------------------
def test_a_name_of_spaces_is_refused_and_the_schema_says_so(api, schema):
    """The draw: ``{"name": "   "}`` was schema-valid but blank once DRF trimmed it (a 400 for a valid request)."""
    error = assert_error(api.post("/api/v1/pipelines/", {"name": " \t\u3000"}, format="json"), 400, "invalid")
    assert "name" in error["detail"]
    assert not Pipeline.objects.exists()
    name = schema["components"]["schemas"]["PipelineRequest"]["properties"]["name"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(" \t\u3000", name)
    jsonschema.validate(" a ", name)


def test_every_required_text_asks_for_a_character_that_is_not_white_space(schema):
    """Every trimmed text that may not be blank (minLength 1, no pattern of its own) carries NOT_BLANK."""
    required_texts = [(where, sub) for where, sub in _request_properties(schema)
                      if sub.get("type") == "string" and sub.get("minLength", 0) >= 1 and "format" not in sub]
    assert len(required_texts) > 20, required_texts
    blank = [where for where, sub in required_texts if re.search(sub.get("pattern", ""), "  \u2028 ")]
    assert not blank, f"schema-valid yet blank once trimmed: {blank}"


def test_the_white_space_the_schema_names_is_what_python_strips():
    stripped = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
    named = re.compile(f"[{WHITE_SPACE}]")
    assert all(named.fullmatch(c) for c in stripped)
    assert not any(named.fullmatch(chr(c)) for c in range(0x110000) if not chr(c).isspace())
    assert re.search(NOT_BLANK, "\x1c\x85 x") and not re.search(NOT_BLANK, "\x1c\x85 ") and not re.search(NOT_BLANK, "x\x00")


def test_max_length_counts_what_was_sent_not_what_is_left_once_trimmed(api):
    error = assert_error(api.post("/api/v1/pipelines/", {"name": " " * 200 + "p"}, format="json"), 400, "invalid")
    assert "name" in error["detail"]


# --- numbers --------------------------------------------------------------------------------------
def test_a_float_looking_integer_is_that_integer(api):
    """The draw: ``1e17`` for an integer field answered 'A valid integer is required.' (int('1e+17')); ``1e9``
    fits every engine's integer column (PostgreSQL's ``integer`` stops at 2**31-1, which its schema states)."""
    answer = _post(api, "/api/v1/alert-rules/", '{"name": "r", "channel": "email", "recipients": "ops@example.com",'
                   ' "events": ["run_failed"], "max_per_window": 1e9, "window_minutes": 60.0}')
    assert answer.status_code == 201, answer.content
    assert answer.json()["max_per_window"] == 10**9 and answer.json()["window_minutes"] == 60
    # 1e17 for an id: that integer, which nothing has (a rule, 409), not "A valid integer is required" (400)
    answer = _post(api, "/api/v1/checks/", '{"dataset": 1e17, "name": "n", "kind": "row_count", "params": {"min": 1}}')
    assert "dataset" in assert_error(answer, 409, "conflict")["detail"]


def test_every_writable_integer_and_number_field_is_atlas_s(api):
    """The mapping is fixed for every field of the type: each serializer the API uses builds Atlas's fields."""
    from rest_framework import serializers as drf

    from atlas.api import serializers as ours
    from atlas.api.urls import router

    checked = 0
    for _prefix, viewset, _basename in router.registry:
        serializer_class = getattr(viewset, "serializer_class", None)
        if serializer_class is None or not issubclass(serializer_class, drf.ModelSerializer):
            continue
        assert issubclass(serializer_class, ours.ModelSerializer), serializer_class
        for name, field in serializer_class().fields.items():
            if field.read_only:
                continue
            checked += 1
            if isinstance(field, drf.IntegerField):
                assert isinstance(field, ours.IntegerField), (serializer_class, name)
            if isinstance(field, drf.FloatField):
                assert isinstance(field, ours.FloatField), (serializer_class, name)
            if isinstance(field, drf.PrimaryKeyRelatedField):
                assert isinstance(field, ours.PrimaryKeyRelatedField), (serializer_class, name)
            if isinstance(field, drf.ManyRelatedField):
                assert isinstance(field.child_relation, ours.PrimaryKeyRelatedField), (serializer_class, name)
    assert checked > 30


@pytest.mark.parametrize("value", ["1.5", "true", '"3"'])
def test_what_is_not_an_integer_is_refused(api, value):
    answer = _post(api, "/api/v1/alert-rules/", '{"name": "r", "channel": "email", "recipients": "ops@example.com",'
                   f' "events": ["run_failed"], "max_per_window": {value}}}')
    assert "max_per_window" in assert_error(answer, 400, "invalid")["detail"]


@pytest.mark.parametrize("value", ["1.5", '"1"', "true"])
def test_a_reference_is_an_integer_id(api, value):
    """Django would read ``1.5`` and ``"1"`` as id 1: the schema says integer, so they are refused."""
    Dataset.objects.create(name="d", layer="chart", table="d")
    answer = _post(api, "/api/v1/checks/", f'{{"dataset": {value}, "name": "n", "kind": "row_count", "params": {{"min": 1}}}}')
    assert "dataset" in assert_error(answer, 400, "invalid")["detail"]


def test_a_reference_written_as_a_float_looking_integer_finds_its_object(api):
    dataset = Dataset.objects.create(name="d", layer="chart", table="d")
    answer = _post(api, "/api/v1/checks/", f'{{"dataset": {dataset.pk}.0, "name": "n", "kind": "row_count", "params": {{"min": 1}}}}')
    assert answer.status_code == 201 and answer.json()["dataset"] == dataset.pk, answer.content


# --- a nullable number (tolerance) ----------------------------------------------------------------
@pytest.fixture
def chart():
    return Dataset.objects.create(name="people", layer="chart", table="people")


def _check(chart, tolerance: str) -> str:
    return (f'{{"dataset": {chart.pk}, "name": "email_set", "kind": "not_null", "columns": ["email"],'
            f' "severity": "fail", "tolerance": {tolerance}}}')


@pytest.mark.parametrize("encoded, stored", [("0.25", 0.25), ("0", 0.0), ("1", 1.0), ("2.5e-1", 0.25), ("null", None)])
def test_a_nullable_number_accepts_json_numbers_and_null(api, chart, encoded, stored):
    answer = _post(api, "/api/v1/checks/", _check(chart, encoded))
    assert answer.status_code == 201, answer.content
    assert answer.json()["tolerance"] == stored


@pytest.mark.parametrize("encoded", ['"0.25"', '"null"', '""', "true", "1e400", "-1e400", "1" + "0" * 400])
def test_a_nullable_number_refuses_strings_booleans_and_what_no_double_holds(api, chart, encoded, schema):
    """The draw: ``tolerance`` refused as 'A valid number is required' for a value the schema allowed (1e400 reads
    as infinity). The schema now states a double's bounds, so each of these breaks it — and is a 400."""
    assert "tolerance" in assert_error(_post(api, "/api/v1/checks/", _check(chart, encoded)), 400, "invalid")["detail"]
    tolerance = schema["components"]["schemas"]["CheckRequest"]["properties"]["tolerance"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(encoded), tolerance)


def test_every_number_in_a_request_states_a_double_s_bounds(schema):
    numbers = [(where, sub) for where, sub in _request_properties(schema) if sub.get("type") == "number"]
    assert numbers
    assert all("maximum" in sub and "minimum" in sub for _where, sub in numbers), numbers


# --- NUL in a column policy's column --------------------------------------------------------------
def test_nul_in_a_column_policy_s_column_is_a_400_and_nothing_is_saved(api, chart, schema):
    for column in ("a\x00b", "\x00"):
        error = assert_error(api.post("/api/v1/column-policies/", {"dataset": chart.pk, "column": column, "action": "hash"},
                                      format="json"), 400, "invalid")
        assert "column" in error["detail"]
    assert not ColumnPolicy.objects.exists()
    column = schema["components"]["schemas"]["ColumnPolicyRequest"]["properties"]["column"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("a\x00b", column)
    assert_error(api.get("/api/v1/column-policies/", {"column": "a\x00b"}), 400, "invalid")


def test_a_policy_refused_by_its_rules_is_a_409_not_a_400(api, chart):
    """Options and reasons the schema cannot state (compliance.policies) are rules: 409, as the schema documents."""
    answer = api.post("/api/v1/column-policies/", {"dataset": chart.pk, "column": "email", "action": "mask",
                                                   "options": {"keep_last": 999}}, format="json")
    assert_error(answer, 409, "conflict")


# --- odd ids ---------------------------------------------------------------------------------------
# Percent-encoded as a client sends them (the test client would drop a raw newline from the URL).
@pytest.mark.parametrize("odd", ["{pk}.%0A", ".%0A", "%0A", "{pk}%0A", "%20{pk}", "{pk}%20", "{pk}.5", "-{pk}", "{pk}e0", "x%00", "%0A.%0A"])
def test_an_odd_id_is_a_json_404_on_every_method(api, chart, odd):
    """The draw: DELETE /column-policies/{id}/ with a dot and a newline answered Django's HTML 404 page; ``1\\n``
    reached policy 1 (Django reads it as 1). Every method answers the API's JSON 404 and nothing is deleted."""
    policy = ColumnPolicy.objects.create(dataset=chart, column="email", action="hash")
    for method in ("delete", "get", "patch", "put"):
        answer = getattr(api, method)(f"/api/v1/column-policies/{odd.format(pk=policy.pk)}/")
        assert answer["Content-Type"] == "application/json", (method, answer.content[:200])
        assert_error(answer, 404, "not_found")
    assert ColumnPolicy.objects.filter(pk=policy.pk).exists()


# --- GET /runs/ with times that are not RFC 3339 ----------------------------------------------------
@pytest.mark.parametrize("value", ["2026-12-04", "2026-12-04T10:00", "2026-12-04T10:00:00", "20261204T100000Z",
                                   " 2026-12-04T10:00:00Z", "2026-12-04T10:00:00Z\n", "2026-W49-5T10:00:00Z"])
def test_a_time_that_is_not_rfc_3339_is_refused_on_runs(api, value):
    """The draw: ``finished_after`` broke ``format: date-time`` and was accepted (django-filter reads any ISO 8601)."""
    for name in ("created_after", "created_before", "finished_after", "finished_before"):
        error = assert_error(api.get("/api/v1/runs/", {name: value}), 400, "invalid")
        assert name in error["detail"]
        if not value.endswith("\n"):  # jsonschema's checker lets a trailing newline through (a "$" in its regex)
            assert not jsonschema.Draft202012Validator(
                {"type": "string", "format": "date-time"}, format_checker=jsonschema.FormatChecker()).is_valid(value)


@pytest.mark.parametrize("value", ["2026-12-04T10:00:00Z", "2026-12-04t10:00:00.5z", "2026-12-04T11:00:00+01:00",
                                   "2026-12-31T23:59:60Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_every_rfc_3339_time_is_accepted_on_runs(api, value):
    """Lower-case t and z, a leap second, and times past what Python holds once in UTC are valid RFC 3339 too."""
    pipeline = Pipeline.objects.create(name="p")
    PipelineRun.objects.create(pipeline=pipeline, trigger="manual", status="succeeded")
    for name in ("created_after", "created_before", "finished_after", "finished_before"):
        answer = api.get("/api/v1/runs/", {name: value})
        assert answer.status_code == 200, (name, value, answer.content[:300])


def test_text_is_a_json_string_not_a_number(api):
    """The draw: ``{"name": -756}`` created a pipeline named "-756" (the schema says string)."""
    assert "name" in assert_error(_post(api, "/api/v1/pipelines/", '{"name": -756}'), 400, "invalid")["detail"]
    assert not Pipeline.objects.exists()


@pytest.mark.parametrize("path, name", [("/api/v1/runs/", "created_before"), ("/api/v1/runs/", "finished_after"),
                                        ("/api/v1/datasets/", "loaded_before"), ("/api/v1/column-policies/", "proposed"),
                                        ("/api/v1/runs/", "pipeline"), ("/api/v1/datasets/", "layer")])
def test_an_empty_typed_filter_is_refused_not_ignored(api, path, name):
    """The draw: ``?created_before=`` and ``?proposed=`` (empty: no date-time, no boolean) answered every row."""
    assert name in assert_error(api.get(path, {name: ""}), 400, "invalid")["detail"]


def test_an_empty_text_filter_is_a_value_like_any_other(api):
    assert api.get("/api/v1/datasets/", {"name": ""}).status_code == 200


def test_a_text_with_its_own_pattern_keeps_it(schema):
    """The draw: a subject key's ``kind`` lost its pattern to the not-blank one and "Ý}á^" looked valid."""
    kind = schema["components"]["schemas"]["SubjectKeyRequest"]["properties"]["kind"]
    assert kind["pattern"] == "^[a-z][a-z0-9_]{0,39}$"


@pytest.mark.parametrize("page", ["", " 1", "1 ", "+1", "1.0", "x"])
def test_a_page_that_is_not_digits_is_no_page(api, page):
    """The draw: ``?page=`` (schema: integer) answered the first page."""
    assert_error(api.get("/api/v1/datasets/", {"page": page}), 404, "not_found")
    assert api.get("/api/v1/datasets/", {"page": "1"}).status_code == 200
