"""Check kinds as a registry: every kind is one class with validate, compile, outcome and describe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from quality import kinds
from quality.compiler import Plan, compile_plan, scan_sql
from quality.definitions import validate_check
from quality.kinds import (
    REGISTRY,
    Kind,
    RowCheck,
    TableCheck,
    Target,
    UnknownCheckKind,
    get_kind,
    register,
)
from quality.models import COLUMN_KINDS, ROW_KINDS, Check, CheckKind, Outcome

ROWS = [
    (1, "ann", 10, "AB1", datetime(2026, 1, 1)),
    (2, "bob", -5, "xx", datetime(2026, 1, 2)),
    (2, None, None, None, None),
    (3, "a very long name", 500, "CD2", datetime(2026, 1, 3)),
]
NOW = datetime(2026, 1, 3, 12, tzinfo=UTC)


def make(ds, kind: str, cols=(), **params) -> Check:
    """An unsaved check: validate and compile are called directly, as the registry's users do."""
    return Check(dataset=ds, name=f"{kind}_check", kind=kind, columns=list(cols), params=params)


# --- the registry ---------------------------------------------------------------------------------
def test_every_kind_the_model_declares_is_registered_once():
    assert set(REGISTRY) == set(CheckKind.values)
    assert all(isinstance(spec, Kind) and spec.name == name for name, spec in REGISTRY.items())


def test_the_registry_agrees_with_the_models_row_and_column_kinds():
    assert {name for name, spec in REGISTRY.items() if spec.row_level} == set(ROW_KINDS)
    assert {name for name, spec in REGISTRY.items() if spec.columns != kinds.NO_COLUMNS} == set(COLUMN_KINDS)


def test_an_unknown_kind_is_a_clear_error(table):
    with pytest.raises(UnknownCheckKind, match=r"Unknown check kind 'nope'; the kinds are: .*not_null"):
        get_kind("nope")
    assert issubclass(UnknownCheckKind, ValueError)
    with pytest.raises(ValidationError) as err:
        validate_check(make(table([]), "nope"))
    assert "Choose one of: not_null, unique" in err.value.message_dict["kind"][0]


def test_an_unknown_kind_is_reported_by_the_plan_not_raised(wh, table):
    ds = table(ROWS)
    errors: dict[Check, str] = {}
    bad = make(ds, "nope")
    bad.pk = 999  # as if stored before its kind was removed
    plan = compile_plan(wh, [bad, make(ds, "not_null", ["id"])], "chart", "items", errors=errors)
    assert len(plan.row) == 1 and "Unknown check kind 'nope'" in errors[bad]


def test_a_name_registered_twice_is_refused():
    with pytest.raises(TypeError, match="registered twice"):

        @register
        class Again(Kind):
            name = CheckKind.NOT_NULL


@pytest.fixture
def even_kind():
    """A kind added by one class and one registration (removed after the test)."""

    @register
    class Even(Kind):
        name = "even"
        row_level = True
        columns = kinds.ONE_COLUMN

        def compile(self, check, target):
            return RowCheck(check, f"({target.col(check.columns[0])} % 2 <> 0)")

        def describe(self, check):
            return f"{check.columns[0]} is even."

    yield Even
    REGISTRY.pop("even")


def test_a_new_kind_is_one_class_and_one_registration(wh, table, even_kind):
    ds = table(ROWS)
    check = make(ds, "even", ["amount"])
    plan = compile_plan(wh, [check], "chart", "items")
    with wh.cursor() as cur:
        total, odd = cur.execute(*scan_sql(wh, plan)).fetchone()
    assert (total, odd) == (4, 1)  # -5 is odd; NULL is not a failure
    assert kinds.describe(check) == "amount is even."


