"""Affected groups (issue 20): an aggregate over tables merged by key recomputes only the groups the merges
touched, and its table equals a full recomputation, on both engines.

A shop appends order and customer files; two incremental refines keep the latest row per order and per
customer (``chart.orders``, ``chart.customers``); two incremental aggregates read them: one groups orders
by day and region (sums, counts, min, max, avg, count distinct, NULL regions), one groups customers
LEFT JOINed to their orders. Each test appends, runs, checks the aggregates ran by affected groups, and
compares every published table with a full refresh of the same definitions and files.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from atlas.tests.plugin import run_now
from pipelines import incremental, runner
from pipelines.models import Dataset, Pipeline, RunStatus, Source, Step

pytestmark = [pytest.mark.slow]

LATEST_ORDER = (
    "WITH typed AS (SELECT CAST(order_id AS integer) AS order_id, CAST(customer_id AS integer) AS customer_id,"
    " CAST(day AS date) AS day, nullif(trim(region), '') AS region, lower(trim(status)) AS status,"
    " CAST(amount AS numeric(12, 2)) AS amount, _ingested_at, _row_number FROM explore.orders)"
    " SELECT DISTINCT ON (order_id) order_id, customer_id, day, region, status, amount FROM typed"
    " ORDER BY order_id, _ingested_at DESC, _row_number DESC"
)
LATEST_CUSTOMER = (
    "WITH typed AS (SELECT CAST(customer_id AS integer) AS customer_id, nullif(trim(tier), '') AS tier,"
    " _ingested_at, _row_number FROM explore.customers)"
    " SELECT DISTINCT ON (customer_id) customer_id, tier FROM typed"
    " ORDER BY customer_id, _ingested_at DESC, _row_number DESC"
)
BY_DAY = (
    "SELECT o.day, o.region, count(*) AS orders, sum(o.amount) AS revenue, min(o.amount) AS smallest,"
    " max(o.amount) AS largest, round(avg(o.amount), 4) AS mean, count(DISTINCT o.customer_id) AS buyers"
    " FROM chart.orders AS o WHERE coalesce(o.status, '') <> 'void' GROUP BY o.day, o.region"
)
BY_CUSTOMER = (
    "WITH spent AS (SELECT customer_id, sum(amount) AS total FROM chart.orders GROUP BY customer_id)"
    " SELECT c.customer_id, c.tier, count(o.order_id) AS orders, max(o.day) AS last_day,"
    " coalesce(max(s.total), 0) AS total"
    " FROM chart.customers AS c"
    " LEFT JOIN chart.orders AS o ON o.customer_id = c.customer_id AND coalesce(o.status, '') <> 'void'"
    " LEFT JOIN spent AS s ON s.customer_id = c.customer_id"
    " GROUP BY c.customer_id, c.tier"
)
AGGREGATES = ("by_day", "by_customer")


def _write(path: Path, header: str, rows: list[tuple]) -> None:
    path.write_text(header + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows))


def _orders(path: Path, rows: list[tuple]) -> None:
    _write(path, "order_id,customer_id,day,region,status,amount", rows)


def _customers(path: Path, rows: list[tuple]) -> None:
    _write(path, "customer_id,tier", rows)


@pytest.fixture
def shop(db, tmp_path):
    data = tmp_path / "shop"
    data.mkdir()
    regions = ["north", "south", ""]  # "" is a NULL region: a NULL group key
    _orders(data / "orders_001.csv", [(i, i % 7 + 1, f"2026-01-{i % 5 + 1:02d}", regions[i % 3],
                                       "void" if i % 11 == 0 else "placed", f"{i}.25") for i in range(1, 61)])
    _customers(data / "customers_001.csv", [(i, "gold" if i % 2 else "") for i in range(1, 9)])  # 8: no orders
    pipeline = Pipeline.objects.create(name="shop")
    outputs = {}
    for name, pos in (("orders", 0), ("customers", 1)):
        source = Source.objects.create(name=name, location=str(data / f"{name}_*.csv"))
        raw = Dataset.objects.create(name=f"explore_{name}", layer="explore", table=name)
        outputs[name] = Dataset.objects.create(name=name, layer="chart", table=name)
        Step.objects.create(pipeline=pipeline, name=f"ingest_{name}", kind="ingest", source=source, output=raw,
                            write_mode="append", position=pos)
    Step.objects.create(pipeline=pipeline, name="refine_orders", kind="refine", output=outputs["orders"],
                        sql=LATEST_ORDER, merge_keys="order_id", incremental=True, position=2)
    Step.objects.create(pipeline=pipeline, name="refine_customers", kind="refine", output=outputs["customers"],
                        sql=LATEST_CUSTOMER, merge_keys="customer_id", incremental=True, position=3)
    for name, sql, keys, pos in (("by_day", BY_DAY, "day, region", 4),
                                 ("by_customer", BY_CUSTOMER, "customer_id, tier", 5)):
        out = Dataset.objects.create(name=name, layer="navigate", table=name)
        Step.objects.create(pipeline=pipeline, name=name, kind="aggregate", output=out, sql=sql, merge_keys=keys,
                            incremental=True, position=pos)
    runner.save_step_inputs(pipeline)
    pipeline.data = data
    return pipeline


def published(wh) -> dict[str, list[tuple]]:
    out = {}
    for ds in Dataset.objects.filter(layer__in=("chart", "navigate")).order_by("table"):
        with wh.cursor() as cur:
            out[ds.qualified_table] = sorted(cur.execute(f'SELECT * FROM {ds.layer}."{ds.table}"').fetchall(),
                                             key=repr)
    return out


def how(run, step: str) -> str:
    state = run.step_runs.get(step_name=step).details[incremental.DETAILS]
    return f"{state['mode']}: {state['reason']}"


def assert_equals_full_recomputation(shop, wh) -> dict[str, list[tuple]]:
    rows = published(wh)
    run = run_now(shop, full_refresh=True)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert how(run, "by_day") == "full: a full refresh recomputes every step"
    assert published(wh) == rows
    return rows


def test_an_append_recomputes_the_affected_groups_and_equals_a_full_recomputation(shop, wh):
    first = run_now(shop)
    assert first.status == RunStatus.SUCCEEDED, first.error
    assert how(first, "by_day") == "full: it has not run before"
    before = published(wh)
    # a new order in an existing group; order 2 moves from (01-03, NULL region) to (01-05, north): its old
    # group must be recomputed too; order 4 moves to a NULL region; order 6 becomes void (it leaves its
    # group); order 11 (void) comes back; customer 3 changes tier (a group of the FROM table moves);
    # customer 8 gets its first order.
    _orders(shop.data / "orders_002.csv", [(100, 1, "2026-01-02", "north", "placed", "5.00"),
                                           (2, 3, "2026-01-05", "north", "placed", "2.25"),
                                           (4, 5, "2026-01-05", "", "placed", "4.25"),
                                           (6, 7, "2026-01-02", "", "void", "6.25"),
                                           (11, 5, "2026-01-02", "north", "placed", "11.25"),
                                           (101, 8, "2026-01-04", "south", "placed", "1.00")])
    _customers(shop.data / "customers_002.csv", [(3, "silver")])

    run = run_now(shop)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert how(run, "refine_orders") == "incremental: 1 new batch of explore.orders"
    assert how(run, "by_day") == "incremental: affected groups of chart.orders (merged by key)"
    assert how(run, "by_customer") == "incremental: affected groups of chart.customers, chart.orders (merged by key)"
    by_day = run.step_runs.get(step_name="by_day")
    assert by_day.rows_out < len(before["navigate.by_day"])  # only the groups touched were recomputed
    rows = assert_equals_full_recomputation(shop, wh)
    assert any(r[1] is None for r in rows["navigate.by_day"])  # NULL region groups, merged null-safe
    assert any(r[1] is None for r in rows["navigate.by_customer"])
    assert rows["navigate.by_day"] != before["navigate.by_day"]


def test_a_group_left_empty_leaves_the_table(shop, wh):
    run_now(shop)
    days = {r[0] for r in published(wh)["navigate.by_day"]}
    # every order of 2026-01-01 moves to another day: that day's groups are gone after a full recomputation too
    moved = [(i, i % 7 + 1, "2026-01-03", "south", "placed", f"{i}.25") for i in range(1, 61) if i % 5 == 0]
    _orders(shop.data / "orders_002.csv", moved)

    run = run_now(shop)

    assert how(run, "by_day") == "incremental: affected groups of chart.orders (merged by key)"
    left = {r[0] for r in published(wh)["navigate.by_day"]}
    assert len(left) == len(days) - 1
    assert_equals_full_recomputation(shop, wh)


@pytest.mark.step_hooks("quality.hooks.QualityGate")
def test_a_row_a_drop_check_rejects_leaves_its_group_as_in_full(shop, wh):
    from quality.models import Check

    Check.objects.create(dataset=Dataset.objects.get(layer="chart", table="orders"), name="known_status",
                         kind="accepted_values", columns=["status"], severity="drop",
                         params={"values": ["placed", "shipped", "void"]})
    run_now(shop)
    # order 7's latest row is dropped by the check: it leaves chart.orders, and its old group must lose it
    _orders(shop.data / "orders_002.csv", [(7, 1, "2026-01-03", "north", "lost", "7.25"),
                                           (102, 2, "2026-01-01", "south", "shipped", "3.00")])

    run = run_now(shop)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert how(run, "by_day") == "incremental: affected groups of chart.orders (merged by key)"
    assert 7 not in {r[0] for r in published(wh)["chart.orders"]}
    assert_equals_full_recomputation(shop, wh)


def test_an_input_recomputed_in_full_recomputes_the_aggregate_in_full(shop, wh):
    run_now(shop)
    Step.objects.filter(name="refine_customers").update(sql=LATEST_CUSTOMER.replace("SELECT DISTINCT", "SELECT  DISTINCT"))
    _orders(shop.data / "orders_002.csv", [(103, 2, "2026-01-01", "south", "placed", "3.00")])

    run = run_now(shop)

    assert how(run, "refine_customers") == "full: its definition changed"
    assert how(run, "by_day") == "incremental: affected groups of chart.orders (merged by key)"
    assert how(run, "by_customer") == "full: chart.customers changed other than by a keyed merge in this run"
    assert_equals_full_recomputation(shop, wh)


def test_a_shape_not_proven_recomputes_in_full_and_says_why(shop, wh):
    Step.objects.filter(name="by_day").update(
        sql=BY_DAY.replace("count(*) AS orders", "count(*) AS orders, rank() OVER (ORDER BY o.day) AS r")
        .replace("GROUP BY o.day, o.region", "GROUP BY o.day, o.region, o.amount"))
    run_now(shop)
    _orders(shop.data / "orders_002.csv", [(104, 2, "2026-01-01", "south", "placed", "3.00")])

    run = run_now(shop)

    assert how(run, "by_day") == "full: a window function over inputs changed by merge"
    assert_equals_full_recomputation(shop, wh)


def test_the_merges_changes_are_dropped_at_the_runs_end_and_by_the_janitor(shop, wh):
    from pipelines import attempts

    run_now(shop)
    _orders(shop.data / "orders_002.csv", [(105, 2, "2026-01-01", "south", "placed", "3.00")])
    run = run_now(shop)
    changes = run.step_runs.get(step_name="refine_orders").details[incremental.DETAILS]["changes"]
    assert changes["old"].startswith("orders__") and changes["schema"] == "chart"
    assert not wh.table_exists("chart", changes["old"]) and not wh.table_exists("chart", changes["new"])
    # a run that died before its end left them: tagged with its attempt, the janitor drops them
    assert attempts.is_staging(f"chart.{changes['old']}")
    wh.create_table_as("chart", changes["old"], "SELECT 1 AS x")

    attempts.clean_up_attempts()

    assert not wh.table_exists("chart", changes["old"])


@pytest.mark.step_hooks("quality.hooks.QualityGate")
def test_the_gate_counts_the_table_after_the_merge_when_a_group_leaves_it(shop, wh):
    from quality.models import Check, CheckResult

    by_day = Dataset.objects.get(layer="navigate", table="by_day")
    Check.objects.create(dataset=by_day, name="groups", kind="row_count", params={"min": 1}, severity="fail")
    Check.objects.create(dataset=by_day, name="revenue", kind="custom_aggregate",
                         params={"sql": "sum(orders) > 0"}, severity="warn")
    run_now(shop)
    _orders(shop.data / "orders_002.csv",
            [(i, i % 7 + 1, "2026-01-03", "south", "placed", f"{i}.25") for i in range(1, 61) if i % 5 == 0])

    run = run_now(shop)

    assert how(run, "by_day") == "incremental: affected groups of chart.orders (merged by key)"
    rows = published(wh)["navigate.by_day"]
    results = {r.check_name: r for r in CheckResult.objects.filter(check_run__step_run__run=run,
                                                                   check_run__dataset=by_day)}
    assert results["groups"].observed == len(rows)  # the groups of the day that left are not counted
    assert_equals_full_recomputation(shop, wh)


def test_a_refine_grouping_a_merged_table_recomputes_in_full(shop, wh):
    # a refine's SELECT may be rewritten by its prepare hooks (column policies) after the plan: not by groups
    out = Dataset.objects.create(name="days", layer="chart", table="days")
    Step.objects.create(pipeline=shop, name="days", kind="refine", output=out, sql=BY_DAY, merge_keys="day, region",
                        incremental=True, position=6)
    runner.save_step_inputs(shop)
    run_now(shop)
    _orders(shop.data / "orders_002.csv", [(106, 2, "2026-01-01", "south", "placed", "3.00")])

    run = run_now(shop)

    assert how(run, "days") == "full: chart.orders changed and is not append-only"
    assert how(run, "by_day") == "incremental: affected groups of chart.orders (merged by key)"
    assert_equals_full_recomputation(shop, wh)


def indexed(wh, table: str) -> set[tuple[str, ...]]:
    """The columns of each index of chart.``table`` (PostgreSQL); DuckDB keeps none: it hashes the inputs in one pass."""
    if wh.vendor != "postgresql":
        return set()
    with wh.cursor() as cur:
        found = cur.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'chart' AND tablename = %s",
                            [table]).fetchall()
    return {tuple(c.strip().strip('"') for c in d.rsplit("(", 1)[1].rstrip(")").split(",")) for (d,) in found}


def test_the_inputs_are_indexed_on_the_columns_the_groups_are_looked_up_by(shop, wh):
    pg = wh.vendor == "postgresql"
    # chart.orders: its key (order_id), by_day's group columns, by_customer's links to customers (the join and
    # the spent WITH query, both by customer_id); chart.customers: its key serves the link, by_customer's group
    # columns are both its columns
    orders = {("order_id",), ("day", "region"), ("customer_id",)} if pg else set()
    customers = {("customer_id",), ("customer_id", "tier")} if pg else set()
    run_now(shop)  # the aggregates' first runs, in full, index their inputs
    assert (indexed(wh, "orders"), indexed(wh, "customers")) == (orders, customers)
    # refine_orders recomputed in full publishes a new table: the aggregates' next run indexes it again
    Step.objects.filter(name="refine_orders").update(sql=LATEST_ORDER.replace("SELECT DISTINCT", "SELECT  DISTINCT"))
    _orders(shop.data / "orders_002.csv", [(107, 8, "2026-01-02", "north", "placed", "7.00")])
    run = run_now(shop)
    assert how(run, "refine_orders") == "full: its definition changed"
    assert how(run, "by_customer") == "full: chart.orders changed other than by a keyed merge in this run"
    assert (indexed(wh, "orders"), indexed(wh, "customers")) == (orders, customers)
    # merges keep them; the affected groups are looked up through them, equal to a full recomputation
    _orders(shop.data / "orders_003.csv", [(107, 2, "2026-01-04", "south", "placed", "8.00"),
                                           (3, 8, "2026-01-01", "", "placed", "3.50")])
    _customers(shop.data / "customers_002.csv", [(2, "silver"), (9, "")])

    run = run_now(shop)

    assert how(run, "by_customer") == "incremental: affected groups of chart.customers, chart.orders (merged by key)"
    assert how(run, "by_day") == "incremental: affected groups of chart.orders (merged by key)"
    assert (indexed(wh, "orders"), indexed(wh, "customers")) == (orders, customers)
    assert_equals_full_recomputation(shop, wh)


LATEST_ITEM = (
    "WITH typed AS (SELECT CAST(order_id AS integer) AS order_id, CAST(line_no AS integer) AS line_no,"
    " CAST(amount AS numeric(12, 2)) AS amount, _ingested_at, _row_number FROM explore.items)"
    " SELECT DISTINCT ON (order_id, line_no) order_id, line_no, amount FROM typed"
    " ORDER BY order_id, line_no, _ingested_at DESC, _row_number DESC"
)
SPENT = (
    "WITH lines AS (SELECT order_id, sum(amount) AS total FROM chart.items GROUP BY order_id)"
    " SELECT c.customer_id, count(o.order_id) AS orders, coalesce(sum(l.total), 0) AS spent"
    " FROM chart.customers AS c LEFT JOIN chart.orders AS o ON o.customer_id = c.customer_id"
    " LEFT JOIN lines AS l ON l.order_id = o.order_id GROUP BY c.customer_id"
)


def test_a_chain_through_a_changed_table_follows_it_as_it_is_and_as_it_was(shop, wh):
    # customers <- orders <- items: the items' changes reach the customers through orders, which changed too
    _write(shop.data / "items_001.csv", "order_id,line_no,amount",
           [(i, n, f"{i + n}.50") for i in range(1, 61) for n in (1, 2)])
    source = Source.objects.create(name="items", location=str(shop.data / "items_*.csv"))
    raw = Dataset.objects.create(name="explore_items", layer="explore", table="items")
    items = Dataset.objects.create(name="items", layer="chart", table="items")
    spent = Dataset.objects.create(name="spent", layer="navigate", table="spent")
    Step.objects.create(pipeline=shop, name="ingest_items", kind="ingest", source=source, output=raw,
                        write_mode="append", position=6)
    Step.objects.create(pipeline=shop, name="refine_items", kind="refine", output=items, sql=LATEST_ITEM,
                        merge_keys="order_id, line_no", incremental=True, position=7)
    Step.objects.create(pipeline=shop, name="spent", kind="aggregate", output=spent, sql=SPENT,
                        merge_keys="customer_id", incremental=True, position=8)
    runner.save_step_inputs(shop)
    run_now(shop)
    # order 2 moves from customer 3 to 6 and its first line changes; order 9's line changes, order 9 does not;
    # order 12 moves to customer 1 (its lines unchanged); a new order 110 of customer 8 with its lines
    _orders(shop.data / "orders_002.csv", [(2, 6, "2026-01-03", "", "placed", "2.25"),
                                           (12, 1, "2026-01-03", "", "placed", "12.25"),
                                           (110, 8, "2026-01-02", "south", "placed", "1.00")])
    _write(shop.data / "items_002.csv", "order_id,line_no,amount", [(2, 1, "99.00"), (9, 2, "0.25"),
                                                                    (110, 1, "4.00"), (110, 2, "5.00")])

    run = run_now(shop)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert how(run, "spent") == "incremental: affected groups of chart.customers, chart.items, chart.orders (merged by key)"
    rows = {r[0]: r[1:] for r in assert_equals_full_recomputation(shop, wh)["navigate.spent"]}
    assert (rows[3][0], rows[6][0], rows[1][0], rows[8]) == (8, 8, 9, (1, Decimal("9.00")))  # 9, 8, 8, none before
    assert indexed(wh, "items") == ({("order_id", "line_no")} if wh.vendor == "postgresql" else set())
