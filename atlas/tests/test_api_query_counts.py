"""Every list endpoint answers in a constant number of queries, whatever the number of items (issue 17).

With 90 datasets, ``/api/v1/datasets/`` once took ~10 queries per dataset (9 s a page).
Each list is read at its largest page twice: once over the demo after a run (and a
few rows of every kind, so that no list is empty), once after every endpoint's model
has grown by a few more rows (made by
model_bakery, so the rows are arbitrary, not what the demo happens to hold). An
N+1 anywhere — a serializer field, a contributed dataset field, masking, auditing —
shows as a different count.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from model_bakery import baker

from atlas.api.testing import token_client
from atlas.api.urls import router
from atlas.tests.plugin import run_now
from pipelines.models import Pipeline

pytestmark = [pytest.mark.django_db, pytest.mark.step_hooks]
# Lists that need a parameter (a dataset) to answer: read through their own tests.
NEEDS_A_DATASET = {"quarantine", "dataset-lineage"}
GROW_BY = 4
# Models that validate what they save: a valid shape, the rest arbitrary.
VALID = {
    "quality.check": {"kind": "row_count", "params": {"min": 1}, "columns": []},
}


def _queries(client, url: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, {"page_size": 500})
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    body = response.json()
    items = body["results"] if isinstance(body, dict) and "results" in body else body
    return len(ctx.captured_queries), len(items)


def _grow(model) -> None:
    try:
        baker.make(model, _quantity=GROW_BY, **VALID.get(model._meta.label_lower, {}))
    except Exception as exc:  # a model baker cannot fill alone: say which, do not hide it
        pytest.fail(f"could not make rows of {model._meta.label}: {exc}")


def test_every_list_endpoint_is_constant_in_queries():
    call_command("load_demo", rows=200, verbosity=0)
    run_now(Pipeline.objects.get(name="ecommerce"))
    client = token_client(get_user_model().objects.create_superuser("boss", password="pw"))
    lists = [(prefix, viewset) for prefix, viewset, _ in router.registry if prefix not in NEEDS_A_DATASET]

    for _prefix, viewset in lists:  # no list empty (an empty page skips a query)
        _grow(viewset.queryset.model)
    before = {prefix: _queries(client, f"/api/v1/{prefix}/") for prefix, _ in lists}
    for _prefix, viewset in lists:
        _grow(viewset.queryset.model)
    run_now(Pipeline.objects.get(name="ecommerce"))  # more runs, step runs, check results, audit events
    after = {prefix: _queries(client, f"/api/v1/{prefix}/") for prefix, _ in lists}

    grown = {p for p in before if after[p][1] > before[p][1]}
    assert grown == set(before), f"lists that did not grow: {sorted(set(before) - grown)}"
    changed = {p: (before[p], after[p]) for p in before if before[p][0] != after[p][0]}
    assert not changed, f"query counts that follow the number of items ((queries, items) before, after): {changed}"
