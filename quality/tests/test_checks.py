"""Every check type, passing and failing, with NULLs, empty tables and unicode, on the test's engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quality.models import CheckResult, CheckRun, Outcome
from quality.service import run_checks

T = datetime(2026, 1, 1, 12, 0, 0)
ROWS = [
    (1, "Zoë", 10, "AB1", T),
    (2, "Łukasz", 20, "AB2", T),
    (3, None, None, None, None),
    (4, "Ann", 30, "ab3", T),
]


def result(dataset, name=None) -> CheckResult:
    run = run_checks(dataset, trigger=CheckRun.Trigger.CLI)
    assert run.status != CheckRun.Status.RUNNING
    results = {r.check_name: r for r in run.results.all()}
    return results[name] if name else next(iter(results.values()))


def test_not_null_counts_nulls_and_samples_them(table, check):
    ds = table(ROWS)
    check(ds, "not_null", ["name"])
    r = result(ds)
    assert (r.outcome, r.failing_rows, r.failing_share) == (Outcome.WARN, 1, 0.25)
    assert r.sample_columns[:2] == ["id", "name"]
    assert r.sample_rows == [{"id": 3, "name": None, "amount": None, "code": None, "seen_at": None}]


def test_not_null_passes_on_complete_column(table, check):
    ds = table(ROWS)
    check(ds, "not_null", ["id"])
    r = result(ds)
    assert (r.outcome, r.failing_rows, r.sample_rows) == (Outcome.PASS, 0, [])


def test_unique_one_column_counts_every_duplicated_row_and_ignores_nulls(table, check):
    ds = table([*ROWS, (5, "Zoë", 1, None, T), (6, None, 2, None, T)])
    check(ds, "unique", ["name"])
    r = result(ds)
    assert r.failing_rows == 2  # both Zoë rows; NULL names are not duplicates


def test_unique_several_columns(table, check):
    ds = table([(1, "a", 1, "x", T), (2, "a", 1, "y", T), (3, "a", 1, "x", T), (4, "b", 1, "x", T)])
    check(ds, "unique", ["name", "code"])
    check(ds, "unique", ["id"])
    run = run_checks(ds, trigger="cli")
    got = {r.check_name: r.failing_rows for r in run.results.all()}
    assert got == {"unique_name_code": 2, "unique_id": 0}
    # one statement for both checks, one sample query; where uniqueness is first counted as surplus rows
    # (PostgreSQL's text key), the failing check pays one more query for its exact failing-row count
    assert run.queries in (2, 3)


def test_accepted_values_with_unicode_and_nulls(table, check):
    ds = table(ROWS)
    check(ds, "accepted_values", ["name"], values=["Zoë", "Łukasz"])
    r = result(ds)
    assert r.failing_rows == 1 and r.sample_rows[0]["name"] == "Ann"


def test_accepted_values_numbers(table, check):
    ds = table(ROWS)
    check(ds, "accepted_values", ["id"], values=[1, 2, 3])
    assert result(ds).failing_rows == 1


@pytest.mark.parametrize(
    ("params", "failing"),
    [
        ({"min": 10, "max": 30}, 0),
        ({"min": 10, "max": 30, "inclusive": False}, 2),
        ({"min": 15}, 1),
        ({"max": 25.5}, 1),
    ],
)
def test_range_bounds(table, check, params, failing):
    ds = table(ROWS)
    check(ds, "range", ["amount"], **params)
    assert result(ds).failing_rows == failing


def test_range_on_timestamps(table, check):
    ds = table([*ROWS, (5, "x", 1, "c", T - timedelta(days=400))])
    check(ds, "range", ["seen_at"], min="2025-06-01")
    assert result(ds).failing_rows == 1


def test_regex_is_case_sensitive_and_skips_nulls(table, check):
    ds = table(ROWS)
    check(ds, "regex", ["code"], pattern="^[A-Z]{2}[0-9]$")
    r = result(ds)
    assert r.failing_rows == 1 and r.sample_rows[0]["code"] == "ab3"


def test_regex_on_unicode(table, check):
    ds = table(ROWS)
    check(ds, "regex", ["name"], pattern="^[A-Za-z]+$")
    assert result(ds).failing_rows == 2  # Zoë and Łukasz


def test_length_counts_characters_not_bytes(table, check):
    ds = table(ROWS)
    check(ds, "length", ["name"], min=3, max=3)
    r = result(ds)
    assert r.failing_rows == 1  # Łukasz; Zoë is 3 characters (4 bytes)


@pytest.mark.parametrize(("params", "outcome"), [({"min": 1, "max": 4}, "pass"), ({"min": 5}, "warn"), ({"max": 3}, "warn")])
def test_row_count(table, check, params, outcome):
    ds = table(ROWS)
    check(ds, "row_count", **params)
    r = result(ds)
    assert (r.outcome, r.observed) == (outcome, 4)


def test_row_count_on_an_empty_table(table, check):
    ds = table([])
    check(ds, "row_count", min=1, severity="fail")
    check(ds, "not_null", ["id"], severity="fail")
    run = run_checks(ds, trigger="cli")
    got = {r.check_name: (r.outcome, r.failing_rows) for r in run.results.all()}
    assert got == {"row_count_table": ("fail", None), "not_null_id": ("pass", 0)}
    assert run.status == CheckRun.Status.FAILED


def test_freshness(table, check):
    now = datetime.now(UTC).replace(microsecond=0, tzinfo=None)  # naive values are read as UTC
    ds = table([(1, "a", 1, "x", now - timedelta(hours=2)), (2, "b", 1, "y", None)])
    check(ds, "freshness", ["seen_at"], name="fresh", max_age_hours=3)
    check(ds, "freshness", ["seen_at"], name="stale", max_age_hours=1)
    run = run_checks(ds, trigger="cli")
    got = {r.check_name: r for r in run.results.all()}
    assert got["fresh"].outcome == "pass" and got["stale"].outcome == "warn"
    assert 1.9 < got["fresh"].observed["age_hours"] < 2.1


def test_freshness_of_an_empty_table_fails(table, check):
    ds = table([])
    check(ds, "freshness", ["seen_at"], severity="fail", max_age_hours=1)
    assert result(ds).outcome == "fail"


def test_referential_integrity_is_an_anti_join_skipping_nulls(table, check):
    table([(1, "a", 1, "x", T), (2, "b", 1, "y", T), (None, "n", 1, "z", T)], name="parents")
    ds = table([(1, "a", 1, "x", T), (2, "b", 2, "y", T), (3, "c", 3, "z", T), (None, "d", 4, "w", T)])
    check(ds, "referential", ["id"], dataset="parents", column="id")
    r = result(ds)
    assert r.failing_rows == 1 and r.sample_rows[0]["id"] == 3


def test_schema_drift_reports_added_removed_and_retyped(table, check):
    ds = table(ROWS)
    check(ds, "schema", columns={"id": "bigint", "name": "varchar", "amount": "double precision", "gone": "text"})
    r = result(ds)
    assert r.outcome == "warn"
    assert r.observed["added"] == ["code", "seen_at"]
    assert r.observed["removed"] == ["gone"]
    assert set(r.observed["retyped"]) == {"amount"}


def test_schema_passes_with_equivalent_type_names(table, check):
    ds = table(ROWS)
    expected = {"id": "int4", "name": "text", "amount": "decimal", "code": "character varying", "seen_at": "timestamp"}
    check(ds, "schema", columns=expected)
    assert result(ds).outcome == "pass"


def test_custom_row_expression_null_is_not_a_violation(table, check):
    ds = table(ROWS)
    check(ds, "custom_row", sql="amount * 2 > id * 10 AND name <> 'Ann'")
    r = result(ds)
    assert r.failing_rows == 1 and r.sample_rows[0]["id"] == 4


@pytest.mark.parametrize(("sql", "outcome"), [("sum(amount) >= 60", "pass"), ("sum(amount) > 60", "warn"), ("count(*) filter (where name is null) = 0", "warn")])
def test_custom_aggregate(table, check, sql, outcome):
    ds = table(ROWS)
    check(ds, "custom_aggregate", sql=sql)
    assert result(ds).outcome == outcome


def test_custom_aggregate_unknown_on_empty_table_passes(table, check):
    ds = table([])
    check(ds, "custom_aggregate", sql="sum(amount) >= 0")
    r = result(ds)
    assert r.outcome == "pass" and r.observed is None


def test_tolerance_decides_between_pass_and_fail(table, check):
    ds = table(ROWS)
    check(ds, "not_null", ["name"], name="lenient", severity="fail", tolerance=0.25)
    check(ds, "not_null", ["code"], name="strict", severity="fail", tolerance=0.2)
    run = run_checks(ds, trigger="cli")
    got = {r.check_name: r.outcome for r in run.results.all()}
    assert got == {"lenient": "pass", "strict": "fail"}
    assert run.status == CheckRun.Status.FAILED


def test_all_row_and_table_checks_share_one_scan(table, check):
    ds = table(ROWS)
    check(ds, "not_null", ["id"])
    check(ds, "range", ["amount"], min=0)
    check(ds, "regex", ["code"], pattern="^[A-Za-z]")
    check(ds, "row_count", min=1)
    check(ds, "custom_aggregate", sql="max(amount) < 100")
    run = run_checks(ds, trigger="cli")
    assert run.queries == 1 and run.status == CheckRun.Status.PASSED
    assert {r.query_group for r in run.results.all()} == {"scan"}


def test_a_broken_table_is_an_error_not_a_crash(table, check, wh):
    ds = table(ROWS)
    check(ds, "not_null", ["id"], severity="fail")
    wh.drop_table("chart", "items")
    run = run_checks(ds, trigger="cli")
    assert run.status == CheckRun.Status.ERROR and "does not exist" in run.error
