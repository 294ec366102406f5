"""Severities in real runs: warn publishes, drop quarantines atomically, fail blocks and leaves the published table."""

from __future__ import annotations

from datetime import datetime

import pytest

from pipelines.models import RunStatus
from pipelines.tests.conftest import run_now
from quality.compiler import compile_plan
from quality.models import Check, CheckResult, CheckRun
from quality.quarantine import split
from quality.service import run_checks

from .conftest import rows_of

GATE = "quality.hooks.QualityGate"
T = datetime(2026, 1, 1)


def test_drop_split_is_exact_when_rows_fail_several_checks(wh, table, check):
    rows = [
        (1, "ok", 10, "A1", T),  # passes
        (2, None, -5, "A2", T),  # fails not_null and range
        (3, "neg", -1, "zz", T),  # fails range and regex
        (4, None, 7, "bad", T),  # fails not_null and regex
        (5, "fine", 3, "B5", T),  # passes
        (5, "dupe", 3, "B6", T),  # duplicate id with the row above: both fail unique, the first is kept
    ]
    ds = table(rows, name="items__stg1")
    ds.table = "items"
    ds.save()
    check(ds, "not_null", ["name"], severity="drop", name="has_name")
    check(ds, "range", ["amount"], severity="drop", name="positive", min=0)
    check(ds, "regex", ["code"], severity="drop", name="code_shape", pattern="^[A-Z][0-9]$")
    check(ds, "unique", ["id"], severity="drop", name="one_id")
    run = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg1", run_id=42)
    assert run.status == CheckRun.Status.WARNED
    assert run.rows_quarantined == 4 and run.rows_checked == 6
    assert [r[:2] for r in rows_of(wh, "chart", "items__stg1")] == [(1, "ok"), (5, "fine")]
    with wh.cursor() as cur:
        q = cur.execute(
            'SELECT "id", "_failed_checks", "_run_id", "_check_run_id", "_reason", "_quarantined_at"'
            ' FROM chart."items__quarantine" ORDER BY CAST("id" AS integer), "name"'
        ).fetchall()
    assert [(r[0], r[1]) for r in q] == [
        ("2", "has_name, positive"),
        ("3", "code_shape, positive"),  # check names in order
        ("4", "code_shape, has_name"),
        ("5", "one_id"),
    ]
    assert {(r[2], r[3]) for r in q} == {(42, run.pk)}
    assert all(r[4].startswith("Failed quality check(s): ") and r[5] is not None for r in q)
    counts = {r.check_name: r.rows_quarantined for r in run.results.all()}
    assert counts == {"has_name": 2, "positive": 2, "code_shape": 2, "one_id": 1}
    one_id = run.results.get(check_name="one_id")  # counted as dbt and Soda count it: one duplicated key
    assert (one_id.observed, one_id.failing_rows) == (1, 2) and one_id.message.startswith("1 duplicated key: 2 of 6")


def test_split_is_all_or_nothing(wh, table, check):
    ds = table([(1, None, 1, "x", T), (2, "b", 1, "y", T)])
    c = check(ds, "not_null", ["name"], severity="drop")
    plan = compile_plan(wh, [c], "chart", "items")
    with wh.cursor() as cur:  # a reserved column name makes the copy impossible
        cur.execute('ALTER TABLE chart."items" ADD COLUMN "_failed_checks" text')
    with pytest.raises(Exception, match="reserved"):
        split(wh, plan, plan.row, target="items", check_run_id=1, run_id=None, batch_id=None, source="")
    assert len(rows_of(wh, "chart", "items")) == 2


def test_fail_blocks_and_moves_nothing(wh, table, check):
    ds = table([(1, None, 1, "x", T), (2, "b", -1, "y", T)])
    check(ds, "not_null", ["name"], severity="drop")
    check(ds, "range", ["amount"], severity="fail", min=0)
    run = run_checks(ds, trigger="step")
    assert run.status == CheckRun.Status.FAILED and run.rows_quarantined == 0
    assert len(rows_of(wh, "chart", "items")) == 2
    assert not wh.table_exists("chart", "items__quarantine")


