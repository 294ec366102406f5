"""What the schema promises about bodies and text (the fixed schemathesis draw found both gaps)."""

from __future__ import annotations

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

from atlas.api.schema import NO_NUL, NOT_BLANK


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_request_bodies_are_json_only(schema):
    bodies = [op["requestBody"] for path in schema["paths"].values() for op in path.values()
              if isinstance(op, dict) and "requestBody" in op]
    assert bodies and all(set(b["content"]) == {"application/json"} for b in bodies)


def test_free_text_states_that_nul_is_refused(schema):
    check = schema["components"]["schemas"]["CheckRequest"]["properties"]
    assert check["name"]["pattern"] == NOT_BLANK and check["description"]["pattern"] == NO_NUL  # required / optional
    assert not re.search(NOT_BLANK, "a\x00b") and not re.search(NO_NUL, "a\x00b")
    filters = [p["schema"] for p in schema["paths"]["/api/v1/audit-events/"]["get"]["parameters"]]
    assert any(s.get("pattern") == NO_NUL for s in filters if s.get("type") == "string")


def test_the_api_refuses_nul_in_text_with_a_400(admin_client, db):
    from pipelines.models import Dataset

    dataset = Dataset.objects.create(name="people", layer="chart", table="people")
    answer = admin_client.post("/api/v1/checks/", {"dataset": dataset.pk, "name": "a\x00b", "kind": "not_null",
                                                   "columns": ["id"]}, content_type="application/json")
    assert answer.status_code == 400 and "Null characters" in answer.content.decode()
