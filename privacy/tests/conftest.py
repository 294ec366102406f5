"""A small shop in three layers with clear and hashed subject keys, for the DSR tests."""

from __future__ import annotations

import pytest

from atlas.tests.plugin import run_now  # noqa: F401  (``from .conftest import run_now``)
from compliance.policies import set_policy
from pipelines.models import Dataset, Pipeline, Source, Step
from privacy import keys
from privacy.models import ErasureSetting

HOOKS = ["compliance.hooks.PiiHook", "privacy.hooks.TombstoneGuard", "lineage.hooks.LineageHook"]

CUSTOMERS = (
    "customer_id,email,phone,name\n"
    "1, Ann@Example.com ,+44 20 7946 0001,Ann\n"
    "2,bob@example.com,+44 20 7946 0002,Bob\n"
    "3,cy@example.com,+44 20 7946 0003,Cy\n"
)
ORDERS = "order_id,customer_id,amount\n10,1,5.00\n11,1,7.50\n12,2,20.00\n13,3,1.25\n"


@pytest.fixture
def dsr_settings(settings):
    settings.ATLAS_STEP_HOOKS = HOOKS
    settings.PII_SCAN_AFTER_INGEST = False
    settings.OPENLINEAGE_URL = ""
    return settings


@pytest.fixture
def shop(wh, db, make_csv, dsr_settings):
    """Ingest customers and orders, refine them (email hashed in Chart), aggregate revenue and value per customer."""
    customers_csv = make_csv(CUSTOMERS, "customers.csv")
    orders_csv = make_csv(ORDERS, "orders.csv")
    src_c = Source.objects.create(name="customers", location=str(customers_csv))
    src_o = Source.objects.create(name="orders", location=str(orders_csv))
    ds = {
        name: Dataset.objects.create(name=name, layer=layer, table=table)
        for name, layer, table in [
            ("raw_customers", "explore", "customers"), ("raw_orders", "explore", "orders"),
            ("customers", "chart", "customers"), ("orders", "chart", "orders"),
            ("revenue", "navigate", "revenue"), ("customer_value", "navigate", "customer_value"),
        ]
    }
    pipeline = Pipeline.objects.create(name="shop")
    steps = [
        ("ingest_customers", "ingest", ds["raw_customers"], src_c, ""),
        ("ingest_orders", "ingest", ds["raw_orders"], src_o, ""),
        ("refine_customers", "refine", ds["customers"], None,
         "SELECT CAST(trim(customer_id) AS bigint) AS customer_id, lower(trim(email)) AS email, name"
         " FROM explore.customers"),
        ("refine_orders", "refine", ds["orders"], None,
         "SELECT CAST(order_id AS bigint) AS order_id, CAST(trim(customer_id) AS bigint) AS customer_id,"
         " CAST(amount AS numeric(12,2)) AS amount FROM explore.orders"),
        ("revenue", "aggregate", ds["revenue"], None,
         "SELECT count(*) AS orders, sum(amount) AS revenue FROM chart.orders"),
        ("customer_value", "aggregate", ds["customer_value"], None,
         "SELECT customer_id, sum(amount) AS total FROM chart.orders GROUP BY customer_id"),
    ]
    for i, (name, kind, output, source, sql) in enumerate(steps):
        Step.objects.create(pipeline=pipeline, name=name, kind=kind, output=output, source=source, sql=sql,
                            position=i, write_mode="append" if kind == "ingest" else "replace")
    from pipelines.runner import save_step_inputs

    save_step_inputs(pipeline)
    set_policy(ds["customers"], "email", action="hash", actor=None)
    run = run_now(pipeline)
    assert run.status == "succeeded", run.error or [s.error for s in run.step_runs.all()]
    for dataset, column, kind, storage in [
        ("raw_customers", "email", "email", "clear"), ("raw_customers", "customer_id", "customer_id", "clear"),
        ("customers", "email", "email", "hashed"), ("customers", "customer_id", "customer_id", "clear"),
        ("raw_orders", "customer_id", "customer_id", "clear"), ("orders", "customer_id", "customer_id", "clear"),
        ("customer_value", "customer_id", "customer_id", "clear"),
    ]:
        keys.declare_key(ds[dataset], column, kind=kind, storage=storage)
    ErasureSetting.objects.create(dataset=ds["customer_value"], mode=ErasureSetting.Mode.DELETE_ROWS)
    return pipeline, ds, {"customers": customers_csv, "orders": orders_csv}


def count(wh, table: str, where: str = "1 = 1", params=()) -> int:
    with wh.cursor() as cur:
        return int(cur.execute(f"SELECT count(*) FROM {table} WHERE {where}", list(params)).fetchone()[0])
