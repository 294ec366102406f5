"""A scan's self-contained subqueries run beside it, from one snapshot, with the same answers as one statement.

On PostgreSQL one statement runs its subqueries (a uniqueness count, a foreign-key
anti-join) one after another in one backend; above ``ATLAS_QUALITY_CONCURRENT_SCAN_BYTES``
they run on connections of their own, all importing the first one's snapshot. These tests
force that path (0 bytes) and compare every count with the one statement's.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from quality import compiler, service
from quality.compiler import standalone
from quality.service import evaluate

COLUMNS = (("id", "integer"), ("line", "integer"), ("name", "text"), ("amount", "numeric(12,2)"))


def test_only_a_whole_subquery_that_reads_nothing_of_the_row_stands_alone():
    assert standalone('(SELECT count("id") - count(DISTINCT "id") FROM "chart"."t" WHERE "id" IS NOT NULL)')
    assert standalone("(SELECT count(*) FROM t AS r3s LEFT JOIN p AS r3 ON r3.k = r3s.k WHERE r3.k IS NULL)")
    assert standalone("(SELECT count(*) FROM t WHERE name = ')' OR name = '(''')")  # parentheses inside strings
    assert not standalone("(SELECT count(*) FROM p WHERE p.k = s.k)")  # correlated with the scanned row
    assert not standalone('(SELECT count(*) FROM p WHERE p.k = "s"."k")')
    assert not standalone("(SELECT 1) + (SELECT 2)")  # two subqueries, not one
    assert not standalone("count(*) FILTER (WHERE s.amount < 0)")
    assert not standalone("(SELECT count(*) FROM t")  # unbalanced: never split


@pytest.fixture
def mixed(table, check):
    """A table whose checks compile to row aggregates and to self-contained subqueries, failing and passing."""
    table([(i, "p", 0) for i in range(1, 41)], name="parents", columns=(("id", "integer"), ("name", "text"),
                                                                         ("amount", "integer")))
    rows = [(i % 50, i % 3, f"n{i % 45}", i % 7) for i in range(1, 121)] + [(None, 1, None, -1), (77, None, "x", 3)]
    ds = table(rows, columns=COLUMNS)
    checks = [
        check(ds, "unique", ["id"]),
        check(ds, "unique", ["id", "line"]),  # two 32-bit integers: one packed key on PostgreSQL
        check(ds, "unique", ["name"]),
        check(ds, "referential", ["id"], dataset="parents", column="id"),
        check(ds, "not_null", ["name"]),
        check(ds, "range", ["amount"], min=0, max=5),
        check(ds, "custom_aggregate", sql="sum(amount) >= 0"),
    ]
    return ds, checks


def outcome(evaluation) -> dict[str, tuple]:
    return {r.check_name: (r.outcome, r.failing_rows, r.observed, r.sample_rows) for r in evaluation.results}


def test_side_by_side_gives_the_one_statements_answers(wh, mixed, settings):
    _ds, checks = mixed
    settings.ATLAS_QUALITY_CONCURRENT_SCAN_BYTES = -1
    one = evaluate(wh, checks, "chart", "items")
    settings.ATLAS_QUALITY_CONCURRENT_SCAN_BYTES = 0
    side = evaluate(wh, checks, "chart", "items")
    assert outcome(side) == outcome(one)
    assert outcome(one)["unique_id"][1] > 0 and outcome(one)["referential_id"][1] > 0  # failing, so compared exactly
    plan = compiler.compile_plan(wh, checks, "chart", "items")
    alone = service._side_by_side(wh, plan, plan.items())
    if wh.features_concurrent_scan:  # the uniqueness counts and the anti-join ran as statements of their own
        assert len(alone) >= 3 and side.queries - one.queries == len(alone)
    else:  # DuckDB spreads one statement over its threads itself
        assert alone == [] and side.queries == one.queries


def test_small_tables_keep_one_statement(wh, mixed, settings):
    _ds, checks = mixed
    settings.ATLAS_QUALITY_CONCURRENT_SCAN_BYTES = 1 << 40
    plan = compiler.compile_plan(wh, checks, "chart", "items")
    assert service._side_by_side(wh, plan, plan.items()) == []


def test_a_side_statement_that_fails_falls_back_and_only_its_check_errs(wh, mixed, settings, monkeypatch):
    _ds, checks = mixed
    settings.ATLAS_QUALITY_CONCURRENT_SCAN_BYTES = 0

    def compile_then_drop(*args, **kwargs):  # the referenced table vanishes between compiling and counting
        plan = compiler.compile_plan(*args, **kwargs)
        with wh.cursor() as cur:
            cur.execute('DROP TABLE chart."parents"')
        return plan

    monkeypatch.setattr(service, "compile_plan", compile_then_drop)
    got = outcome(evaluate(wh, checks, "chart", "items"))
    assert got.pop("referential_id")[0] == "error"
    assert {name for name, (result, *_rest) in got.items() if result == "error"} == set()
    assert got["unique_id"][1] > 0


def test_every_statement_reads_the_first_ones_snapshot(wh):
    if not wh.features_concurrent_scan:
        pytest.skip("PostgreSQL shares snapshots between connections (pg_export_snapshot); DuckDB needs none")
    stop = threading.Event()

    def commit_all_the_time():  # moves the server's snapshot on between any two connections' first queries
        with psycopg.connect(wh.conninfo, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("SELECT txid_current()")

    writer = threading.Thread(target=commit_all_the_time)
    writer.start()
    try:
        for _ in range(5):
            rows = wh.operator_rows_in_one_snapshot([("SELECT pg_current_snapshot()::text", None)] * 4, layer="chart")
            assert len({row[0] for row in rows}) == 1, rows
    finally:
        stop.set()
        writer.join()


def test_the_side_by_side_statements_sort_in_the_work_mem_they_are_given(wh):
    if not wh.features_concurrent_scan:
        pytest.skip("PostgreSQL only: DuckDB runs one statement with its own memory limit")
    show = ("SELECT current_setting('work_mem')", None)
    assert wh.operator_rows_in_one_snapshot([show] * 3, layer="chart", work_mem="48MB") == [("48MB",)] * 3
    with wh.cursor() as cur:
        server = cur.execute("SHOW work_mem").fetchone()[0]
    assert wh.operator_rows_in_one_snapshot([show] * 2, layer="chart") == [(server,)] * 2  # the transaction's only


def test_a_work_mem_the_server_refuses_falls_back_to_one_statement(wh, mixed, settings):
    _ds, checks = mixed
    settings.ATLAS_QUALITY_CONCURRENT_SCAN_BYTES = -1
    one = evaluate(wh, checks, "chart", "items")
    settings.ATLAS_QUALITY_CONCURRENT_SCAN_BYTES = 0
    settings.ATLAS_QUALITY_SCAN_WORK_MEM = "plenty"
    refused = evaluate(wh, checks, "chart", "items")
    settings.ATLAS_QUALITY_SCAN_WORK_MEM = "64MB"
    side = evaluate(wh, checks, "chart", "items")
    assert outcome(refused) == outcome(side) == outcome(one)
    assert not any(result == "error" for result, *_rest in outcome(side).values())
    if wh.features_concurrent_scan:  # refused: the one statement ran (the side statements never did)
        assert refused.queries == one.queries and side.queries > one.queries
