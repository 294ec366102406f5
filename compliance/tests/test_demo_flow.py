"""The demo's steward flow end to end, on the engine under test.

Customer PII is found on ingest; a steward confirms it; the default policies
are proposed; the next run writes Chart with pseudonymised emails that still
join, masked phones and birth years only; the publish gate refuses a confirmed
PII column without a policy unless it is kept with a reason.
"""

from __future__ import annotations

import re

import pytest

from atlas import audit
from atlas.models import AuditEvent
from compliance.masking import mask_rows, pii_columns
from compliance.models import ColumnPolicy, PiiFinding, PiiScan
from compliance.policies import pseudonym, set_policy
from pipelines.models import PARTIALLY_FAILED, Dataset, RunStatus
from quality.models import CheckResult

from .conftest import run_now
from .demo import clear_pii, confirm_customer_findings, load_demo, user_in_role

pytestmark = pytest.mark.slow

EXPECTED = {
    "email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "first_name": "PERSON", "last_name": "PERSON",
    "birth_date": "DATE_OF_BIRTH", "street_address": "STREET_ADDRESS", "postcode": "POSTCODE",
}


def chart(wh, sql: str) -> list[tuple]:
    with wh.cursor() as cur:
        return cur.execute(sql).fetchall()


@pytest.mark.step_hooks  # the default hooks: this test is about what they do
def test_the_demo_steward_flow(wh):
    pipeline = load_demo()
    steward, analyst = user_in_role("steward", "Steward"), user_in_role("analyst", "Analyst")
    raw = Dataset.objects.get(layer="explore", table="customers")
    customers = Dataset.objects.get(layer="chart", table="customers")

    # 1. Found on ingest, by the hook, with evidence.
    scan = PiiScan.objects.get(dataset=raw)
    assert (scan.trigger, scan.status) == ("ingest", "succeeded")
    structured = {f.column: f.entity for f in PiiFinding.objects.filter(dataset=raw, free_text=False)}
    assert EXPECTED.items() <= structured.items(), structured
    assert "customer_id" not in structured and "signup_at" not in structured
    assert PiiFinding.objects.filter(dataset=raw, column="notes", free_text=True).exists()
    assert all(f.status == "proposed" for f in PiiFinding.objects.all())

    # Before anyone decides, Chart is protected by default (privacy by default): the defaults are applied,
    # marked as awaiting review; what is left in clear (the city, below the threshold) is masked for analysts.
    token = chart(wh, "SELECT email FROM chart.customers WHERE email IS NOT NULL LIMIT 1")[0][0]
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert all(p.by_default for p in ColumnPolicy.objects.all())
    assert {"email", "phone", "birth_date"}.isdisjoint(pii_columns(customers))
    city = chart(wh, "SELECT city FROM chart.customers WHERE city IS NOT NULL LIMIT 1")[0][0]
    assert mask_rows(analyst, customers, ["city"], [(city,)]) == [["[LOCATION hidden]"]]

    # 2. The steward confirms; every Chart column the data reaches has its entity's default policy, no
    # longer awaiting review (the defaults applied before become proposals; the city's is new).
    proposed = confirm_customer_findings(steward)
    policies = {(p.dataset.table, p.column): p for p in ColumnPolicy.objects.select_related("dataset")}
    assert {p.pk for p in proposed} == {p.pk for p in policies.values()}
    assert all(p.proposed and not p.by_default for p in policies.values())
    actions = {k: (p.action, p.options) for k, p in policies.items()}
    assert actions[("customers", "email")] == ("hash", {}) and actions[("contacts", "email")] == ("hash", {})
    assert actions[("customers", "phone")] == ("mask", {"keep_last": 4})
    assert actions[("customers", "birth_date")] == ("generalise", {"to": "year"})
    assert actions[("customers", "first_name")][0] == "redact"
    assert actions[("customers", "notes")][0] == "anonymise_text"
    assert AuditEvent.objects.filter(action="pii.finding.confirmed", actor=steward).count() == PiiFinding.objects.filter(
        dataset=raw
    ).count()

    # 3. Re-run: Chart is protected.
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    clear = clear_pii(wh)
    rows = chart(wh, "SELECT customer_id, email, phone, birth_date, first_name FROM chart.customers")
    raw_rows = {
        int(r[0]): r[1:]
        for r in chart(wh, "SELECT DISTINCT ON (trim(customer_id)) trim(customer_id), lower(trim(email)), trim(phone)"
                           " FROM explore.customers ORDER BY trim(customer_id), _ingested_at DESC, _row_number DESC"
                       if wh.vendor == "postgresql" else
                       "SELECT trim(customer_id), any_value(lower(trim(email))), any_value(trim(phone))"
                       " FROM explore.customers GROUP BY 1")
    }
    assert len(rows) == len(raw_rows) > 50
    for customer_id, email, phone, birth_year, first_name in rows:
        raw_email, raw_phone = raw_rows[customer_id]
        if raw_email:
            assert email == pseudonym(raw_email) and re.fullmatch(r"[0-9a-f]{64}", email)
        else:
            assert email is None
        if raw_phone:
            assert re.fullmatch(r"\*+", phone[:-4]) and phone[-4:] == raw_phone[-4:] and phone not in clear["phone"]
        assert birth_year is None or (isinstance(birth_year, int) and 1900 < birth_year < 2026)
        assert first_name is None
    # The same token in every table: pseudonymised emails still join.
    joined = chart(wh, "SELECT count(DISTINCT c.customer_id) FROM chart.customers AS c JOIN chart.contacts AS k"
                       " ON k.email = c.email AND k.customer_id = c.customer_id")[0][0]
    with_email = chart(wh, "SELECT count(*) FROM chart.customers WHERE email IS NOT NULL")[0][0]
    assert joined == with_email > 0
    # Protected columns are safe to show; what is still clear (city, kept with a reason; notes) stays masked.
    assert {"email", "phone", "birth_date", "first_name"}.isdisjoint(pii_columns(customers))
    assert "city" in pii_columns(customers) and "notes" in pii_columns(customers)
    step_run = run.step_runs.get(step_name="refine_customers")
    assert step_run.details["pii_policies"]["email"] == "hash"
    # The demo's email check accepts the pseudonym: protecting the column does not raise warnings.
    shape = CheckResult.objects.filter(check_name="email_shape").order_by("-pk").first()
    assert shape.outcome == "pass", shape.message
    notes = [n for (n,) in chart(wh, "SELECT notes FROM chart.customers WHERE notes IS NOT NULL")]
    assert notes and not [n for n in notes if re.search(r"[\w.+-]+@[\w-]+\.\w+", n)]  # anonymised in the text

    # 4. The gate: a confirmed PII column without a policy blocks publishing, with a clear error.
    before = chart(wh, "SELECT email FROM chart.customers ORDER BY customer_id")
    ColumnPolicy.objects.filter(dataset=customers, column="email").delete()
    blocked = run_now(pipeline)
    assert blocked.status == PARTIALLY_FAILED  # the orders branch does not read customers: it goes on
    error = blocked.step_runs.get(step_name="refine_customers").error
    assert "chart.customers would hold confirmed PII without a policy: email (EMAIL_ADDRESS)" in error
    assert "keep it in clear with a reason" in error
    assert chart(wh, "SELECT email FROM chart.customers ORDER BY customer_id") == before
    # Unless the steward keeps it in clear, explicitly, with a reason.
    set_policy(customers, "email", action="keep", reason="CRM join needs the address", actor=steward)
    kept = run_now(pipeline)
    assert kept.status == RunStatus.SUCCEEDED, kept.error
    assert "@" in chart(wh, "SELECT email FROM chart.customers WHERE email IS NOT NULL LIMIT 1")[0][0]
    assert "email" in pii_columns(customers)  # clear again: masked for the analyst

    # Every decision is in the audit log, and the chain holds.
    assert AuditEvent.objects.filter(action="pii.policy.set", actor=steward, detail__policy="keep").exists()
    assert list(audit.verify()) == []
