"""Privacy by default (GDPR Art. 25, issue 15 item 4), on the engine under test.

After the demo pipeline runs with nobody deciding anything, Chart holds no clear
e-mail, phone, street address, birth date or name: every unreviewed finding at
or above ``PII_DEFAULT_PROTECT_CONFIDENCE`` protects the Chart columns it reaches
with its entity's default policy until a steward confirms, dismisses or keeps it
with a reason. Hashed keys still join; a second run changes nothing.
"""

from __future__ import annotations

import re

import pytest

from atlas.models import AuditEvent
from compliance.models import ColumnPolicy, PiiFinding
from compliance.policies import (
    PolicyError,
    decide_finding,
    protect_by_default,
    pseudonym,
    set_policy,
    unprotected_columns,
)
from pipelines.models import Dataset, Pipeline, RunStatus, Step

from .conftest import run_now
from .demo import load_demo, user_in_role

pytestmark = [pytest.mark.slow, pytest.mark.step_hooks]  # the default hooks: this is about what they do

PROTECTED = {"email", "phone", "street_address", "birth_date", "first_name", "last_name", "postcode", "notes"}


def rows(wh, sql: str) -> list[tuple]:
    with wh.cursor() as cur:
        return cur.execute(sql).fetchall()


def received(wh) -> dict[str, set[str]]:
    """The clear values as received in Explore (trimmed), per column."""
    cols = ["email", "phone", "street_address", "birth_date", "first_name", "last_name"]
    out: dict[str, set[str]] = {c: set() for c in cols}
    for row in rows(wh, f"SELECT {', '.join(cols)} FROM explore.customers"):
        for col, value in zip(cols, row, strict=True):
            if value is not None and str(value).strip():
                out[col] |= {str(value).strip(), str(value).strip().lower()}
    return out


def chart_customers(wh) -> list[tuple]:
    return rows(
        wh,
        "SELECT customer_id, email, phone, street_address, CAST(birth_date AS text), first_name, last_name, notes"
        " FROM chart.customers ORDER BY customer_id",
    )


def assert_no_clear_pii(wh) -> None:
    clear = received(wh)
    table = chart_customers(wh)
    assert table, "chart.customers is empty"
    for _cid, email, phone, street, birth, first, last, notes in table:
        assert email is None or re.fullmatch(r"[0-9a-f]{64}", email), "a clear e-mail in Chart"
        assert phone is None or (phone not in clear["phone"] and set(phone[:-4]) <= {"*"}), "a clear phone"
        assert street is None or street not in clear["street_address"], "a clear street address"
        assert birth is None or re.fullmatch(r"\d{4}", birth), "a birth date finer than the year"
        assert first is None and last is None, "a clear name"
        assert notes is None or "@" not in notes, "an e-mail inside the notes"


def test_after_the_demo_chart_is_protected_with_no_steward_action(wh, admin_client):
    pipeline = load_demo()
    assert not PiiFinding.objects.exclude(status=PiiFinding.Status.PROPOSED).exists()  # nobody decided

    assert_no_clear_pii(wh)
    customers = Dataset.objects.get(layer="chart", table="customers")
    defaults = {p.column: p for p in ColumnPolicy.objects.filter(dataset=customers)}
    assert set(defaults) >= PROTECTED, sorted(defaults)
    assert all(p.by_default and p.default_for.status == "proposed" for p in defaults.values())
    assert all(
        p.default_for.confidence >= 0.5 for p in defaults.values()
    ), "only findings at or above the threshold protect by default"
    # Below the threshold (a city: LOCATION at about 0.47) nothing is applied: the steward decides.
    assert "city" not in defaults
    assert AuditEvent.objects.filter(action="pii.policy.default_applied").count() >= len(PROTECTED)

    # The admin and the API say so, on the finding and on the column's policy.
    findings = admin_client.get("/api/v1/pii-findings/", {"page_size": 100}).json()["results"]
    email = next(f for f in findings if f["dataset_name"] == "explore_customers" and f["column"] == "email")
    assert email["review_state"] == "protected by default, awaiting review"
    assert {(p["dataset"], p["column"], p["action"]) for p in email["default_protection"]} == {
        ("customers", "email", "hash"), ("contacts", "email", "hash"),
    }
    city = next(f for f in findings if f["dataset_name"] == "explore_customers" and f["column"] == "city")
    assert city["review_state"].startswith("awaiting review, not protected") and city["default_protection"] == []
    policy = admin_client.get(f"/api/v1/column-policies/{defaults['email'].pk}/").json()
    assert (policy["by_default"], policy["default_for"]) == (True, email["id"])
    listing = admin_client.get("/admin/compliance/piifinding/").content.decode()
    assert "protected by default, awaiting review" in listing and "customers.email: hash" in listing

    # The hash policy keeps the key joinable: the contacts table's pseudonyms meet the customers'.
    joined = rows(
        wh,
        "SELECT count(*) FROM chart.contacts AS k JOIN chart.customers AS c"
        " ON k.email = c.email AND k.customer_id = c.customer_id",
    )[0][0]
    with_email = rows(wh, "SELECT count(DISTINCT customer_id) FROM chart.customers WHERE email IS NOT NULL")[0][0]
    assert joined >= with_email > 0
    one = rows(wh, "SELECT lower(trim(email)) FROM explore.customers WHERE email LIKE '%@%' LIMIT 1")[0][0]
    assert rows(wh, f"SELECT count(*) FROM chart.customers WHERE email = '{pseudonym(one)}'")[0][0] == 1

    # Re-running changes nothing: the same policies, the same protected rows.
    before, policies = chart_customers(wh), sorted(ColumnPolicy.objects.values_list("pk", "column", "action"))
    again = run_now(pipeline)
    assert again.status == RunStatus.SUCCEEDED, again.error
    assert chart_customers(wh) == before
    assert sorted(ColumnPolicy.objects.values_list("pk", "column", "action")) == policies
    assert protect_by_default() == []