def test_drop_above_its_limit_blocks(wh, table, check):
    ds = table([(1, None, 1, "x", T), (2, None, 1, "y", T), (3, "c", 1, "z", T)])
    check(ds, "not_null", ["name"], severity="drop", tolerance=0.5)
    run = run_checks(ds, trigger="step")
    assert run.status == CheckRun.Status.FAILED
    assert "above the drop limit" in run.results.get().message


def test_on_demand_never_rewrites_the_published_table(wh, table, check):
    ds = table([(1, None, 1, "x", T), (2, "b", 1, "y", T)])
    check(ds, "not_null", ["name"], severity="drop")
    run = run_checks(ds, trigger="manual", apply_drops=False)
    assert run.status == CheckRun.Status.WARNED and run.rows_quarantined == 0
    assert len(rows_of(wh, "chart", "items")) == 2


@pytest.fixture
def gated(settings, simple_pipeline):
    settings.ATLAS_STEP_HOOKS = [GATE]
    return simple_pipeline


def test_warn_records_and_publishes(wh, gated):
    pipeline = gated()
    people = pipeline.steps.get(name="refine").output
    Check.objects.create(dataset=people, name="big", kind="range", columns=["amount"], params={"max": 15})
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED
    result = CheckResult.objects.get(check_name="big")
    assert (result.outcome, result.failing_rows) == ("warn", 1)
    assert result.check_run.step_run.step_name == "refine"
    assert wh.row_count("chart", "people") == 3


def test_drop_in_a_run_publishes_the_rest_and_counts_rejects(wh, gated):
    pipeline = gated()
    people = pipeline.steps.get(name="refine").output
    Check.objects.create(dataset=people, name="small", kind="range", columns=["amount"], params={"min": 6}, severity="drop")
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED
    refine = run.step_runs.get(step_name="refine")
    assert (refine.rows_out, refine.rows_rejected) == (2, 1)
    assert refine.details["quality"][0]["rows_quarantined"] == 1
    assert sorted(r[1] for r in rows_of(wh, "chart", "people")) == ["Ann", "Bob"]
    assert wh.row_count("chart", "people__quarantine") == 1
    with wh.cursor() as cur:
        assert cur.execute('SELECT "people" FROM navigate."people_total"').fetchone() == (2,)


def test_fail_blocks_publishing_and_keeps_the_previous_table(wh, gated):
    pipeline = gated()
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    before = rows_of(wh, "navigate", "people_total", order="people")
    total = pipeline.steps.get(name="total").output
    Check.objects.create(dataset=total, name="enough", kind="custom_aggregate",
                         params={"sql": "min(people) >= 4"}, severity="fail")
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    step = run.step_runs.get(step_name="total")
    assert "Quality gate failed on navigate.people_total (staged rows, before publishing)" in step.error and "enough" in step.error
    assert rows_of(wh, "navigate", "people_total", order="people") == before
    assert [name for _s, name, _k in wh.relations(["navigate"]) if name.startswith("people_total__")] == []


def test_ingest_batches_are_gated_too(wh, gated):
    pipeline = gated("id,name,amount\n1,Ann,10\n2,,20\n3,Cy,5\n")
    raw = pipeline.steps.get(name="ingest").output
    Check.objects.create(dataset=raw, name="named", kind="not_null", columns=["name"], severity="drop")
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED
    ingest = run.step_runs.get(step_name="ingest")
    assert (ingest.rows_out, ingest.rows_rejected) == (2, 1)
    assert wh.row_count("explore", "people") == 2
    with wh.cursor() as cur:
        row = cur.execute('SELECT "id", "_batch_id", "_failed_checks" FROM explore."people__quarantine"').fetchone()
    assert row[0] == "2" and row[1].startswith("b") and row[2] == "named"
    assert raw.batches.get().rows_loaded == 2

