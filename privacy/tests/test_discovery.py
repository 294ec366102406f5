"""Subject discovery: identifiers that identify nobody, keys along relationships and lineage, retained hash keys."""

from __future__ import annotations

import pytest

from compliance.models import ColumnPolicy
from compliance.policies import pseudonym, set_policy
from pipelines.models import Dataset
from privacy import identifiers, keys, relationships, service
from privacy.models import SubjectKey
from quality.models import Check

from .conftest import count


@pytest.mark.parametrize("value, reason", [
    (None, "empty"), ("", "empty"), ("   ", "empty"), ("N/A", "empty or common value"), ("Unknown", "empty or common value"),
    ("<EMAIL_ADDRESS>", "placeholder"), ("[REDACTED]", "placeholder"), ("{masked}", "placeholder"),
    ("***1234", "masked value"), ("12**34", "masked value"), ("XXXX-5678", "masked value"), ("••••", "masked value"),
])
def test_values_that_identify_nobody(value, reason):
    assert identifiers.non_identifier(value) == reason


def test_hashes_of_common_values_identify_nobody_but_real_values_do(settings):
    import hashlib

    settings.PII_HASH_PREVIOUS_KEYS = ["an-old-key-before-rotation"]
    identifiers._common_hashes.cache_clear()
    for token in [pseudonym(""), pseudonym("n/a"), hashlib.sha256(b"").hexdigest(), hashlib.md5(b"unknown").hexdigest(),
                  identifiers._hmac("an-old-key-before-rotation", "")]:
        assert identifiers.non_identifier(token) == "hash of a common value"
    for value in ["ann@example.com", "+44 20 7946 0001", "42", pseudonym("ann@example.com"), "maxine@example.com"]:
        assert identifiers.non_identifier(value) is None
    assert identifiers.hash_forms("ann") == {pseudonym("ann"), identifiers._hmac("an-old-key-before-rotation", "ann")}


def test_anonymised_columns_are_never_keys(shop):
    _, ds, _ = shop
    set_policy(ds["customers"], "name", action="anonymise_text", actor=None)
    with pytest.raises(keys.SubjectKeyError, match="anonymise_text"):
        keys.declare_key(ds["customers"], "name", kind="name")
    # A key whose column is masked after it was confirmed stops being searched.
    ColumnPolicy.objects.filter(dataset=ds["customers"], column="email").update(action="mask")
    assert not [t for t in keys.targets() if (t.dataset_id, t.column) == (ds["customers"].pk, "email")]


def test_join_pairs_are_read_from_step_sql():
    datasets = {("chart", "customers"): 1, ("chart", "orders"): 2, ("chart", "order_items"): 3}
    sql = ("WITH t AS (SELECT order_id, sum(x) AS s FROM chart.order_items GROUP BY order_id)"
           " SELECT c.customer_id FROM chart.customers AS c LEFT JOIN chart.orders AS o"
           " ON o.customer_id = c.customer_id AND o.status <> 'x' LEFT JOIN t ON t.order_id = o.order_id")
    pairs = relationships._joins(sql, datasets, "clv")
    assert [(p.child, p.parent, p.directed) for p in pairs] == [((2, "customer_id"), (1, "customer_id"), False)]


def test_keys_are_proposed_along_relationships_and_lineage_and_the_orders_go_too(shop, wh):
    pipeline, ds, _ = shop
    # Only the e-mail is known (as from a confirmed finding); orders refer to customers (a referential check).
    SubjectKey.objects.exclude(column="email").delete()
    Check.objects.create(dataset=ds["orders"], name="customer_exists", kind="referential", columns=["customer_id"],
                         params={"dataset": "customers", "column": "customer_id"}, severity="warn")
    created = {(k.dataset.name, k.column): k for k in keys.propose_keys()}
    assert created[("customers", "customer_id")].origin == "subject_id"
    orders_key = created[("orders", "customer_id")]
    assert (orders_key.kind, orders_key.origin, orders_key.derived_from.column) == ("customer_id", "relation", "customer_id")
    assert created[("raw_orders", "customer_id")].origin == "lineage"  # upstream of chart.orders.customer_id
    assert created[("raw_customers", "customer_id")].origin == "lineage"
    assert created[("customer_value", "customer_id")].origin == "lineage"  # downstream
    for key in SubjectKey.objects.filter(status="proposed"):
        keys.confirm_key(key)
    targets = {(t.dataset, t.column): t for t in keys.targets()}
    assert targets[("customers", "customer_id")].identifies and not targets[("orders", "customer_id")].identifies
    req = service.run(service.verify(service.submit("erasure", {"email": ["ann@example.com"]})))
    assert req.status == "completed", req.error
    assert count(wh, "chart.orders", "customer_id = 1") == 0 and count(wh, "explore.orders", "trim(customer_id) = '1'") == 0
    assert count(wh, "chart.orders") == 2


