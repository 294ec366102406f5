"""The Spark warehouse's rows (issue 21): the data browser and quality's drop checks, on a real Spark Connect server.

Drop checks move failing rows to the quarantine by a row locator: on Spark a staged table is
Parquet, and a row is its file and its index in that file (``_metadata.file_path``,
``_metadata.row_index``); the staged table is rewritten (Parquet has no ``DELETE``).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from atlas.warehouse import WarehouseError

pytestmark = pytest.mark.slow

T = datetime(2026, 1, 1)
COLUMNS = (("id", "integer"), ("name", "text"), ("amount", "integer"), ("code", "text"), ("at", "timestamp"))


def make_table(wh, name: str, rows, columns=COLUMNS):
    from pipelines.models import Dataset, DatasetColumn
    from quality.tests.conftest import create_table

    create_table(wh, "chart", name, rows, columns)
    ds, _ = Dataset.objects.get_or_create(name=name, defaults={"layer": "chart", "table": name})
    for pos, (col, typ) in enumerate(columns):
        DatasetColumn.objects.get_or_create(dataset=ds, name=col, defaults={"position": pos, "data_type": typ})
    return ds


def table_rows(wh, name: str) -> list[tuple]:
    with wh.cursor() as cur:
        return cur.execute(f'SELECT * FROM chart."{name}" ORDER BY "id", "name"').fetchall()


# --- drop checks ----------------------------------------------------------------------------------

def test_a_drop_split_on_spark_is_exact_when_rows_fail_several_checks(spark_wh):
    from quality.models import Check, CheckRun
    from quality.service import run_checks

    rows = [
        (1, "ok", 10, "A1", T),  # passes
        (2, None, -5, "A2", T),  # fails not_null and range
        (3, "neg", -1, "zz", T),  # fails range and regex
        (4, None, 7, "bad", T),  # fails not_null and regex
        (5, "fine", 3, "B5", T),  # passes
        (5, "dupe", 3, "B6", T),  # duplicate id with the row above: both fail unique, the first is kept
    ]
    ds = make_table(spark_wh, "items__stg1", rows)
    ds.table = "items"
    ds.save()
    for kind, cols, name, params in (
        ("not_null", ["name"], "has_name", {}), ("range", ["amount"], "positive", {"min": 0}),
        ("regex", ["code"], "code_shape", {"pattern": "^[A-Z][0-9]$"}), ("unique", ["id"], "one_id", {}),
    ):
        Check.objects.create(dataset=ds, kind=kind, columns=cols, params=params, severity="drop", name=name)
    run = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg1", run_id=42)
    assert run.status == CheckRun.Status.WARNED, run.error
    assert run.rows_quarantined == 4 and run.rows_checked == 6
    assert [r[:2] for r in table_rows(spark_wh, "items__stg1")] == [(1, "ok"), (5, "fine")]
    with spark_wh.cursor() as cur:
        q = cur.execute(
            'SELECT "id", "_failed_checks", "_run_id", "_check_run_id", "_reason", "_quarantined_at"'
            ' FROM chart."items__quarantine" ORDER BY CAST("id" AS integer), "name"'
        ).fetchall()
    assert [(r[0], r[1]) for r in q] == [
        ("2", "has_name, positive"), ("3", "code_shape, positive"), ("4", "code_shape, has_name"), ("5", "one_id"),
    ]
    assert {(r[2], r[3]) for r in q} == {(42, run.pk)}
    assert all(r[4].startswith("Failed quality check(s): ") and r[5] is not None for r in q)
    counts = {r.check_name: r.rows_quarantined for r in run.results.all()}
    assert counts == {"has_name": 2, "positive": 2, "code_shape": 2, "one_id": 1}
    # the rewrite leaves no table of its own behind
    assert sorted(n for _, n, _ in spark_wh.relations(["chart"])) == ["items__quarantine", "items__stg1"]


def test_the_rows_a_drop_split_keeps_are_found_by_a_hashed_anti_join_not_a_nested_loop(spark_wh):
    """At 10M orders the demo's refine of orders ran 25 minutes in one statement: the kept rows were
    ``NOT ((file, index) IN (SELECT ...))``, a null-aware anti join Spark can only plan as a nested loop
    (every staged row against every flagged one). ``rows_not_in`` keeps the same rows by a hashed anti join."""
    from atlas.warehouse.base import Warehouse

    rows = [(i, f"n{i}", i % 7 - 3, f"C{i % 10}", T) for i in range(60)]
    make_table(spark_wh, "keep__stg", rows)
    staged, flagged = spark_wh.table("chart", "keep__stg"), spark_wh.table("chart", "keep__flag")
    with spark_wh.cursor() as cur:
        cur.execute(f"CREATE TABLE {flagged} AS SELECT {spark_wh.locator_columns('x')} FROM {staged} AS x"
                    ' WHERE x."amount" < 0')

    def plan(sql: str) -> str:
        from atlas.warehouse.spark import render  # what the cursor runs

        return spark_wh.spark().sql(f"EXPLAIN {render(sql)}").collect()[0][0]

    def kept(sql: str) -> list[tuple]:
        with spark_wh.cursor() as cur:
            return sorted(cur.execute(sql).fetchall())

    before = Warehouse.rows_not_in(spark_wh, staged, flagged)  # the generic NOT IN form
    assert "NestedLoopJoin" in plan(before)  # what the 10M run met
    after = spark_wh.rows_not_in(staged, flagged)
    assert "NestedLoopJoin" not in plan(after) and "Cartesian" not in plan(after)
    assert kept(after) == kept(before) == sorted(r for r in rows if r[2] >= 0)
    with spark_wh.cursor() as cur:
        cur.execute(f"DROP TABLE {flagged}")


def test_a_drop_split_on_spark_that_cannot_finish_changes_neither_table(spark_wh, monkeypatch):
    from quality import quarantine
    from quality.models import Check, CheckRun
    from quality.service import run_checks

    ds = make_table(spark_wh, "items__stg1", [(1, None, 1, "x", T), (2, "b", 1, "y", T)])
    ds.table = "items"
    ds.save()
    Check.objects.create(dataset=ds, kind="not_null", columns=["name"], severity="drop", name="named")
    real = quarantine.replace_staged

    def broken(wh, schema, staged, kept):
        raise WarehouseError("the catalog went away")

    monkeypatch.setattr(quarantine, "replace_staged", broken)
    run = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg1", run_id=7)
    assert run.status == CheckRun.Status.ERROR and "the catalog went away" in run.error
    assert len(table_rows(spark_wh, "items__stg1")) == 2
    assert quarantine.count_rows(spark_wh, "chart", "items") == 0
    monkeypatch.setattr(quarantine, "replace_staged", real)
    run = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg1", run_id=8)
    assert run.status == CheckRun.Status.WARNED and run.rows_quarantined == 1
    assert [r[:2] for r in table_rows(spark_wh, "items__stg1")] == [(2, "b")]
    assert quarantine.count_rows(spark_wh, "chart", "items") == 1


# --- the data browser -----------------------------------------------------------------------------

@pytest.fixture
def people(spark_wh):
    rows = [(i, f"name{i:03d}", (i * 7) % 5 if i % 4 else None, "c", T) for i in range(1, 31)]
    return make_table(spark_wh, "people", rows)


def test_the_spark_browser_pages_a_sort_over_the_whole_table_without_repeating_or_skipping(spark_wh, people):
    seen = []
    for offset in range(0, 30, 8):
        seen += spark_wh.browse("chart", "people", ["id", "amount"], order_by="amount", descending=True, limit=8, offset=offset)
    assert sorted(r[0] for r in seen) == list(range(1, 31))
    amounts = [r[1] for r in seen]
    filled = [a for a in amounts if a is not None]
    assert amounts == filled + [None] * (30 - len(filled))  # NULLs last, as on the other engines
    assert filled == sorted(filled, reverse=True)
    # ties are in the order of the columns chosen: a total order, the same on every call
    assert seen == sorted(seen, key=lambda r: (r[1] is None, -(r[1] or 0), r[0]))
    assert spark_wh.browse("chart", "people", ["name"], limit=3) == [("name001",), ("name002",), ("name003",)]
    assert spark_wh.browse("chart", "people", ["id"], limit=5, offset=28) == [(29,), (30,)]


def test_the_spark_browser_refuses_a_column_the_table_lacks(spark_wh, people):
    with pytest.raises(WarehouseError, match="has no column 'x\"; drop'"):
        spark_wh.browse("chart", "people", ["id", 'x"; drop'])
    with pytest.raises(WarehouseError, match="has no column"):
        spark_wh.browse("chart", "people", ["id"], order_by="nope")


def test_the_spark_data_page_and_csv(spark_wh, people, client):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "x"))
    page = client.get(f"/admin/pipelines/dataset/{people.pk}/data/?sort=id&dir=desc&size=25&page=2")
    html = page.content.decode()
    assert page.status_code == 200 and "Rows 26–30 of 30, sorted by id (descending)." in html
    body = b"".join(client.get(f"/admin/pipelines/dataset/{people.pk}/data.csv?col=id&sort=id").streaming_content)
    assert body.decode().splitlines()[:3] == ["id", "1", "2"]
