"""Column lineage from SQL: through CTEs, joins, aggregates, windows, stars and unions, classified."""

import pytest

from lineage.extract import LineageExtractionError, extract

SCHEMAS = {
    ("chart", "orders"): ["order_id", "customer_id", "ordered_at", "status", "currency"],
    ("chart", "order_items"): ["order_id", "line_no", "line_amount"],
    ("chart", "customers"): ["customer_id", "email"],
}


def rel(lineage, column):
    return {(k[1], k[2], t, s) for k, t, s in lineage.fields[column]}


def test_copied_columns_are_identity_and_computed_ones_transformation():
    q = extract("SELECT o.order_id, upper(o.currency) AS cur FROM chart.orders o", SCHEMAS)
    assert rel(q, "order_id") == {("orders", "order_id", "DIRECT", "IDENTITY")}
    assert rel(q, "cur") == {("orders", "currency", "DIRECT", "TRANSFORMATION")}


def test_star_expands_from_the_known_schema():
    q = extract("SELECT * FROM chart.customers", SCHEMAS)
    assert q.outputs == ["customer_id", "email"]
    assert rel(q, "email") == {("customers", "email", "DIRECT", "IDENTITY")}


def test_aggregates_through_a_cte_and_a_join_and_the_rows_deciders_are_indirect():
    q = extract(
        """WITH t AS (SELECT order_id, sum(line_amount) AS amount FROM chart.order_items GROUP BY order_id)
        SELECT c.customer_id, coalesce(sum(t.amount), 0) AS value
        FROM chart.customers c JOIN chart.orders o ON o.customer_id = c.customer_id
        JOIN t ON t.order_id = o.order_id WHERE o.status <> 'cancelled' GROUP BY c.customer_id ORDER BY 2""",
        SCHEMAS,
    )
    assert rel(q, "value") == {("order_items", "line_amount", "DIRECT", "AGGREGATION")}
    indirect = {(k[1], k[2], s) for k, s in q.dataset}
    assert {("orders", "customer_id", "JOIN"), ("customers", "customer_id", "JOIN"), ("orders", "order_id", "JOIN")} <= indirect
    assert ("orders", "status", "FILTER") in indirect
    assert ("customers", "customer_id", "GROUP_BY") in indirect
    assert ("order_items", "order_id", "GROUP_BY") in indirect  # the CTE's grouping shapes the output too
    assert ("order_items", "line_amount", "SORT") in indirect  # ORDER BY 2
    assert q.tables == [("chart", "order_items"), ("chart", "customers"), ("chart", "orders")] or set(q.tables) == {
        ("chart", "order_items"), ("chart", "customers"), ("chart", "orders")
    }


def test_window_partition_and_order_are_indirect_window_edges_of_that_column():
    q = extract(
        "SELECT order_id, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at) AS rn,"
        " sum(order_id) OVER (PARTITION BY currency) AS running FROM chart.orders",
        SCHEMAS,
    )
    assert rel(q, "rn") == {("orders", "customer_id", "INDIRECT", "WINDOW"), ("orders", "ordered_at", "INDIRECT", "WINDOW")}
    assert rel(q, "running") == {("orders", "order_id", "DIRECT", "AGGREGATION"), ("orders", "currency", "INDIRECT", "WINDOW")}


def test_union_branches_both_feed_the_output_and_distinct_on_groups():
    q = extract(
        "SELECT customer_id AS id FROM chart.orders UNION ALL SELECT customer_id FROM chart.customers",
        SCHEMAS,
    )
    assert rel(q, "id") == {("orders", "customer_id", "DIRECT", "IDENTITY"), ("customers", "customer_id", "DIRECT", "IDENTITY")}
    q = extract("SELECT DISTINCT ON (customer_id) customer_id, email FROM chart.customers ORDER BY customer_id", SCHEMAS)
    assert (("chart", "customers", "customer_id"), "GROUP_BY") in q.dataset


def test_a_filtering_subquery_is_indirect():
    q = extract(
        "SELECT email FROM chart.customers c WHERE c.customer_id IN (SELECT customer_id FROM chart.orders WHERE status = 'paid')",
        SCHEMAS,
    )
    indirect = {(k[1], k[2], s) for k, s in q.dataset}
    assert {("customers", "customer_id", "FILTER"), ("orders", "customer_id", "FILTER"), ("orders", "status", "FILTER")} <= indirect


@pytest.mark.parametrize(
    "sql, message",
    [
        ("SELECT nope FROM chart.orders", "nope"),
        ("SELECT FROM WHERE", "cannot be traced"),
    ],
)
def test_untraceable_sql_is_refused_with_the_reason(sql, message):
    with pytest.raises(LineageExtractionError, match=message):
        extract(sql, SCHEMAS)
