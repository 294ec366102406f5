"""Incremental transforms (issue 20, pipelines.incremental): exact against a full recomputation, on both engines.

A generated shop appends order files to ``explore.orders``; an incremental refine keeps the latest
row per order. Each test appends, runs, and compares ``chart.orders`` with a full refresh of the same
definitions and files. What an append cannot say: a row deleted from the source. Appends add rows;
a key leaves the output only when a full recomputation drops it too (its latest row filtered out),
or by a full run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas.tests.plugin import run_now
from pipelines import incremental, runner
from pipelines.models import Dataset, Pipeline, RunStatus, Source, Step

pytestmark = [pytest.mark.slow]

LATEST_PER_ORDER = (
    "WITH typed AS (SELECT CAST(trim(order_id) AS integer) AS order_id, lower(trim(status)) AS status,"
    " CAST(amount AS numeric(12, 2)) AS amount, _ingested_at, _row_number FROM explore.orders"
    " WHERE coalesce(status, '') <> 'ignore')"
    " SELECT DISTINCT ON (order_id) order_id, status, amount FROM typed"
    " ORDER BY order_id, _ingested_at DESC, _row_number DESC"
)


def _orders(path: Path, rows: list[tuple[int, str, str]]) -> None:
    path.write_text("order_id,status,amount\n" + "".join(f"{i},{s},{a}\n" for i, s, a in rows))


@pytest.fixture
def shop(db, tmp_path):
    """Orders in files under a glob (each new file one new batch), refined incrementally into chart.orders."""
    data = tmp_path / "shop"
    data.mkdir()
    _orders(data / "orders_001.csv", [(i, "placed", f"{i}.50") for i in range(1, 201)])
    source = Source.objects.create(name="orders", location=str(data / "orders_*.csv"))
    raw = Dataset.objects.create(name="explore_orders", layer="explore", table="orders")
    out = Dataset.objects.create(name="orders", layer="chart", table="orders")
    pipeline = Pipeline.objects.create(name="shop")
    Step.objects.create(pipeline=pipeline, name="ingest_orders", kind="ingest", source=source, output=raw,
                        write_mode="append")
    Step.objects.create(pipeline=pipeline, name="refine_orders", kind="refine", output=out, sql=LATEST_PER_ORDER,
                        merge_keys="order_id", incremental=True, position=1)
    runner.save_step_inputs(pipeline)
    pipeline.data = data
    return pipeline


def published(wh) -> list[tuple]:
    with wh.cursor() as cur:
        return sorted(cur.execute('SELECT order_id, status, amount FROM chart."orders"').fetchall())


def refine_of(run):
    return run.step_runs.get(step_name="refine_orders")


def how(run) -> str:
    """The refine's plan as the run shows it: "incremental: 1 new batch of explore.orders" or "full: <why>"."""
    state = refine_of(run).details[incremental.DETAILS]
    return f"{state['mode']}: {state['reason']}"


def assert_equals_full_recomputation(shop, wh) -> None:
    rows = published(wh)
    run = run_now(shop, full_refresh=True)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert how(run) == "full: a full refresh recomputes every step"
    assert published(wh) == rows


# --- the failure path first: today a second append recomputes everything ---------------------
def test_a_second_append_reads_only_the_new_batch(shop, wh):
    first = run_now(shop)
    assert first.status == RunStatus.SUCCEEDED, first.error
    assert how(first) == "full: it has not run before"
    _orders(shop.data / "orders_002.csv", [(i, "placed", "1.00") for i in range(201, 206)])
    second = run_now(shop)
    _orders(shop.data / "orders_003.csv", [(i, "shipped", "2.00") for i in range(206, 209)])

    third = run_now(shop)

    assert third.status == RunStatus.SUCCEEDED, third.error
    assert how(second) == "incremental: 1 new batch of explore.orders"
    assert how(third) == "incremental: 1 new batch of explore.orders"
    assert refine_of(third).rows_in == 3  # the new batch's rows, not the 208 of the table
    assert "_batch_id IN" in refine_of(third).sql
    assert len(published(wh)) == 208
    assert_equals_full_recomputation(shop, wh)


