"""Subject keys: proposed from confirmed findings and along lineage, confirmed by a steward, indexed on PostgreSQL."""

from __future__ import annotations

import pytest

from atlas.models import AuditEvent
from compliance.models import PiiFinding
from privacy import keys
from privacy.models import SubjectKey

from .conftest import run_now


def test_keys_are_proposed_from_findings_and_lineage_then_confirmed(shop):
    pipeline, ds, _ = shop
    SubjectKey.objects.exclude(dataset=ds["raw_customers"], column="email").delete()
    PiiFinding.objects.create(dataset=ds["raw_customers"], column="phone", entity="PHONE_NUMBER", status="confirmed")
    PiiFinding.objects.create(dataset=ds["raw_customers"], column="name", entity="PERSON", status="confirmed")
    created = keys.propose_keys()
    found = {(k.dataset.name, k.column): k for k in created}
    assert set(found) == {("raw_customers", "phone"), ("customers", "email")}
    phone, chart_email = found[("raw_customers", "phone")], found[("customers", "email")]
    assert (phone.kind, phone.storage, phone.origin, phone.status) == ("phone", "clear", "finding", "proposed")
    # Chart's e-mail is derived directly from Explore's and hashed by its policy.
    assert (chart_email.kind, chart_email.storage, chart_email.origin) == ("email", "hashed", "lineage")
    assert chart_email.derived_from.column == "email" and chart_email.derived_from.dataset == ds["raw_customers"]
    assert keys.propose_keys() == []  # idempotent: proposals are not repeated
    keys.confirm_key(chart_email)
    chart_email.refresh_from_db()
    assert chart_email.status == "confirmed"
    assert AuditEvent.objects.filter(action="dsr.key.confirmed", target_id=str(chart_email.pk)).exists()


def test_a_masked_column_is_not_proposed(shop):
    from compliance.policies import set_policy

    pipeline, ds, _ = shop
    SubjectKey.objects.exclude(dataset=ds["raw_customers"], column="email").delete()
    set_policy(ds["customers"], "email", action="mask", options={"keep_last": 4}, actor=None)
    assert [k for k in keys.propose_keys() if k.dataset == ds["customers"]] == []


def test_bad_key_declarations_are_refused(shop):
    _, ds, _ = shop
    with pytest.raises(keys.SubjectKeyError, match="has no column 'mail'"):
        keys.declare_key(ds["customers"], "mail", kind="email")
    with pytest.raises(keys.SubjectKeyError, match="lower-case letters"):
        keys.declare_key(ds["customers"], "email", kind="E-Mail")
    with pytest.raises(keys.SubjectKeyError, match="Unknown storage 'encrypted'"):
        keys.declare_key(ds["customers"], "email", kind="email", storage="encrypted")


def _indexes(wh, schema: str, table: str) -> list[str]:
    with wh.cursor() as cur:
        return [r[0] for r in cur.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s AND indexname LIKE 'dsr_%%'",
            [schema, table],
        ).fetchall()]


@pytest.mark.postgres
def test_confirmed_keys_are_indexed_on_postgresql_and_keep_their_index_after_a_rebuild(shop, wh):
    pipeline, ds, files = shop
    for key in SubjectKey.objects.all():
        keys.ensure_index(key)
    assert len(_indexes(wh, "explore", "customers")) == 2  # on the partitioned parent: covers every batch
    assert len(_indexes(wh, "chart", "customers")) == 2
    with wh.transaction() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the planner show it can use the index
        plan = "\n".join(r[0] for r in cur.execute(
            "EXPLAIN SELECT * FROM chart.customers WHERE lower(trim(CAST(customer_id AS text))) IN ('1')"
        ).fetchall())
    assert "dsr_customers_customer_id" in plan
    files["customers"].write_text(files["customers"].read_text() + "5,eve@example.com,+1,Eve\n")
    assert run_now(pipeline).status == "succeeded"  # refine replaces chart.customers; the hook re-indexes it
    assert len(_indexes(wh, "chart", "customers")) == 2
    assert SubjectKey.objects.exclude(index_name="").count() == SubjectKey.objects.count()
