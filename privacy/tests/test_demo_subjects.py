"""On the demo: from one confirmed e-mail finding, keys along relationships and lineage; an erasure takes the orders too.

Nothing here names the demo's key columns: the steward confirms findings and the
proposed keys, and the proof decides when the erasure is complete.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command

from compliance.models import PiiFinding
from compliance.policies import set_policy
from demo.install import PIPELINE
from pipelines.models import Dataset, Pipeline, RunStatus
from privacy import keys, service
from privacy.models import SubjectKey

from .conftest import count, run_now
from .test_doors import DEMO_HOOKS


@pytest.mark.slow
def test_erasing_a_demo_customer_removes_their_orders_and_the_proof_is_green_only_then(wh, settings):
    settings.ATLAS_STEP_HOOKS = DEMO_HOOKS
    settings.PII_SCAN_AFTER_INGEST = False
    call_command("load_demo", "--rows", "300")
    pipeline = Pipeline.objects.get(name=PIPELINE)
    ds = {(d.layer, d.table): d for d in Dataset.objects.all()}
    set_policy(ds[("chart", "customers")], "email", action="hash", actor=None)
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    # The steward confirms what a scan finds: the e-mail column, and an e-mail inside the free-text notes.
    PiiFinding.objects.create(dataset=ds[("explore", "customers")], column="email", entity="EMAIL_ADDRESS",
                              status="confirmed")
    PiiFinding.objects.create(dataset=ds[("explore", "customers")], column="notes", entity="EMAIL_ADDRESS",
                              free_text=True, status="confirmed")
    proposed = keys.propose_keys()
    by_place = {(k.dataset.layer, k.dataset.table, k.column): k for k in proposed}
    assert ("explore", "customers", "notes") not in by_place and ("chart", "customers", "notes") not in by_place
    assert by_place[("chart", "orders", "customer_id")].kind == "customer_id"
    assert ("explore", "orders", "customer_id") in by_place and ("chart", "order_items", "order_id") in by_place
    assert by_place[("chart", "customers", "email")].storage == "hashed"  # the pseudonymised form
    for key in SubjectKey.objects.filter(status="proposed"):
        keys.confirm_key(key)

    with wh.cursor() as cur:
        customer_id, email = cur.execute(
            "SELECT trim(c.customer_id), c.email FROM explore.customers c JOIN explore.orders o"
            " ON trim(o.customer_id) = trim(c.customer_id) WHERE c.email LIKE '%%@%%'"
            " GROUP BY trim(c.customer_id), c.email HAVING count(DISTINCT c.email) = 1 ORDER BY 1 LIMIT 1"
        ).fetchone()
        orders = [r[0] for r in cur.execute(
            "SELECT DISTINCT order_id FROM chart.orders WHERE customer_id = %s", [int(customer_id)]).fetchall()]
    others = count(wh, "chart.orders") - len(orders)
    assert orders
    req = service.run(service.verify(service.submit("erasure", {"email": [email]})))
    assert req.status == "in_progress", req.error  # one customer: no review; but the proof is not green yet
    # Every order of the customer and every line of those orders, in every layer.
    assert count(wh, "chart.orders", "customer_id = %s", [int(customer_id)]) == 0
    assert count(wh, "explore.orders", "trim(customer_id) = %s", [customer_id]) == 0
    marks = ", ".join(["%s"] * len(orders))
    assert count(wh, "chart.order_items", f"order_id IN ({marks})", orders) == 0
    assert count(wh, "chart.orders") >= others - 1
    # Payments name the orders, but no join or check relates them: the proof finds them and names the columns.
    assert {(r["table"], r["column"], r["status"]) for r in req.residue} == {
        ("explore.payments", "order_id", "unexplained"), ("chart.payments", "order_id", "unexplained")}
    assert "chart.payments.order_id refers to the erased subject: declare it a key" in req.error
    for layer in ("explore", "chart"):  # the steward declares them; running again erases them and the proof is green
        keys.declare_key(ds[(layer, "payments")], "order_id", kind="order_id")
    req = service.run(req)
    assert req.status == "completed", req.error
    assert req.proof["rows_found"] == 0 and not req.proof["unexplained"]
    assert count(wh, "chart.payments", f"order_id IN ({marks})", orders) == 0