def test_the_run_says_how_an_incremental_step_ran(shop, wh):
    from pipelines import live
    from pipelines.run_console import ended_line

    run_now(shop)
    _orders(shop.data / "orders_002.csv", [(1, "shipped", "1.00")])
    run = run_now(shop)

    line = ended_line(live.step_state(refine_of(run)))
    assert line.endswith("1 rows in, 1 out, 0 rejected (incremental: 1 new batch of explore.orders)"), line


def test_new_keys_updated_keys_and_late_rows_equal_a_full_recomputation(shop, wh):
    run_now(shop)
    # updated keys (1, 2), a new key (300), a key given twice in one file (3: the later line wins),
    # a late row (4, an older status arriving now: the latest load wins, as in a full recomputation),
    # and a row the SELECT filters out (5 'ignore': the published row of 5 stays, as it would in full).
    _orders(shop.data / "orders_002.csv", [(1, "shipped", "9.99"), (2, "Cancelled ", "0"), (300, "placed", "3.00"),
                                            (3, "shipped", "1"), (3, "delivered", "2"), (4, "draft", "4.50"),
                                            (5, "ignore", "0")])
    run = run_now(shop)

    assert how(run) == "incremental: 1 new batch of explore.orders"
    rows = {r[0]: r for r in published(wh)}
    assert rows[1][1] == "shipped"
    assert rows[2][1] == "cancelled" and rows[3][1] == "delivered" and rows[4][1] == "draft"
    assert rows[5][1] == "placed" and 300 in rows
    assert_equals_full_recomputation(shop, wh)


def test_two_appends_between_runs_are_both_read(shop, wh):
    run_now(shop)
    _orders(shop.data / "orders_002.csv", [(7, "shipped", "1.00")])
    _orders(shop.data / "orders_003.csv", [(7, "delivered", "1.00"), (400, "placed", "5.00")])

    run = run_now(shop)

    assert how(run) == "incremental: 2 new batches of explore.orders"
    assert dict((r[0], r[1]) for r in published(wh))[7] == "delivered"
    assert_equals_full_recomputation(shop, wh)


@pytest.mark.step_hooks("quality.hooks.QualityGate")
def test_a_key_whose_latest_row_a_drop_check_refuses_leaves_the_table_as_in_full(shop, wh):
    from quality.models import Check

    Check.objects.create(dataset=Dataset.objects.get(layer="chart", table="orders"), name="known_status",
                         kind="accepted_values", columns=["status"], severity="drop",
                         params={"values": ["placed", "shipped", "delivered", "cancelled"]})
    run_now(shop)
    _orders(shop.data / "orders_002.csv", [(8, "lost", "1.00"), (9, "shipped", "1.00")])

    run = run_now(shop)

    assert how(run) == "incremental: 1 new batch of explore.orders"
    assert run.status == RunStatus.SUCCEEDED, run.error
    keys = {r[0] for r in published(wh)}
    assert 8 not in keys and 9 in keys  # 8's latest row is dropped: a full recomputation has no 8 either
    assert counted_as_catalogued(wh)
    assert_equals_full_recomputation(shop, wh)


def test_nothing_new_reads_no_batch_and_changes_nothing(shop, wh):
    run_now(shop)
    before = published(wh)

    run = run_now(shop)  # the suite runs every step (no up-to-date skip): the refine reads what is new, none

    assert how(run) == "incremental: 0 new batches of explore.orders"
    assert published(wh) == before


