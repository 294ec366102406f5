"""Uniqueness as dbt and Soda count it, and a drop that keeps one row per key (issue 19).

The case that broke: a duplicate-key test on 101 customers said "2 of 101 rows" where dbt says
"1 duplicated key", and a drop uniqueness check quarantined both copies of a duplicated
customer, the legitimate one included.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from django.core.exceptions import ValidationError

from quality.models import CheckRun
from quality.service import run_checks

from .conftest import rows_of

T = datetime(2026, 1, 1)


def customers(n: int = 100) -> list[tuple]:
    return [(i, f"c{i}", 1, f"K{i}", T) for i in range(1, n + 1)]


def test_a_duplicated_customer_is_one_duplicated_key_with_its_two_rows(table, check):
    ds = table([*customers(), (7, "c7 again", 1, "K7", T)])
    check(ds, "unique", ["id"], severity="fail", name="one_id")
    run = run_checks(ds, trigger="cli")
    r = run.results.get()
    assert (r.observed, r.failing_rows) == (1, 2)  # dbt: 1 failure (key 7); Soda: duplicate_count 1
    assert r.message.startswith("1 duplicated key: 2 of 101 rows")
    assert sorted(row["name"] for row in r.sample_rows) == ["c7", "c7 again"]  # the failing rows alongside


def test_several_keys_several_copies(table, check):
    rows = [*customers(10), (2, "x", 1, "", T), (2, "y", 1, "", T), (3, "z", 1, "", T), (None, "n", 1, "", T),
            (None, "m", 1, "", T)]
    ds = table(rows)
    check(ds, "unique", ["id"], name="one_id")
    r = run_checks(ds, trigger="cli").results.get()
    assert (r.observed, r.failing_rows) == (2, 5)  # keys 2 (three copies) and 3 (two); NULLs never duplicate


def test_a_drop_keeps_the_first_loaded_row_of_each_key(wh, table, check):
    ds = table([(1, "first", 1, "A", T), (2, "solo", 1, "B", T), (1, "second", 1, "C", T), (1, "third", 1, "D", T),
                (None, "null a", 1, "E", T), (None, "null b", 1, "F", T)])
    check(ds, "unique", ["id"], severity="drop", name="one_id")
    run = run_checks(ds, trigger="step", apply_drops=True)
    assert run.status == CheckRun.Status.WARNED and run.rows_quarantined == 2
    assert sorted(r[1] for r in rows_of(wh, "chart", "items")) == ["first", "null a", "null b", "solo"]
    r = run.results.get()
    assert (r.observed, r.failing_rows, r.rows_quarantined) == (1, 3, 2)


def test_a_drop_keeps_the_row_its_order_by_puts_first(wh, table, check):
    ds = table([(1, "old", 1, "A", datetime(2026, 1, 1)), (1, "new", 1, "B", datetime(2026, 3, 1)),
                (1, "undated", 1, "C", None), (2, "b", 1, "D", T)])
    check(ds, "unique", ["id"], severity="drop", name="latest", order_by="seen_at desc")
    run = run_checks(ds, trigger="step", apply_drops=True)
    # NULLs sort first descending, as on PostgreSQL (said explicitly, so DuckDB sorts them alike)
    assert sorted(r[1] for r in rows_of(wh, "chart", "items")) == ["b", "undated"]
    assert run.rows_quarantined == 2
    ds2 = table([(1, "old", 1, "A", datetime(2026, 1, 1)), (1, "new", 1, "B", datetime(2026, 3, 1)),
                 (1, "undated", 1, "C", None)], name="items2")
    check(ds2, "unique", ["id"], severity="drop", name="latest2", order_by=["seen_at desc nulls last", "name"])
    run_checks(ds2, trigger="step", apply_drops=True)
    assert [r[1] for r in rows_of(wh, "chart", "items2")] == ["new"]


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        ("seen_at; drop table x", "Cannot read the order term"),
        ("lower(name)", "Cannot read the order term"),
        ("nope desc", "names no column of the dataset: nope"),
        (["seen_at", 3], "Cannot read the order term"),
    ],
)
def test_a_bad_order_by_is_refused_when_saved(table, check, order_by, message):
    ds = table(customers(2))
    c = check(ds, "unique", ["id"], severity="drop")
    c.params = {"order_by": order_by}
    with pytest.raises(ValidationError, match=message):
        c.full_clean()

