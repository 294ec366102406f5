"""Append and merge gates check the new rows, and answer table checks for the table after publish, exactly.

Every comparison runs the incremental gate on a staged table next to a published one, then a
full evaluation over the table after publish built by hand, and compares each check's outcome,
observed value and failing rows (:func:`compare`).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from atlas.warehouse.base import WriteMode
from pipelines.models import RunStatus
from pipelines.tests.conftest import run_now
from quality.incremental import SCOPES, Increment
from quality.models import Check, CheckKind, CheckResult, CheckRun, Covers
from quality.service import run_checks

from .conftest import create_table, rows_of

GATE = "quality.hooks.QualityGate"
NOW = timezone.now().replace(tzinfo=None, microsecond=0)
OLD = NOW - timedelta(days=30)


def row(i, name="n", amount=10, code="AB1", seen=OLD):
    return (i, name, amount, code, seen)


PUBLISHED = [row(i) for i in range(1, 6)]  # ids 1..5, clean for every check below


def comparable(result: CheckResult):
    observed = result.observed
    if result.kind == CheckKind.FRESHNESS and isinstance(observed, dict):
        observed = observed["newest"]  # the age moves with the clock between the two evaluations
    return result.outcome, observed, result.failing_rows


def compare(wh, table, check, published, staged, specs, *, mode=WriteMode.APPEND, keys=(), base=None):
    """Run the incremental gate and a full evaluation of the table after publish; return both by check name."""
    table([(i,) for i in range(1, 8)], name="refs", columns=(("id", "integer"),))
    ds = table(published)
    create_table(wh, "chart", "items__stg", staged)
    for kind, cols, params in specs:
        check(ds, kind, cols, severity=params.pop("severity", "fail"), name=params.pop("name", None), **params)
    inc = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg", apply_drops=False,
                     increment=Increment(mode=mode, target="items", published=published is not None, keys=keys,
                                         base=base, batch_id="b1"))
    if mode is WriteMode.MERGE:
        new = {tuple(r[:len(keys)]) for r in staged}
        after = [r for r in published if tuple(r[:len(keys)]) not in new] + list(staged)
    else:
        after = list(published) + list(staged)
    create_table(wh, "chart", "items__after", after)
    full = run_checks(ds, trigger=CheckRun.Trigger.MANUAL, schema="chart", table="items__after", apply_drops=False)
    got = {r.check_name: r for r in inc.results.all()}
    want = {r.check_name: r for r in full.results.all()}
    assert set(got) == set(want) and got
    for name in want:
        assert comparable(got[name]) == comparable(want[name]), name
    return inc, got


EVERY_KIND = [
    ("not_null", ["name"], {}),
    ("unique", ["id"], {}),
    ("unique", ["id", "code"], {"name": "unique_pair"}),
    ("accepted_values", ["code"], {"values": ["AB1", "CD2"]}),
    ("range", ["amount"], {"min": 0, "max": 100}),
    ("regex", ["code"], {"pattern": "^[A-Z]{2}[0-9]$"}),
    ("length", ["name"], {"max": 5}),
    ("referential", ["id"], {"dataset": "refs", "column": "id"}),
    ("custom_row", [], {"sql": "amount >= 0"}),
    ("row_count", [], {"min": 1, "max": 100}),
    ("freshness", ["seen_at"], {"max_age_hours": 24 * 7}),
    ("custom_aggregate", [], {"sql": "sum(amount) <= 1000"}),
    ("schema", [], {"columns": {"id": "integer", "name": "text", "amount": "numeric", "code": "text",
                                "seen_at": "timestamp"}}),
]


def every_kind():
    return [(k, list(c), dict(p)) for k, c, p in EVERY_KIND]


def test_every_kind_has_a_scope():
    assert set(SCOPES) == set(CheckKind.values)


def test_a_key_split_across_two_appends_fails_the_gate(wh, settings, simple_pipeline, make_csv):
    settings.ATLAS_STEP_HOOKS = [GATE]
    pipeline = simple_pipeline("id,name,amount\n1,Ann,10\n2,Bob,20\n3,Cy,5\n")
    raw = pipeline.steps.get(name="ingest").output
    Check.objects.create(dataset=raw, name="one_id", kind="unique", columns=["id"], severity="fail")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    make_csv("id,name,amount\n3,Dee,1\n4,Eve,2\n")  # id 3 is published already; unique among the new rows
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    assert "one_id" in run.step_runs.get(step_name="ingest").error
    assert sorted(r[0] for r in rows_of(wh, "explore", "people", order="id")) == ["1", "2", "3"]
    result = CheckResult.objects.filter(check_name="one_id").latest("id")
    assert (result.outcome, result.observed, result.failing_rows) == ("fail", 1, 2)
    assert result.covers == Covers.TABLE_AFTER_PUBLISH and result.covers_shown == "whole table after publish"


def test_every_kind_passing_on_an_append(wh, table, check):
    inc, got = compare(wh, table, check, PUBLISHED, [row(6), row(7, seen=NOW)], every_kind())
    assert {r.outcome for r in got.values()} == {"pass"}
    assert got["not_null_name"].covers == Covers.NEW_ROWS
    assert got["not_null_name"].covers_shown == "new rows of batch b1"
    assert got["row_count_table"].covers == Covers.TABLE_AFTER_PUBLISH
    assert (got["row_count_table"].observed, inc.rows_checked) == (7, 2)
    assert inc.table_after["rows"] == 7


def test_duplicates_only_against_published_rows(wh, table, check):
    staged = [row(3, code="CD2"), row(6), row(1)]  # 3 and 1 are published; unique among the new rows
    inc, got = compare(wh, table, check, PUBLISHED, staged, every_kind())
    assert (got["unique_id"].outcome, got["unique_id"].observed, got["unique_id"].failing_rows) == ("fail", 2, 4)
    assert got["unique_pair"].failing_rows == 2  # (1, AB1) only; (3, CD2) is new
    assert inc.status == CheckRun.Status.FAILED


def test_a_referential_failure_in_the_new_rows(wh, table, check):
    inc, got = compare(wh, table, check, PUBLISHED, [row(6), row(9), row(12)], every_kind())
    assert (got["referential_id"].outcome, got["referential_id"].failing_rows) == ("fail", 2)
    assert got["referential_id"].covers == Covers.NEW_ROWS


def test_failing_new_rows_of_every_row_kind(wh, table, check):
    staged = [row(6, name=None, amount=-1, code="zz"), row(7, name="longname", code="CD2")]
    _inc, got = compare(wh, table, check, PUBLISHED, staged, every_kind())
    assert {n: got[n].failing_rows for n in ("not_null_name", "accepted_values_code", "range_amount", "regex_code",
                                             "length_name", "custom_row_table")} == {
        "not_null_name": 1, "accepted_values_code": 1, "range_amount": 1, "regex_code": 1, "length_name": 1,
        "custom_row_table": 1}


@pytest.mark.parametrize(("params", "staged", "outcome"), [
    ({"max": 6}, [row(6)], "pass"),
    ({"max": 6}, [row(6), row(7)], "fail"),  # crosses the maximum only with the published rows
    ({"min": 8}, [row(6), row(7)], "fail"),
    ({"min": 7}, [row(6), row(7)], "pass"),  # two new rows alone are below the minimum
])
def test_row_count_crossing_its_thresholds(wh, table, check, params, staged, outcome):
    _inc, got = compare(wh, table, check, PUBLISHED, staged, [("row_count", [], params)])
    assert got["row_count_table"].outcome == outcome


@pytest.mark.parametrize(("sql", "outcome"), [
    ("sum(amount) <= 60", "fail"),  # 50 published + 20 new: fails only over the union
    ("count(*) >= 7", "pass"),  # holds only over the union
    ("max(amount) - min(amount) < 5", "fail"),
])
def test_custom_aggregate_over_the_union(wh, table, check, sql, outcome):
    staged = [row(6, amount=15), row(7, amount=5)]
    _inc, got = compare(wh, table, check, PUBLISHED, staged, [("custom_aggregate", [], {"sql": sql})])
    assert got["custom_aggregate_table"].outcome == outcome


@pytest.mark.parametrize(("published", "staged", "outcome"), [
    (PUBLISHED, [row(6, seen=NOW)], "pass"),  # fresh from the new rows
    ([row(i, seen=NOW) for i in range(1, 4)], [row(6)], "pass"),  # fresh from the published ones
    (PUBLISHED, [row(6)], "fail"),
])
def test_freshness_over_the_table_after_publish(wh, table, check, published, staged, outcome):
    _inc, got = compare(wh, table, check, published, staged, [("freshness", ["seen_at"], {"max_age_hours": 24})])
    assert got["freshness_seen_at"].outcome == outcome


def test_published_duplicates_are_counted_when_no_gate_kept_them(wh, table, check):
    published = [*PUBLISHED, row(2), row(4), row(4)]  # a warn check let them in
    _inc, got = compare(wh, table, check, published, [row(4), row(6), row(6)], [("unique", ["id"], {})])
    assert (got["unique_id"].observed, got["unique_id"].failing_rows) == (3, 8)  # 2 twice, 4 four times, 6 twice


def test_the_kept_summary_is_used_and_stays_exact(wh, table, check):
    published = [*PUBLISHED, row(2, seen=NOW)]  # a duplicate the first gate counts exactly, and keeps
    specs = [("unique", ["id"], {"severity": "warn"}), ("row_count", [], {"max": 50}),
             ("freshness", ["seen_at"], {"max_age_hours": 24})]
    first, _ = compare(wh, table, check, published, [row(6)], specs)
    kept = first.table_after
    assert kept["rows"] == 7 and next(iter(kept["unique"].values()))["failing"] == 2
    assert kept["newest"]["seen_at"][0] == "datetime"
    # the next append, onto the table after the first: told what the first gate kept, it counts no published row
    ds = first.dataset
    create_table(wh, "chart", "items", [*published, row(6)])
    create_table(wh, "chart", "items__stg", [row(6), row(7)])
    create_table(wh, "chart", "items__after", [*published, row(6), row(6), row(7)])
    counted = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg", apply_drops=False,
                         increment=Increment(WriteMode.APPEND, "items", True, base={}))
    told = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg", apply_drops=False,
                      increment=Increment(WriteMode.APPEND, "items", True, base=kept))
    full = run_checks(ds, trigger=CheckRun.Trigger.MANUAL, schema="chart", table="items__after", apply_drops=False)
    want = {r.check_name: comparable(r) for r in full.results.all()}
    assert want["unique_id"] == ("warn", 2, 4)  # 2 and 6, twice each
    assert want["freshness_seen_at"][0] == "pass"  # fresh from the published row only
    assert {r.check_name: comparable(r) for r in told.results.all()} == want
    assert {r.check_name: comparable(r) for r in counted.results.all()} == want
    assert told.queries < counted.queries
    assert told.table_after["rows"] == 9


def test_merge_replaces_rows_by_key(wh, table, check):
    staged = [row(3, amount=99, code="CD2"), row(6, seen=NOW)]  # 3 replaces the published 3
    inc, got = compare(wh, table, check, PUBLISHED, staged, every_kind(), mode=WriteMode.MERGE, keys=("id",))
    assert {n: r.outcome for n, r in got.items() if r.outcome != "pass"} == {}
    assert got["row_count_table"].observed == 6 and inc.table_after["rows"] == 6


def test_merge_with_other_unique_columns_counts_the_table_after(wh, table, check):
    published = [row(1, code="AB1"), row(2, code="CD2"), row(3, code="EF3")]
    staged = [row(2, code="AB1"), row(4, code="EF3"), row(5, code="CD2")]  # CD2 leaves with row 2
    _inc, got = compare(wh, table, check, published, staged, [("unique", ["code"], {}), ("row_count", [], {"max": 4})],
                        mode=WriteMode.MERGE, keys=("id",))
    assert (got["unique_code"].failing_rows, got["row_count_table"].outcome) == (4, "fail")


def test_first_load_with_nothing_published(wh, table, check):
    ds = table(PUBLISHED)
    with wh.cursor() as cur:
        cur.execute(f"DROP TABLE {wh.table('chart', 'items')}")
    create_table(wh, "chart", "items__stg", [row(1), row(1), row(2)])
    check(ds, "unique", ["id"], severity="fail")
    check(ds, "row_count", [], min=3)
    inc = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg", apply_drops=False,
                     increment=Increment(WriteMode.APPEND, "items", published=False))
    got = {r.check_name: (r.outcome, r.failing_rows, r.observed) for r in inc.results.all()}
    assert got == {"unique_id": ("fail", 2, 1), "row_count_table": ("pass", None, 3)}


def test_drop_moves_only_new_rows_and_keeps_the_summary_exact(wh, table, check):
    ds = table(PUBLISHED)
    create_table(wh, "chart", "items__stg", [row(3), row(6), row(6), row(7, name=None)])
    check(ds, "unique", ["id"], severity="drop")
    check(ds, "not_null", ["name"], severity="drop")
    inc = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg",
                     increment=Increment(WriteMode.APPEND, "items", published=True))
    assert inc.status == CheckRun.Status.WARNED and inc.rows_quarantined == 3
    assert [r[0] for r in rows_of(wh, "chart", "items__stg")] == [6]
    assert len(rows_of(wh, "chart", "items")) == 5  # the published rows are never moved
    unique = next(iter(inc.table_after["unique"].values()))
    assert (inc.table_after["rows"], unique["failing"], unique["keys"]) == (6, 0, 0)


def test_ingest_batches_of_one_step_see_each_other(wh, settings, ingest_pipeline, tmp_path):
    settings.ATLAS_STEP_HOOKS = [GATE]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("id,name\n1,Ann\n2,Bob\n")
    (folder / "b.csv").write_text("id,name\n2,Cy\n3,Dee\n")
    pipeline = ingest_pipeline(location=str(folder), table="people2")
    raw = pipeline.steps.get().output
    Check.objects.create(dataset=raw, name="one_id", kind="unique", columns=["id"], severity="fail")
    Check.objects.create(dataset=raw, name="few", kind="row_count", params={"max": 4}, severity="fail")
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED  # 2 is in both files of the one append
    assert not wh.table_exists("explore", "people2") or wh.row_count("explore", "people2") == 0


def test_replace_steps_keep_the_full_evaluation(wh, settings, simple_pipeline):
    settings.ATLAS_STEP_HOOKS = [GATE]
    pipeline = simple_pipeline()
    people = pipeline.steps.get(name="refine").output
    Check.objects.create(dataset=people, name="few", kind="row_count", params={"max": 5})
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert run_now(pipeline, force=True).status == RunStatus.SUCCEEDED
    result = CheckResult.objects.filter(check_name="few").latest("id")
    assert (result.observed, result.covers) == (3, Covers.TABLE)
    # the staged table is the whole table after publish: what it holds is kept for a merge gate after it (i20h)
    people.refresh_from_db()
    assert result.check_run.table_after == {"data_version": people.data_version, "rows": 3, "unique": {}}


def test_the_api_and_the_admin_say_what_a_result_covers(wh, table, check, admin_client):
    inc, got = compare(wh, table, check, PUBLISHED, [row(6)], [("not_null", ["name"], {}), ("row_count", [], {"min": 1})])
    page = admin_client.get(f"/admin/quality/checkrun/{inc.pk}/change/").content.decode()
    assert "new rows of batch b1" in page and "whole table after publish" in page
    shown = {}
    for name, result in got.items():
        body = admin_client.get(f"/api/v1/check-results/{result.pk}/").json()
        shown[name] = (body["covers"], body["covers_shown"])
    assert shown == {"not_null_name": ("new_rows", "new rows of batch b1"),
                     "row_count_table": ("after_publish", "whole table after publish")}



def test_a_gate_uses_what_the_last_publishing_gate_kept(wh, settings, simple_pipeline, make_csv):
    from pipelines.models import Dataset
    from quality.incremental import kept_summary

    settings.ATLAS_STEP_HOOKS = [GATE]
    pipeline = simple_pipeline("id,name,amount\n1,Ann,10\n2,Bob,20\n3,Cy,5\n")
    raw = pipeline.steps.get(name="ingest").output
    Check.objects.create(dataset=raw, name="one_id", kind="unique", columns=["id"], severity="fail")
    Check.objects.create(dataset=raw, name="few", kind="row_count", params={"max": 5}, severity="fail")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    kept = kept_summary(raw)
    assert kept is not None and kept["rows"] == 3
    make_csv("id,name,amount\n4,Dee,1\n5,Eve,2\n")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    second = CheckRun.objects.filter(dataset=raw).latest("id")
    assert second.table_after["rows"] == 5 and second.results.get(check_name="few").observed == 5
    assert kept_summary(raw) == second.table_after
    Dataset.objects.filter(pk=raw.pk).update(data_version=7)  # retention or an erasure changed the table
    assert kept_summary(raw) is None
    make_csv("id,name,amount\n6,Fay,1\n")
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED  # counted exactly again: 6 rows, above the maximum
    assert "few" in run.step_runs.get(step_name="ingest").error


def test_a_replace_gate_keeps_what_the_table_holds_after_its_drops(wh, table, check):
    """A refine replacing its output stages the whole table: its gate keeps the rows and passing unique checks
    (i20h), so the merge gate after it counts no published row, and answers as a full evaluation does."""
    ds = table(PUBLISHED)
    create_table(wh, "chart", "items__stg", [row(1), row(2), row(2, name="m"), row(4, name=None)])
    ids = check(ds, "unique", ["id"], severity="warn")  # fails: 2 twice
    pair = check(ds, "unique", ["id", "name"], severity="fail", name="unique_pair")  # passes
    check(ds, "not_null", ["name"], severity="drop")  # moves row 4
    check(ds, "row_count", [], max=50)
    gate = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg", whole_table=True)
    assert gate.rows_quarantined == 1
    ds.refresh_from_db()
    assert gate.table_after == {"data_version": ds.data_version, "rows": 3,
                                "unique": {str(pair.pk): {"columns": ["id", "name"], "failing": 0, "keys": 0}}}
    assert str(ids.pk) not in gate.table_after["unique"]  # failing: the next gate counts it
    # published as the table; then a merge of keys 2 and 5, told what the replace kept, or counting
    create_table(wh, "chart", "items", [row(1), row(2), row(2, name="m")])
    create_table(wh, "chart", "items__stg", [row(2, name="z"), row(5)])
    create_table(wh, "chart", "items__after", [row(1), row(2, name="z"), row(5)])
    merge = {"mode": WriteMode.MERGE, "target": "items", "published": True, "keys": ("id",)}
    told = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg", apply_drops=False,
                      increment=Increment(**merge, base=gate.table_after))
    counted = run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg", apply_drops=False,
                         increment=Increment(**merge, base={}))
    full = run_checks(ds, trigger=CheckRun.Trigger.MANUAL, schema="chart", table="items__after", apply_drops=False)
    want = {r.check_name: comparable(r) for r in full.results.all()}
    assert want["row_count_table"] == ("pass", 3, None) and want["unique_id"][0] == "pass"
    assert {r.check_name: comparable(r) for r in told.results.all()} == want
    assert {r.check_name: comparable(r) for r in counted.results.all()} == want
    assert told.queries < counted.queries


def test_a_gate_that_is_not_the_whole_table_keeps_nothing(wh, table, check):
    ds = table(PUBLISHED)
    create_table(wh, "chart", "items__stg", [row(1)])
    check(ds, "row_count", [], max=50)
    assert run_checks(ds, trigger=CheckRun.Trigger.STEP, schema="chart", table="items__stg").table_after is None


def test_referential_samples_are_the_rows_the_anti_join_flags(wh, table, check):
    """The sample of a referential check reads its failing rows by NOT EXISTS (an index probe, i20h): the same
    rows as the LEFT JOIN of a DISTINCT the scan and the quarantine use, NULLs and duplicated references too."""
    from quality.compiler import ALIAS, compile_plan, sample_sql

    table([(i,) for i in (1, 2, 2, 3)], name="refs", columns=(("id", "integer"),))
    ds = table([row(1), row(2), row(2, name="m"), row(8), row(9), row(9, name="m"), row(None)])
    types = {c: t for c, t in (("id", "integer"), ("name", "text"), ("amount", "numeric"), ("code", "text"),
                               ("seen_at", "timestamp"))}
    rc = compile_plan(wh, [check(ds, "referential", ["id"], dataset="refs", column="id")], "chart", "items",
                      types=types).row[0]
    with wh.cursor() as cur:
        flagged = sorted(cur.execute(f"SELECT {ALIAS}.id, {ALIAS}.name FROM {wh.table('chart', 'items')} AS {ALIAS}"
                                     f" {' '.join(rc.joins)} WHERE {rc.bad}").fetchall())
        sql, params = sample_sql(wh, compile_plan(wh, [rc.check], "chart", "items", types=types), rc, 50)
        sampled = sorted((r[0], r[1]) for r in cur.execute(sql, params or None).fetchall())
    assert flagged == sampled == [(8, "n"), (9, "m"), (9, "n")]
    assert "NOT EXISTS" in sql and "DISTINCT" not in sql