def test_a_planted_reference_keeps_the_proof_red_and_names_the_column(shop, wh):
    _, ds, _ = shop
    with wh.cursor() as cur:
        cur.execute("CREATE TABLE navigate.tickets (ticket text, body text)")
        cur.execute("INSERT INTO navigate.tickets VALUES ('t1', 'Customer wrote from  ANN@example.com  about a refund'),"
                    " ('t2', 'bob asked about delivery')")
    tickets = Dataset.objects.create(name="tickets", layer="navigate", table="tickets")
    req = service.run(service.verify(service.submit("erasure", {"email": ["ann@example.com"]})))
    assert req.status == "in_progress" and not req.identifiers_hashed
    assert [(r["table"], r["column"], r["rows_found"]) for r in req.residue] == [("navigate.tickets", "body", 1)]
    assert "navigate.tickets.body refers to the erased subject: declare it a key, or keep it with a recorded legal basis" \
        in req.error
    assert "ann@example.com" not in req.error.lower()
    # Still red when scanned again; green only once the steward records why it may stay.
    assert service.check_erasure(req).status == "in_progress"
    service.retain_reference(tickets, "body", legal_basis="Complaint file kept 3 years (consumer law).")
    assert service.check_erasure(req).status == "completed"


def test_the_proof_finds_tokens_of_a_retired_hash_key(shop, wh, settings):
    _, ds, _ = shop
    old_key = settings.PII_HASH_KEY
    with wh.cursor() as cur:  # a Navigate extract written before the rotation, with the old token
        cur.execute("CREATE TABLE navigate.segments (token text, segment text)")
        cur.execute("INSERT INTO navigate.segments VALUES (%s, 'vip')", [pseudonym("ann@example.com")])
    Dataset.objects.create(name="segments", layer="navigate", table="segments")
    settings.PII_HASH_KEY = "a-new-key-after-rotation-0123456789"
    settings.PII_HASH_PREVIOUS_KEYS = [old_key]
    req = service.submit("erasure", {"customer_id": ["1"]})
    req = service.run(service.verify(req))
    assert ("navigate.segments", "token") in {(r["table"], r["column"]) for r in req.residue}


def test_an_export_finds_clear_values_in_a_column_declared_hashed(shop, wh):
    _, ds, _ = shop
    with wh.cursor() as cur:  # the policy is not applied yet: Chart still holds the address in clear
        cur.execute("UPDATE chart.customers SET email = 'ann@example.com' WHERE customer_id = 1")
    SubjectKey.objects.exclude(dataset=ds["customers"], column="email").delete()
    req = service.run(service.verify(service.submit("access", {"email": ["ann@example.com"]})))
    assert req.status == "completed", req.error
    tables = {d["table"]: d["rows"] for d in req.exports.get().manifest["datasets"]}
    assert tables["chart.customers"] == 1


def test_the_proof_recognises_columns_by_kind_but_not_by_a_generic_suffix():
    from privacy.verification import _named_like

    by_name = {"cust_ref": {"customer_id"}}
    assert _named_like("billing_customer_id", by_name, {"customer_id", "id"}) == {"customer_id"}
    assert _named_like("CUST_REF", by_name, {"customer_id"}) == {"customer_id"}  # a key column's name
    assert _named_like("product_id", by_name, {"id"}) == set()
    assert _named_like("id", by_name, {"id"}) == {"id"}


def test_substring_search_tests_caseless_characters_first():
    from privacy.verification import _contains, caseless_part

    assert caseless_part("ann.1@example.com") == ".1@"
    assert caseless_part("+44 20 7946 0001") == "+44 20 7946 0001"
    assert _contains('"c"', "+44 20 7946 0001") == ('strpos(CAST("c" AS text), %s) > 0', ["+44 20 7946 0001"])
    assert _contains('"c"', "annsmith")[0] == 'strpos(lower(CAST("c" AS text)), %s) > 0'
    assert _contains('"c"', "ann.1@example.com")[1] == [".1@", "ann.1@example.com"]
