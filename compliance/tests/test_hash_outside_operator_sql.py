"""Hash policies are applied by the owner after the operator's statement (issue 12, least privilege).

The operator's SQL (run restricted: on PostgreSQL as the operator-SQL role) never
names the key table nor a keyed hash; the published tokens are still Python's HMAC.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from compliance.models import PiiFinding
from compliance.policies import decide_finding, pseudonym

from .conftest import run_now

pytestmark = pytest.mark.slow


def test_the_operator_statement_never_reads_the_key(wh, pii_hook, customers_pipeline):
    steward = get_user_model().objects.create_user("steward", password="x", is_staff=True)
    pipeline = customers_pipeline()
    run_now(pipeline)
    for finding in PiiFinding.objects.filter(dataset__layer="explore"):
        decide_finding(finding, status="confirmed", actor=steward)
    run = run_now(pipeline)
    assert run.status == "succeeded", run.error
    step_run = run.step_runs.get(step_name="refine")
    assert step_run.details["pii_policies"]["email"] == "hash"
    assert "pii_keys" not in step_run.sql and "hmac" not in step_run.sql.lower()
    # The published table is readable as operator SQL (the next step's input), and hashed.
    _cols, rows = wh.operator_query(
        'SELECT "email" FROM chart."customers" WHERE "email" IS NOT NULL', layer="navigate"
    )
    assert pseudonym("anna.schmidt@example.com") in {r[0] for r in rows}
    assert not wh.table_exists("chart", f"customers__r{run.pk}a1_stg__rw")
