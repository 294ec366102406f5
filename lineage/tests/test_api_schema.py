"""The lineage endpoint against its own OpenAPI description: documented, and no 5xx whatever is sent."""

from __future__ import annotations

import base64

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from .conftest import run_now

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")


@pytest.fixture
def wsgi_app(db):
    from atlas.wsgi import application

    # As Django's test client does: a finished request must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield application
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_lineage_endpoint_is_documented(admin_client, db):
    schema = admin_client.get("/api/schema/?format=json").json()
    operations = schema["paths"]["/api/v1/lineage"]
    assert set(operations) >= {"get", "post"}
    assert "201" in operations["post"]["responses"] and "200" in operations["get"]["responses"]
    assert {p["name"] for p in operations["get"]["parameters"]} >= {"dataset", "direction", "depth"}


@pytest.mark.slow
@pytest.mark.once_on_postgres  # the API over the metadata: make test runs it in the PostgreSQL pass only
def test_generated_requests_never_break_the_endpoint_or_its_schema(wsgi_app, django_user_model, wh, simple_pipeline, lineage_hook):
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    run_now(simple_pipeline())  # a real graph, so generated names sometimes hit (e.g. "people")
    from knox.models import AuthToken

    fuzz = django_user_model.objects.create_superuser("fuzz", "fuzz@example.invalid", "pw")
    headers = {"Authorization": "Basic " + base64.b64encode(b"fuzz:pw").decode()}
    # The schema is for signed-in users (issue 12): read it with a token.
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", wsgi_app, headers={"Authorization": f"Token {AuthToken.objects.create(user=fuzz)[1]}"}
    )
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path != "/api/v1/lineage":
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(headers=headers, checks=checks)

        check()
        tested.append(operation.method.upper())
    assert sorted(tested) == ["GET", "POST"]
