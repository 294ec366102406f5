"""Schemathesis against our own OpenAPI schema: no 5xx, no response that breaks the schema.

Runs through the WSGI app in this process (the test database), as a
superuser with a token, a bounded number of generated requests per
operation. Each operation's strategy is driven by Hypothesis directly
(``operation.as_strategy()``), so the test is one plain pytest test.

The draw is derandomized, so the suite judges the code, not the luck of one draw;
``ATLAS_FUZZ_EXPLORE=1`` draws new examples (that is how NUL bytes reaching
PostgreSQL were found).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from atlas.wsgi import application

EXPLORE = os.environ.get("ATLAS_FUZZ_EXPLORE") == "1"  # new examples each run (to hunt), else the fixed draw

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 12


@pytest.fixture
def wsgi_in_test_transaction(db):
    # As Django's test client does: a finished request must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield application
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.slow
@pytest.mark.once_on_postgres  # the API over the metadata: make test runs it in the PostgreSQL pass only
def test_the_api_keeps_its_schema(wsgi_in_test_transaction, django_user_model, wh, simple_pipeline_for_fuzz):
    from knox.models import AuthToken

    user = django_user_model.objects.create_superuser("fuzz", "fuzz@example.invalid", "pw")
    headers = {"Authorization": f"Token {AuthToken.objects.create(user=user)[1]}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_in_test_transaction, headers=headers)
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/api/v1/") or operation.path.startswith("/api/v1/lineage"):
            continue  # lineage documents and tests its own endpoint (issue 5)

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None, derandomize=not EXPLORE)
        def check(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /api/v1/pipelines/{id}/run/" in tested and len(tested) > 20, tested
    assert {
        "GET /api/v1/check-results/", "POST /api/v1/checks/", "GET /api/v1/quarantine/{id}/",
        "POST /api/v1/pii-findings/{id}/decision/", "POST /api/v1/column-policies/", "GET /api/v1/dataset-lineage/{id}/",
    } <= set(tested), tested


@pytest.fixture
def simple_pipeline_for_fuzz(db, tmp_path):
    """Some real objects so generated ids sometimes hit (ids 1..n exist)."""
    from pipelines.models import Dataset, Pipeline, Source

    path = tmp_path / "f.csv"
    path.write_text("id\n1\n")
    source = Source.objects.create(name="fuzz", location=str(path))
    dataset = Dataset.objects.create(name="fuzz", layer="explore", table="fuzz")
    pipeline = Pipeline.objects.create(name="fuzz")
    pipeline.steps.create(name="ingest", kind="ingest", source=source, output=dataset)
    # quality, compliance: a check, a finding, a Chart dataset with a policy
    from compliance.models import ColumnPolicy, PiiFinding
    from quality.models import Check

    chart = Dataset.objects.create(name="fuzz_chart", layer="chart", table="fuzz_chart")
    Check.objects.create(dataset=dataset, name="id_set", kind="not_null", columns=["id"])
    PiiFinding.objects.create(dataset=dataset, column="id", entity="PERSON", samples=["x"])
    ColumnPolicy.objects.create(dataset=chart, column="name", action="hash")
    return pipeline