def test_a_steward_decision_replaces_the_default(wh):
    pipeline = load_demo()
    steward = user_in_role("steward", "Steward")
    customers = Dataset.objects.get(layer="chart", table="customers")
    raw = Dataset.objects.get(layer="explore", table="customers")
    policy = {p.column: p for p in ColumnPolicy.objects.filter(dataset=customers)}

    # Confirming keeps the protection, now as an ordinary proposal, no longer waiting.
    decide_finding(PiiFinding.objects.get(dataset=raw, column="email"), status="confirmed", actor=steward)
    email = ColumnPolicy.objects.get(pk=policy["email"].pk)
    assert (email.by_default, email.proposed, email.default_for) == (False, True, None)

    # Dismissing withdraws it (audited); the next run publishes the column as it is.
    decide_finding(
        PiiFinding.objects.get(dataset=raw, column="phone"), status="dismissed", actor=steward, note="test numbers"
    )
    assert not ColumnPolicy.objects.filter(dataset=customers, column="phone").exists()
    assert AuditEvent.objects.filter(action="pii.policy.default_withdrawn").exists()

    # Keep in clear still needs a reason; with one, the steward's choice holds over the default.
    with pytest.raises(PolicyError, match="needs a reason"):
        set_policy(customers, "postcode", action="keep", actor=steward)
    kept = set_policy(customers, "postcode", action="keep", reason="Regional reporting", actor=steward)
    assert (kept.by_default, kept.default_for) == (False, None)
    assert protect_by_default() == []  # nothing to add: every column has a policy or a decision

    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    clear_phones = received(wh)["phone"]
    published = [r[0] for r in rows(wh, "SELECT phone FROM chart.customers WHERE phone IS NOT NULL")]
    assert any(p in clear_phones for p in published)
    assert ColumnPolicy.objects.get(dataset=customers, column="postcode").action == "keep"
    assert rows(wh, "SELECT count(*) FROM chart.customers WHERE email LIKE '%@%'")[0][0] == 0


def test_the_gate_refuses_unprotected_high_confidence_findings(wh, settings):
    load_demo()
    step = Step.objects.get(name="refine_customers")
    customers = Dataset.objects.get(layer="chart", table="customers")
    assert unprotected_columns(step) == {}
    # A default protection removed by hand (not a decision) leaves the column unprotected: the gate sees it.
    ColumnPolicy.objects.filter(dataset=customers, column="email").delete()
    assert unprotected_columns(step) == {"email": {"EMAIL_ADDRESS"}}
    # Above the threshold only: raised past every finding, nothing unreviewed is gated (nor protected).
    settings.PII_DEFAULT_PROTECT_CONFIDENCE = 1.1
    assert unprotected_columns(step) == {}
    protect_by_default()
    assert not ColumnPolicy.objects.filter(by_default=True).exists()


def test_with_the_threshold_off_the_demo_publishes_in_clear(wh, settings):
    """The setting is read: 1.1 turns privacy by default off (the behaviour before it)."""
    settings.PII_DEFAULT_PROTECT_CONFIDENCE = 1.1
    load_demo()
    assert not ColumnPolicy.objects.exists()
    assert rows(wh, "SELECT count(*) FROM chart.customers WHERE email LIKE '%@%'")[0][0] > 0
    assert Pipeline.objects.get(name="ecommerce").runs.latest("pk").status == RunStatus.SUCCEEDED