# --- validate -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "params", "words"),
    [
        ("accepted_values", {"values": []}, "non-empty"),
        ("accepted_values", {"values": [1, "a"]}, "all strings or all numbers"),
        ("range", {}, "min"),
        ("range", {"min": 1, "inclusive": "yes"}, "true or false"),
        ("length", {"max": 1.5}, "whole number"),
        ("row_count", {"min": 3, "max": 1}, "above"),
        ("regex", {"pattern": ""}, "Give the pattern"),
        ("regex", {"pattern": "(?=x)"}, "DuckDB"),
        ("freshness", {"max_age_hours": -1}, "maximum age"),
        ("referential", {"dataset": "items"}, "Name the referenced dataset and column"),
        ("schema", {"columns": {"id": 1}}, "expected columns"),
        ("schema", {"columns": {"id": "int"}, "allow_extra": 1}, "true or false"),
        ("custom_row", {"sql": "count(*) > 1"}, "cannot aggregate"),
        ("custom_aggregate", {"sql": "amount > 1"}, "needs an aggregate"),
    ],
)
def test_each_kind_refuses_its_bad_params(table, kind, params, words):
    errors = get_kind(kind).validate(make(table([]), kind, **params))
    assert words in errors["params"]


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("not_null", {}),
        ("unique", {}),
        ("accepted_values", {"values": ["a", "b"]}),
        ("range", {"min": "2026-01-01", "max": "2026-12-31", "inclusive": False}),
        ("regex", {"pattern": "^[A-Z]{2}\\d$"}),
        ("length", {"min": 0, "max": 3}),
        ("row_count", {"max": 10}),
        ("freshness", {"max_age_hours": 1.5}),
        ("referential", {"dataset": "items", "column": "id"}),
        ("schema", {"columns": {"id": "bigint"}, "allow_extra": True}),
        ("custom_row", {"sql": "amount >= 0"}),
        ("custom_aggregate", {"sql": "sum(amount) >= 0"}),
    ],
)
def test_each_kind_accepts_its_good_params(table, kind, params):
    assert get_kind(kind).validate(make(table([]), kind, **params)) == {}


# --- compile --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "columns", "params", "failing"),
    [
        ("not_null", ["name", "code"], {}, 1),
        ("unique", ["id"], {}, 2),
        ("unique", ["id", "name"], {}, 0),
        ("accepted_values", ["code"], {"values": ["AB1", "CD2"]}, 1),
        ("accepted_values", ["amount"], {"values": [10, 500]}, 1),
        ("range", ["amount"], {"min": 0, "max": 100}, 2),
        ("range", ["amount"], {"min": 10, "inclusive": False}, 2),
        ("regex", ["code"], {"pattern": "^[A-Z]{2}\\d$"}, 1),
        ("length", ["name"], {"max": 5}, 1),
        ("referential", ["id"], {"dataset": "parents", "column": "id"}, 2),
        ("custom_row", [], {"sql": "amount > 0 OR name = 'bob'"}, 0),
        ("custom_row", [], {"sql": "amount > 0"}, 1),
    ],
)
def test_each_row_kind_compiles_to_the_count_of_its_failing_rows(wh, table, kind, columns, params, failing):
    table([(1,), (3,)], name="parents", columns=(("id", "integer"),))
    ds = table(ROWS)
    types = {c.name: c.type for c in wh.columns("chart", "items")}
    check = make(ds, kind, columns, **params)
    compiled = get_kind(kind).compile(check, Target(wh, "chart", "items", types=types))
    assert isinstance(compiled, RowCheck)
    plan = Plan("chart", "items", [compiled], [], [])
    with wh.cursor() as cur:
        counted = cur.execute(*scan_sql(wh, plan)).fetchone()[1]
        if compiled.needs_exact(counted):
            counted = cur.execute(f"SELECT {compiled.exact}").fetchone()[0]
        sampled = cur.execute(
            f"SELECT count(*) FROM {wh.table('chart', 'items')} AS s {' '.join(compiled.joins)} WHERE {compiled.bad}",
            compiled.params,
        ).fetchone()[0]
    assert (counted, sampled) == (failing, failing)  # what is counted is what samples and drops select


@pytest.mark.parametrize(
    ("kind", "columns", "params", "value"),
    [
        ("row_count", [], {"min": 1}, 4),
        ("freshness", ["seen_at"], {"max_age_hours": 1}, datetime(2026, 1, 3)),
        ("custom_aggregate", [], {"sql": "sum(amount) > 1000"}, 0),
        ("custom_aggregate", [], {"sql": "min(amount) < 0"}, 1),
    ],
)
def test_each_table_kind_compiles_to_one_aggregate(wh, table, kind, columns, params, value):
    ds = table(ROWS)
    compiled = get_kind(kind).compile(make(ds, kind, columns, **params), Target(wh, "chart", "items"))
    assert isinstance(compiled, TableCheck)
    with wh.cursor() as cur:
        got = cur.execute(*scan_sql(wh, Plan("chart", "items", [], [compiled], []))).fetchone()[1]
    assert got == value


def test_schema_reads_the_catalogue_not_the_rows(wh, table):
    check = make(table(ROWS), "schema", columns={"id": "int"})
    assert get_kind("schema").compile(check, Target(wh, "chart", "items")) is None
    plan = compile_plan(wh, [check], "chart", "items")
    assert plan.catalog == [check] and not plan.row and not plan.table_checks


