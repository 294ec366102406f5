"""Custom check conditions mean what they mean on PostgreSQL, on either engine (issue 13, item 4).

A check's condition is operator SQL like a step's SELECT: transpiled with the table's column
types (``atlas.sql.transpile``), and refused when it is saved if it cannot mean the same.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from quality.models import Check
from quality.service import run_checks

CENTS = (("id", "integer"), ("cents", "integer"), ("price", "double precision"))
ROWS = [(1, 1250, 12.5), (2, 1299, 12.99), (3, -750, -7.5)]


def test_integer_division_in_a_row_condition_truncates_on_every_engine(table, check):
    ds = table(ROWS, name="prices", columns=CENTS)
    # PostgreSQL: 1250/100 = 12, 1299/100 = 12, -750/100 = -7 (toward zero); DuckDB alone would say 12.5.
    check(ds, "custom_row", [], name="whole_units", sql="cents / 100 IN (12, -7)")
    result = run_checks(ds, trigger="cli").results.get(check_name="whole_units")
    assert (result.outcome, result.failing_rows) == ("pass", 0), result.message


def test_integer_division_in_an_aggregate_condition_truncates_on_every_engine(table, check):
    ds = table(ROWS, name="prices", columns=CENTS)
    check(ds, "custom_aggregate", [], name="sum_whole", sql="sum(cents) / 100 = 17")  # 1799 / 100
    result = run_checks(ds, trigger="cli").results.get(check_name="sum_whole")
    assert result.outcome == "pass", result.message


def test_a_condition_that_cannot_mean_the_same_on_every_engine_is_refused_when_saved(table):
    ds = table(ROWS, name="prices", columns=CENTS)
    with pytest.raises(ValidationError) as err:
        Check.objects.create(dataset=ds, name="r", kind="custom_row", params={"sql": "round(price, 1) > 0"})
    assert "round" in " ".join(err.value.message_dict["params"]).lower()
    assert not Check.objects.exists()
    Check.objects.create(dataset=ds, name="ok", kind="custom_row", params={"sql": "round(price) > -10"})
