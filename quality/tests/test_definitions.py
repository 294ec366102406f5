"""Bad definitions are refused on save with a clear error; nothing is stored."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from quality.models import Check


@pytest.mark.parametrize(
    ("kind", "cols", "params", "field", "words"),
    [
        ("regex", ["code"], {"pattern": "([a-z"}, "params", "does not compile"),
        ("regex", ["code"], {"pattern": r"(a)\1"}, "params", "DuckDB"),
        ("regex", ["code"], {"pattern": "(?<=a)b"}, "params", "DuckDB"),
        ("range", ["amount"], {"min": 5, "max": 1}, "params", "above"),
        ("range", ["amount"], {}, "params", "min"),
        ("range", ["amount"], {"min": "soon"}, "params", "number"),
        ("length", ["name"], {"min": -1}, "params", "whole number"),
        ("row_count", [], {"min": 10, "max": 2}, "params", "above"),
        ("accepted_values", ["code"], {"values": []}, "params", "non-empty"),
        ("accepted_values", ["code"], {"values": ["a", 1]}, "params", "all strings"),
        ("accepted_values", ["code"], {"values": ["a"], "count": "keys"}, "params", "distinct failing values"),
        ("custom_row", [], {"sql": "amount"}, "params", "boolean"),
        ("custom_row", [], {"sql": "amount > 0; DROP TABLE x"}, "params", "one expression"),
        ("custom_row", [], {"sql": "id IN (SELECT id FROM chart.items)"}, "params", "Subqueries"),
        ("custom_row", [], {"sql": "pg_sleep(1) IS NULL"}, "params", "not allowed"),
        ("custom_row", [], {"sql": "sum(amount) > 0"}, "params", "cannot aggregate"),
        ("custom_row", [], {"sql": "amount > ("}, "params", "does not parse"),
        ("custom_aggregate", [], {"sql": "amount > 0"}, "params", "needs an aggregate"),
        ("custom_aggregate", [], {"sql": "sum(amount) > amount"}, "params", "inside an aggregate"),
        ("custom_aggregate", [], {"sql": "count(*) over () > 1"}, "params", "Window"),
        ("freshness", ["seen_at"], {"max_age_hours": 0}, "params", "maximum age"),
        ("referential", ["id"], {"dataset": "nope", "column": "id"}, "params", "Unknown dataset"),
        ("referential", ["id"], {"dataset": "items", "column": "nope"}, "params", "no column"),
        ("schema", [], {"columns": []}, "params", "expected columns"),
        ("not_null", [], {}, "columns", "at least one column"),
        ("not_null", ["missing"], {}, "columns", "no column"),
        ("not_null", ["id"], {"extra": 1}, "params", "Unknown parameter"),
        ("row_count", ["id"], {"min": 1}, "columns", "does not take columns"),
    ],
)
def test_bad_definition_is_refused_on_save(table, kind, cols, params, field, words):
    ds = table([])
    with pytest.raises(ValidationError) as err:
        Check.objects.create(dataset=ds, name="bad", kind=kind, columns=cols, params=params)
    assert words in " ".join(err.value.message_dict[field])
    assert not Check.objects.exists()


def test_drop_is_only_for_row_checks(table):
    ds = table([])
    with pytest.raises(ValidationError) as err:
        Check.objects.create(dataset=ds, name="n", kind="row_count", params={"min": 1}, severity="drop")
    assert "Only row checks can drop rows" in err.value.message_dict["severity"][0]


def test_tolerance_must_be_a_share(table):
    ds = table([])
    with pytest.raises(ValidationError) as err:
        Check.objects.create(dataset=ds, name="n", kind="not_null", columns=["id"], tolerance=5)
    assert "between 0 and 1" in err.value.message_dict["tolerance"][0]


def test_check_names_cannot_hold_commas(table):
    ds = table([])
    with pytest.raises(ValidationError):
        Check.objects.create(dataset=ds, name="a,b", kind="not_null", columns=["id"])


def test_good_definitions_are_stored(table):
    ds = table([])
    Check.objects.create(dataset=ds, name="r", kind="regex", columns=["code"], params={"pattern": "^[A-Z]{2}\\d$"})
    Check.objects.create(dataset=ds, name="c", kind="custom_row", params={"sql": "amount >= 0 OR name ILIKE 'x%'"})
    Check.objects.create(dataset=ds, name="a", kind="custom_aggregate", params={"sql": "count(*) FILTER (WHERE amount < 0) = 0"})
    assert Check.objects.count() == 3


def test_a_reference_into_a_layer_the_check_may_not_read_is_refused_on_save(table):
    """A Navigate check runs as the Navigate reader (issue 12): raw Explore is not readable, so refused."""
    raw = table([], name="raw_items", layer="explore")
    totals = table([], name="item_totals", layer="navigate")
    with pytest.raises(ValidationError) as err:
        Check.objects.create(
            dataset=totals, name="ref", kind="referential", columns=["id"],
            params={"dataset": raw.name, "column": "id"},
        )
    message = " ".join(err.value.message_dict["params"])
    assert "A check on a navigate dataset may read chart and navigate datasets only; raw_items is in explore" in message
    assert not Check.objects.exists()
    chart = table([], name="items", layer="chart")
    Check.objects.create(  # a Chart dataset may be read from Navigate
        dataset=totals, name="ref", kind="referential", columns=["id"], params={"dataset": chart.name, "column": "id"}
    )
