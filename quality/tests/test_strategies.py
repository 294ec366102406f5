"""The engine-specific counting strategies stay exact: integer bitmaps, hashed keys, and their fallbacks.

On DuckDB, uniqueness of a dense integer key and a foreign key onto a dense
integer key are counted with bitmaps of the key range read when compiling, and
several key columns as one hash; these tests hold on every engine, with keys
that sit outside the range, at the ends of the type, NULL, and tables that
change between compiling and counting.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from quality import compiler, service
from quality.models import CheckRun
from quality.service import evaluate, run_checks

T = datetime(2026, 1, 1)
BIG = (("id", "bigint"), ("name", "text"))
BIG_MIN, BIG_MAX = -(2**63), 2**63 - 1


def failing(ds) -> dict[str, int]:
    run = run_checks(ds, trigger=CheckRun.Trigger.CLI)
    return {r.check_name: r.failing_rows for r in run.results.all()}


def test_unique_integer_key_dense_range_counts_every_duplicated_row(table, check):
    rows = [(i, f"n{i}") for i in range(1, 301)] + [(7, "again"), (7, "thrice"), (300, "last"), (None, "x"), (None, "y")]
    ds = table(rows, columns=BIG)
    check(ds, "unique", ["id"])
    run = run_checks(ds, trigger="cli")
    r = run.results.get()
    assert r.failing_rows == 5  # three 7s, two 300s; NULLs are not duplicates
    assert sorted(row["id"] for row in r.sample_rows) == [7, 7, 7, 300, 300]


def test_unique_integer_key_at_the_ends_of_the_type(table, check):
    ds = table([(BIG_MIN, "a"), (BIG_MAX, "b"), (0, "c"), (BIG_MAX, "d")], columns=BIG)
    check(ds, "unique", ["id"])
    assert failing(ds) == {"unique_id": 2}


def test_unique_integer_key_sparse_and_passing(table, check):
    ds = table([(i * 1_000_003, "x") for i in range(-50, 50)], columns=BIG)
    check(ds, "unique", ["id"])
    assert failing(ds) == {"unique_id": 0}


def test_unique_on_an_empty_or_all_null_table(table, check):
    ds = table([(None, "a"), (None, "b")], columns=BIG)
    check(ds, "unique", ["id"])
    assert failing(ds) == {"unique_id": 0}
    ds = table([], columns=BIG, name="empty")
    check(ds, "unique", ["id"])
    assert failing(ds) == {"unique_id": 0}


def test_unique_several_columns_equal_floats_are_duplicates(table, check):
    columns = (("k", "integer"), ("x", "double precision"), ("label", "text"))
    rows = [(1, 0.0, "a"), (1, -0.0, "b"), (2, float("nan"), "c"), (2, float("nan"), "d"), (3, 1.5, "e"), (3, None, "f")]
    ds = table(rows, columns=columns)
    check(ds, "unique", ["k", "x"])
    assert failing(ds) == {"unique_k_x": 4}  # 0.0 equals -0.0 and NaN equals NaN (both engines); NULL never duplicates


def test_unique_several_columns_passing_and_failing(table, check):
    columns = (("k", "bigint"), ("t", "text"), ("d", "numeric(12,2)"))
    rows = [(i % 10, f"t{i % 7}", i % 3) for i in range(60)]  # the (k, t, d) triples repeat every 210 rows: unique
    ds = table(rows, columns=columns)
    check(ds, "unique", ["k", "t", "d"])
    check(ds, "unique", ["k", "t"])  # repeats every 70: unique over 60 rows
    check(ds, "unique", ["k", "d"])  # repeats every 30: every row fails
    assert failing(ds) == {"unique_k_t_d": 0, "unique_k_t": 0, "unique_k_d": 60}


def test_referential_integer_keys_outside_the_referenced_range(table, check):
    table([(i, "p") for i in range(100, 201)] + [(150, "dup"), (None, "null")], name="parents", columns=BIG)
    rows = [(100, "lo"), (200, "hi"), (99, "below"), (201, "above"), (BIG_MIN, "min"), (BIG_MAX, "max"), (None, "n"),
            (150, "mid"), (150, "mid2")]
    ds = table(rows, columns=BIG)
    check(ds, "referential", ["id"], dataset="parents", column="id")
    run = run_checks(ds, trigger="cli")
    r = run.results.get()
    assert r.failing_rows == 4
    assert sorted(row["name"] for row in r.sample_rows) == ["above", "below", "max", "min"]


def test_referential_onto_an_empty_table(table, check):
    table([], name="parents", columns=BIG)
    ds = table([(1, "a"), (None, "b")], columns=BIG)
    check(ds, "referential", ["id"], dataset="parents", column="id")
    assert failing(ds) == {"referential_id": 1}


@pytest.fixture
def changed_after_compiling(monkeypatch, wh):
    """Run SQL on the warehouse right after the checks are compiled (another writer in between)."""

    def install(*statements: str):
        def compile_then_change(*args, **kwargs):
            plan = compiler.compile_plan(*args, **kwargs)
            with wh.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)
            return plan

        monkeypatch.setattr(service, "compile_plan", compile_then_change)

    return install


def test_counts_stay_exact_when_tables_change_after_compiling(wh, table, check, changed_after_compiling):
    table([(i, "p") for i in range(1, 101)], name="parents", columns=BIG)
    ds = table([(i, "c") for i in range(1, 101)] + [(5000, "orphan"), (7000, "late parent")], columns=BIG)
    fk = check(ds, "referential", ["id"], dataset="parents", column="id")
    uq = check(ds, "unique", ["id"])
    changed_after_compiling(
        'INSERT INTO chart."parents" VALUES (7000, \'new\')',  # a referenced key outside the range compiled in
        'INSERT INTO chart."items" VALUES (9999999, \'dup\'), (9999999, \'dup\')',  # a duplicate outside it
    )
    evaluation = evaluate(wh, [fk, uq], "chart", "items")
    got = {r.check_name: r.failing_rows for r in evaluation.results}
    assert got == {"referential_id": 3, "unique_id": 2}  # 5000 and the two 9999999 rows reference nothing
    # the scan, the exact uniqueness count, two sample queries; on DuckDB also the anti-join, its bitmap
    # count having declined (NULL) because a referenced key now lies outside the range compiled in
    assert evaluation.queries == (5 if wh.vendor == "duckdb" else 4)


def test_the_fast_strategies_are_the_ones_compiled(wh, table, check):
    table([(i, "p") for i in range(1, 101)], name="parents", columns=BIG)
    columns = (("id", "bigint"), ("name", "text"), ("x", "double precision"))
    ds = table([(i, "c", i / 3) for i in range(1, 101)], columns=columns)
    checks = [
        check(ds, "referential", ["id"], dataset="parents", column="id"),
        check(ds, "unique", ["id"]),
        check(ds, "unique", ["id", "x"]),
        check(ds, "unique", ["name"]),
    ]
    sql, _ = compiler.scan_sql(wh, compiler.compile_plan(wh, checks, "chart", "items"))
    if wh.vendor == "duckdb":
        assert sql.count("bitstring_agg(") == 2 and 'hash("id", "x")' in sql and 'count(DISTINCT "name")' in sql
    else:
        assert "bitstring_agg" not in sql and "hash(" not in sql
