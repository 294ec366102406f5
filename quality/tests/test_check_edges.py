"""Edges from checks: a check that reads another dataset orders its step after that dataset's producer.

The issue's case first: a referential check on navigate.orders that reads navigate.customers,
with the orders steps listed first, on a fresh install.
"""

from __future__ import annotations

import random

import pytest
from django.core.exceptions import ValidationError

from atlas.api.testing import assert_error, token_client, user_with_role
from pipelines import runner
from pipelines.dag import PipelineCycleError, StepSpec, plan
from pipelines.models import Dataset, Pipeline, RunStatus, Source, Step
from pipelines.tests.conftest import run_now
from quality.models import Check, CheckResult

GATE = "quality.hooks.QualityGate"


def shop_files(make_csv, seed: int) -> tuple[str, str]:
    """Customers, and orders that refer only to them (random sizes and keys)."""
    rnd = random.Random(seed)
    ids = rnd.sample(range(100, 10_000), rnd.randint(20, 60))
    customers = "customer_id,name\n" + "".join(f"{i},c{rnd.randint(1, 999)}\n" for i in ids)
    orders = "order_id,customer_id,amount\n" + "".join(
        f"{n},{rnd.choice(ids)},{rnd.randint(1, 900)}\n" for n in range(1, rnd.randint(50, 200))
    )
    return str(make_csv(orders, "orders.csv")), str(make_csv(customers, "customers.csv"))


@pytest.fixture
def shop(db, make_csv):
    """Orders and customers through three layers, every orders step listed before the customers ones."""

    def build(*, customers_sql: str = "SELECT customer_id, name FROM chart.customers", seed: int = 7) -> Pipeline:
        orders_path, customers_path = shop_files(make_csv, seed)
        pipeline = Pipeline.objects.create(name="shop")
        ds = {
            name: Dataset.objects.create(name=name, layer=layer, table=table)
            for name, layer, table in [
                ("raw_orders", "explore", "orders"), ("raw_customers", "explore", "customers"),
                ("clean_orders", "chart", "orders"), ("clean_customers", "chart", "customers"),
                ("orders", "navigate", "orders"), ("customers", "navigate", "customers"),
            ]
        }
        steps = [
            ("load_orders", "ingest", "raw_orders", Source.objects.create(name="orders", location=orders_path), ""),
            ("clean_orders", "refine", "clean_orders", None,
             "SELECT CAST(order_id AS integer) AS order_id, CAST(customer_id AS integer) AS customer_id,"
             " CAST(amount AS integer) AS amount FROM explore.orders"),
            ("orders", "aggregate", "orders", None, "SELECT order_id, customer_id, amount FROM chart.orders"),
            ("load_customers", "ingest", "raw_customers",
             Source.objects.create(name="customers", location=customers_path), ""),
            ("clean_customers", "refine", "clean_customers", None,
             "SELECT CAST(customer_id AS integer) AS customer_id, name FROM explore.customers"),
            ("customers", "aggregate", "customers", None, customers_sql),
        ]
        for position, (name, kind, output, source, sql) in enumerate(steps):
            Step.objects.create(
                pipeline=pipeline, name=name, kind=kind, output=ds[output], source=source, sql=sql,
                position=position, write_mode="replace",
            )
        return pipeline

    return build


def orders_refer_to_customers(**extra) -> Check:
    return Check.objects.create(
        dataset=Dataset.objects.get(name="orders"), name="known_customer", kind="referential",
        columns=["customer_id"], params={"dataset": "customers", "column": "customer_id"}, severity="fail", **extra,
    )


@pytest.mark.step_hooks(GATE)
def test_a_relationships_check_runs_after_the_producer_it_reads_on_a_fresh_install(wh, shop):
    pipeline = shop()
    orders_refer_to_customers()
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    order = [s.step_name for s in run.step_runs.order_by("position")]
    assert order.index("customers") < order.index("orders")
    assert CheckResult.objects.get(check_name="known_customer").outcome == "pass"


def test_without_checks_the_declared_order_stays(wh, shop):
    """The edge comes from the check alone: without it, ties keep the declared order."""
    order = [s.name for s in runner.plan_steps(shop())]
    assert order.index("orders") < order.index("customers")


def test_a_disabled_check_makes_no_edge(wh, shop):
    pipeline = shop()
    orders_refer_to_customers(enabled=False)
    order = [s.name for s in runner.plan_steps(pipeline)]
    assert order.index("orders") < order.index("customers")


def test_a_check_that_would_close_a_cycle_is_refused_at_save_naming_the_steps(wh, shop):
    # Customers derived from orders: a check on orders that reads customers closes a loop.
    shop(customers_sql="SELECT customer_id, count(*) AS orders FROM navigate.orders GROUP BY customer_id")
    with pytest.raises(ValidationError) as raised:
        orders_refer_to_customers()
    message = raised.value.message_dict["params"][0]
    assert "Pipeline 'shop' could not order its steps with this check" in message
    assert "cycle: orders -> customers" in message
    assert "a check on navigate.orders (step 'orders') reads navigate.customers" in message
    assert not Check.objects.exists()


def test_a_step_change_that_would_close_a_cycle_through_a_check_is_refused_by_the_api(wh, shop):
    pipeline = shop()
    orders_refer_to_customers()
    api = token_client(user_with_role("Operator", "ops"))
    customers = pipeline.steps.get(name="customers")
    response = api.patch(
        f"/api/v1/steps/{customers.pk}/",
        {"sql": "SELECT customer_id, count(*) AS orders FROM navigate.orders GROUP BY customer_id"},
        format="json",
    )
    body = assert_error(response, 409)
    assert "Checks make part of it" in str(body) and "cycle" in str(body)
    customers.refresh_from_db()
    assert "chart.customers" in customers.sql


def test_a_check_read_of_a_dataset_no_step_produces_is_no_planning_error():
    steps = [StepSpec(key=1, name="a", output=10, after=frozenset({99}))]
    assert [s.name for s in plan(steps)] == ["a"]


def test_the_cycle_message_names_the_links_checks_make():
    names = {10: "navigate.orders", 20: "navigate.customers"}
    steps = [
        StepSpec(key=1, name="orders", output=10, after=frozenset({20})),
        StepSpec(key=2, name="customers", output=20, inputs=frozenset({10})),
    ]
    with pytest.raises(PipelineCycleError) as raised:
        plan(steps, names=names)
    assert str(raised.value) == (
        "The steps form a cycle: orders -> customers. Checks make part of it: a check on navigate.orders"
        " (step 'orders') reads navigate.customers."
    )
