"""Affected groups (atlas.sql.groups): which grouped SELECTs are accepted, and the reason for each refused one.

Exactness against a full recomputation is tested on both engines in pipelines/tests/test_incremental_groups.py
and demo/tests/test_demo_incremental.py; here, the shapes.
"""

from __future__ import annotations

import pytest

from atlas.sql.groups import Change, Grouped
from atlas.sql.incremental import NotIncremental

CHANGED = {("chart", "orders"): Change(old=("chart", "orders__r1a1_cho"), new=("chart", "orders__r1a1_chn")),
           ("chart", "items"): Change(old=("chart", "items__r1a1_cho"), new=("chart", "items__r1a1_chn"))}
BASE = ("SELECT o.day, o.currency, count(DISTINCT o.order_id) AS n, sum(i.amount) AS revenue"
        " FROM chart.orders AS o JOIN chart.items AS i ON i.order_id = o.order_id"
        " WHERE o.status <> 'void' GROUP BY o.day, o.currency")


def grouped(sql: str, keys=("day", "currency")) -> Grouped:
    return Grouped(sql, keys=list(keys), changed=CHANGED)


@pytest.mark.parametrize("sql", [
    BASE,
    BASE.replace("GROUP BY o.day, o.currency", "GROUP BY 1, 2"),
    BASE.replace("GROUP BY o.day, o.currency", "GROUP BY o.day, o.currency HAVING count(*) > 1"),
    BASE.replace("JOIN chart.items", "LEFT JOIN chart.items"),
    BASE.replace("chart.items AS i", "(SELECT order_id, sum(amount) AS amount FROM chart.items GROUP BY order_id) AS i"),
    "WITH t AS (SELECT order_id, amount FROM chart.items WHERE amount > 0) " + BASE.replace("chart.items AS i", "t AS i"),
    BASE.replace("chart.items AS i", "chart.fx AS i"),  # an unchanged table joined
])
def test_accepted_shapes(sql):
    g = grouped(sql)
    assert "DISTINCT" in g.affected_sql()
    assert "atlas_g" in g.recompute_sql(("navigate", "groups"), nulls=False)
    assert "IS NOT DISTINCT FROM" in g.recompute_sql(("navigate", "groups"), nulls=True)


@pytest.mark.parametrize(("sql", "keys", "reason"), [
    ("SELECT o.day, sum(o.amount) AS s FROM chart.orders AS o", ("day",), "the SELECT has no GROUP BY"),
    (BASE.replace("count(DISTINCT o.order_id) AS n", "rank() OVER (ORDER BY o.day) AS n"), None,
     "a window function over inputs changed by merge"),
    (BASE + " LIMIT 5", None, "LIMIT or OFFSET over groups"),
    (BASE.replace("JOIN chart.items", "RIGHT JOIN chart.items"), None,
     "a RIGHT JOIN over inputs changed by merge (INNER and LEFT joins only)"),
    (BASE.replace("ON i.order_id = o.order_id", "ON i.order_id > o.order_id"), None,
     "i is joined without an equality to a column of a table before it"),
    (BASE.replace("o.currency, count", "i.sku AS currency, count").replace("GROUP BY o.day, o.currency",
                                                                           "GROUP BY o.day, i.sku"), None,
     "the group key currency is not computed from o's columns alone (the table in the FROM)"),
    (BASE.replace("WHERE o.status <> 'void'", "WHERE o.amount > (SELECT avg(amount) FROM chart.orders)"), None,
     "a subquery in WHERE reads rows of other groups"),
    (BASE, ("day",), "the merge keys (day) are not the GROUP BY's columns (day, currency)"),
    (BASE.replace("chart.items AS i",
                  "(SELECT order_id, row_number() OVER () AS amount FROM chart.items) AS i"), None,
     "a window function over inputs changed by merge"),
    (BASE.replace("chart.items AS i", "(SELECT sum(amount) AS order_id FROM chart.items) AS i"), None,
     "i.order_id is not a plain column of chart.items"),
    ("SELECT o.day, o.currency, count(*) AS n FROM chart.orders AS o GROUP BY o.day, o.currency"
     " UNION ALL SELECT o.day, o.currency, 1 FROM chart.orders AS o", None, "the query is a UNION, not one SELECT"),
    (BASE.replace("FROM chart.orders AS o", "FROM (SELECT * FROM chart.orders) AS o"), None,
     "the FROM is not an input table (the groups are taken from its rows)"),
])
def test_refused_shapes_say_why(sql, keys, reason):
    with pytest.raises(NotIncremental) as exc:
        grouped(sql, keys or ("day", "currency"))
    assert str(exc.value) == reason


def test_the_affected_groups_follow_a_changed_join_back_to_the_from_table():
    sql = grouped(BASE).affected_sql()
    # the FROM table's old and new rows give their groups directly; the items' changes are joined to orders as
    # they are now together with the rows their merge replaced
    assert "FROM chart.orders__r1a1_cho AS o" in sql and "FROM chart.orders__r1a1_chn AS o" in sql
    assert "FROM chart.items__r1a1_cho" in sql and "FROM chart.items__r1a1_chn" in sql
    assert "WHERE" not in sql  # filters are left out: a superset of the groups, never fewer


def test_a_derived_table_is_restricted_to_what_the_affected_groups_reach():
    sql = grouped(BASE.replace(
        "chart.items AS i", "(SELECT order_id, sum(amount) AS amount FROM chart.items GROUP BY order_id) AS i",
    )).recompute_sql(("navigate", "groups"), nulls=False)
    assert "FROM chart.items WHERE order_id IN (SELECT o.order_id FROM chart.orders AS o WHERE EXISTS" in sql


def test_the_lookups_are_both_sides_of_every_link_and_the_plain_group_columns():
    assert grouped(BASE).lookups() == [(("chart", "orders"), ("day", "currency")), (("chart", "items"), ("order_id",)),
                                       (("chart", "orders"), ("order_id",))]
    # a derived table's link columns are its input's columns (two equalities: one lookup of both); a group key
    # computed from columns is no lookup
    derived = grouped(
        "SELECT CAST(o.day AS date) AS day, o.currency, sum(i.amount) AS revenue FROM chart.orders AS o"
        " JOIN (SELECT order_id AS oid, amount AS paid, amount FROM chart.items) AS i"
        " ON i.oid = o.order_id AND i.paid = o.total GROUP BY 1, 2")
    assert derived.lookups() == [(("chart", "items"), ("order_id", "amount")), (("chart", "orders"), ("order_id", "total"))]