# --- outcome --------------------------------------------------------------------------------------
def test_row_count_outcome(table):
    check = make(table([]), "row_count", min=5, max=10)
    assert get_kind("row_count").outcome(check, 4, 4, NOW) == (Outcome.WARN, 4, "4 rows, outside [5, 10].")
    check.severity = "fail"
    assert get_kind("row_count").outcome(check, 11, 11, NOW)[0] == Outcome.FAIL
    assert get_kind("row_count").outcome(check, 7, 7, NOW) == (Outcome.PASS, 7, "7 rows.")


def test_freshness_outcome(table):
    check, spec = make(table([]), "freshness", ["seen_at"], max_age_hours=24), get_kind("freshness")
    outcome, observed, message = spec.outcome(check, NOW - timedelta(hours=2), 1, NOW)
    assert (outcome, observed["age_hours"], message) == (Outcome.PASS, 2.0, "The newest value is 2.0 h old.")
    assert spec.outcome(check, "2026-01-01T00:00:00Z", 1, NOW)[0] == Outcome.WARN
    assert spec.outcome(check, None, 0, NOW)[0] == Outcome.WARN
    assert spec.outcome(check, "soon", 1, NOW)[:2] == (Outcome.ERROR, "soon")


def test_custom_aggregate_outcome_null_is_not_a_violation(table):
    check, spec = make(table([]), "custom_aggregate", sql="sum(amount) > 0"), get_kind("custom_aggregate")
    assert spec.outcome(check, 0, 1, NOW) == (Outcome.WARN, False, "The condition sum(amount) > 0 is false.")
    assert spec.outcome(check, 1, 1, NOW)[:2] == (Outcome.PASS, True)
    assert spec.outcome(check, None, 1, NOW)[:2] == (Outcome.PASS, None)


def test_schema_outcome_reports_drift_by_type_family(table):
    check = make(table([]), "schema", columns={"id": "bigint", "gone": "text", "amount": "numeric"})
    outcome, drift, message = get_kind("schema").outcome(check, {"id": "INTEGER", "amount": "VARCHAR", "new": "DATE"}, 0, NOW)
    assert outcome == Outcome.WARN
    assert drift == {"added": ["new"], "removed": ["gone"], "retyped": {"amount": {"expected": "numeric", "actual": "VARCHAR"}}}
    assert message == "Schema drift: added new; removed gone; retyped amount (numeric → VARCHAR)."


def test_row_kinds_are_judged_by_their_failing_rows(table):
    with pytest.raises(TypeError, match="failing rows"):
        get_kind("not_null").outcome(make(table([]), "not_null", ["id"]), 0, 0, NOW)


# --- describe -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "columns", "params", "sentence"),
    [
        ("not_null", ["email"], {}, "email is never NULL."),
        ("not_null", ["a", "b"], {}, "a, b are never NULL."),
        ("unique", ["id"], {}, "id is unique."),
        ("unique", ["order_id", "line"], {}, "(order_id, line) is unique together."),
        ("accepted_values", ["status"], {"values": ["new", "paid"]}, "status is one of 'new', 'paid'."),
        ("range", ["amount"], {"min": 0, "max": 100}, "amount is at least 0 and at most 100."),
        ("range", ["amount"], {"min": 0, "inclusive": False}, "amount is above 0."),
        ("regex", ["code"], {"pattern": "^[A-Z]+$"}, "code matches the regex ^[A-Z]+$."),
        ("length", ["name"], {"max": 50}, "name has at most 50 characters."),
        ("row_count", [], {"min": 1}, "The row count is at least 1."),
        ("row_count", [], {"min": 1, "max": 9}, "The row count is between 1 and 9."),
        ("freshness", ["seen_at"], {"max_age_hours": 24}, "The newest seen_at is at most 24 h old."),
        ("referential", ["customer_id"], {"dataset": "customers", "column": "id"}, "customer_id refers to customers.id."),
        ("schema", [], {"columns": {"id": "bigint"}}, "The table has the columns id bigint and no others."),
        ("schema", [], {"columns": {"id": "bigint"}, "allow_extra": True}, "The table has the columns id bigint (others allowed)."),
        ("custom_row", [], {"sql": "amount >= 0"}, "Every row satisfies amount >= 0."),
        ("custom_aggregate", [], {"sql": "sum(amount) > 0"}, "The table as a whole satisfies sum(amount) > 0."),
    ],
)
def test_each_kind_describes_its_rule_in_one_sentence(kind, columns, params, sentence):
    assert get_kind(kind).describe(Check(name="c", kind=kind, columns=columns, params=params)) == sentence


def test_describe_never_breaks_a_page_on_a_broken_definition():
    assert "Unknown check kind" in kinds.describe(Check(name="c", kind="nope"))
    assert kinds.describe(Check(name="c", kind="regex", columns=[], params={})) == "A regex check (its definition is incomplete)."