# --- merges cost the keys they touch (i20h) ----------------------------------------------------
def key_indexes(wh) -> list[str]:
    """The indexes of chart.orders (PostgreSQL); DuckDB keeps none: its merge hashes the staged keys."""
    if wh.vendor != "postgresql":
        return []
    with wh.cursor() as cur:
        return [r[0] for r in cur.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'chart' AND tablename = 'orders'").fetchall()]


def planner_defaults(wh) -> bool:
    """The merge's planner hints (SET LOCAL) end with its transaction."""
    if wh.vendor != "postgresql":
        return True
    with wh.cursor() as cur:
        return [cur.execute(f"SHOW {s}").fetchone()[0] for s in ("enable_hashjoin", "enable_mergejoin")] == ["on"] * 2


def counted_as_catalogued(wh) -> bool:
    """The output's row count in the catalogue (a merge computes it, i20h) is the table's."""
    return Dataset.objects.get(layer="chart", table="orders").row_count == wh.row_count("chart", "orders")


def test_an_incremental_output_is_indexed_on_its_keys_and_merges_equal_a_full_recomputation(shop, wh):
    pg = wh.vendor == "postgresql"
    run_now(shop)  # published whole (replace), indexed on its keys before the swap
    assert len(key_indexes(wh)) == (1 if pg else 0)
    assert all(i.endswith("(order_id)") for i in key_indexes(wh))
    # a few keys against the table (the index probed key by key), then every key (hashed, as the planner likes)
    _orders(shop.data / "orders_002.csv", [(1, "shipped", "9.99"), (2, "delivered", "1"), (600, "placed", "6")])
    assert how(run_now(shop)) == "incremental: 1 new batch of explore.orders"
    assert planner_defaults(wh) and counted_as_catalogued(wh)
    _orders(shop.data / "orders_003.csv", [(i, "returned", "0.10") for i in [*range(1, 201), 600]])
    assert how(run_now(shop)) == "incremental: 1 new batch of explore.orders"
    rows = {r[0]: r[1] for r in published(wh)}
    assert set(rows.values()) == {"returned"} and len(rows) == 201
    assert len(key_indexes(wh)) == (1 if pg else 0) and planner_defaults(wh) and counted_as_catalogued(wh)
    assert_equals_full_recomputation(shop, wh)
    assert len(key_indexes(wh)) == (1 if pg else 0)  # the full refresh published a new table, indexed again


def test_a_merge_into_an_output_without_its_key_index_adds_it(shop, wh):
    run_now(shop)
    for definition in key_indexes(wh):  # as published before outputs were indexed
        with wh.cursor() as cur:
            cur.execute(f"DROP INDEX chart.{definition.split()[2]}")
    _orders(shop.data / "orders_002.csv", [(3, "shipped", "3.33"), (700, "placed", "7")])
    assert how(run_now(shop)) == "incremental: 1 new batch of explore.orders"
    assert len(key_indexes(wh)) == (1 if wh.vendor == "postgresql" else 0)
    assert dict((r[0], r[1]) for r in published(wh))[3] == "shipped"
    assert_equals_full_recomputation(shop, wh)


# --- the cases that recompute in full, each with its reason -----------------------------------
def test_a_forced_run_recomputes_in_full(shop, wh):
    run_now(shop)
    _orders(shop.data / "orders_002.csv", [(1, "shipped", "1.00")])

    run = run_now(shop, force=True)

    assert how(run) == "full: a forced run recomputes every step"
    assert_equals_full_recomputation(shop, wh)


def test_a_changed_definition_recomputes_in_full(shop, wh):
    run_now(shop)
    step = Step.objects.get(name="refine_orders")
    step.sql = LATEST_PER_ORDER.replace("lower(trim(status))", "upper(trim(status))")
    step.save()
    _orders(shop.data / "orders_002.csv", [(1, "shipped", "1.00")])

    run = run_now(shop)

    assert how(run) == "full: its definition changed"
    assert {r[1] for r in published(wh)} == {"PLACED", "SHIPPED"}


@pytest.mark.parametrize(("sql", "reason"), [
    ("SELECT CAST(order_id AS integer) AS order_id, count(*) AS lines FROM explore.orders GROUP BY 1",
     "GROUP BY over an incremental input (explore.orders)"),
    ("SELECT CAST(order_id AS integer) AS order_id, status FROM explore.orders",
     "the SELECT does not keep one row per key (DISTINCT ON (order_id) ... ORDER BY order_id, _ingested_at DESC)"),
    ("SELECT DISTINCT ON (order_id) CAST(order_id AS integer) AS order_id, status FROM explore.orders"
     " ORDER BY order_id, status",
     "DISTINCT ON does not keep the latest load first (DISTINCT ON (order_id) ... ORDER BY order_id, _ingested_at DESC)"),
    ("SELECT DISTINCT ON (status) CAST(order_id AS integer) AS order_id, status FROM explore.orders"
     " ORDER BY status, _ingested_at DESC",
     "DISTINCT ON is not on the merge keys (DISTINCT ON (order_id) ... ORDER BY order_id, _ingested_at DESC)"),
    ("SELECT DISTINCT ON (order_id) order_id, status, row_number() OVER () AS n FROM explore.orders"
     " ORDER BY order_id, _ingested_at DESC",
     "a window function over an incremental input (explore.orders)"),
])
def test_sql_the_rewrite_cannot_prove_exact_recomputes_in_full_and_says_why(shop, wh, sql, reason):
    step = Step.objects.get(name="refine_orders")
    step.sql = sql
    step.save()
    run_now(shop)
    _orders(shop.data / "orders_002.csv", [(1, "shipped", "1.00")])

    run = run_now(shop)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert how(run) == f"full: {reason}"


def test_an_input_erased_or_trimmed_since_recomputes_in_full(shop, wh):
    from django.db.models import F

    run_now(shop)
    Dataset.objects.filter(layer="explore", table="orders").update(data_version=F("data_version") + 1)
    _orders(shop.data / "orders_002.csv", [(1, "shipped", "1.00")])

    run = run_now(shop)

    assert how(run) == "full: explore.orders was trimmed or erased since"
    assert_equals_full_recomputation(shop, wh)


def test_an_output_rewritten_since_recomputes_in_full(shop, wh):
    from django.db.models import F

    run_now(shop)
    Dataset.objects.filter(layer="chart", table="orders").update(data_version=F("data_version") + 1)
    _orders(shop.data / "orders_002.csv", [(1, "shipped", "1.00")])

    run = run_now(shop)

    assert how(run) == "full: its output changed since (trimmed, erased or rewritten)"


def test_a_step_that_is_not_incremental_records_no_plan(shop, wh):
    Step.objects.filter(name="refine_orders").update(incremental=False)
    run = run_now(shop)
    assert incremental.DETAILS not in refine_of(run).details


@pytest.mark.parametrize(("changes", "field"), [
    ({"merge_keys": ""}, "merge_keys"),
    ({"write_mode": "merge"}, "write_mode"),
])
def test_an_incremental_step_needs_keys_and_write_mode_replace(shop, changes, field):
    from django.core.exceptions import ValidationError

    step = Step.objects.get(name="refine_orders")
    for name, value in changes.items():
        setattr(step, name, value)
    with pytest.raises(ValidationError) as caught:
        step.clean()
    assert field in caught.value.message_dict


def test_the_api_declares_a_step_incremental_and_refuses_one_without_keys(shop):
    from atlas.api.testing import assert_error, token_client, user_with_role

    api = token_client(user_with_role("Operator", "ops"))
    step = Step.objects.get(name="refine_orders")
    Step.objects.filter(pk=step.pk).update(incremental=False)
    assert api.get(f"/api/v1/steps/{step.pk}/").json()["incremental"] is False
    assert api.patch(f"/api/v1/steps/{step.pk}/", {"incremental": True}).status_code == 200
    assert Step.objects.get(pk=step.pk).incremental
    error = assert_error(api.patch(f"/api/v1/steps/{step.pk}/", {"merge_keys": ""}), 409)
    assert "merge_keys" in error["detail"]
