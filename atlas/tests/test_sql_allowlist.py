"""The allowlist accepts what real users and Atlas' own code write.

Every SQL statement of the demo project (demo/project/), the SQL the other apps' tests
write, and the patterns dbt users write (window functions, date_trunc,
FILTER, DISTINCT ON, WITHIN GROUP, interval arithmetic, ::casts, regexes ...)
validate; and the allowed expressions run on the engine of this pass.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from atlas.sql import Catalog, SQLRefused, validate_expression, validate_select
from demo.install import definitions, step_sql
from pipelines.sql import check_select
from quality.definitions import parse_condition

ORDERS = ["order_id", "customer_id", "ordered_at", "status", "currency", "amount", "tags", "payload", "email"]
CUSTOMERS = ["customer_id", "first_name", "last_name", "email", "phone", "signup_at", "country", "birth_date"]
KNOWN = {
    ("explore", "orders"): ORDERS,
    ("explore", "customers"): CUSTOMERS,
    ("chart", "orders"): ORDERS,
    ("chart", "customers"): CUSTOMERS,
    ("chart", "order_items"): ["order_id", "line_no", "sku", "quantity", "unit_price", "line_amount"],
    ("navigate", "daily_revenue"): ["day", "currency", "orders", "revenue"],
}


def demo_known() -> set[tuple[str, str]]:
    return {(d["layer"], d["table"]) for d in definitions()["datasets"].values()}


DEMO_STEPS = step_sql()
DEMO_CUSTOM_CHECKS = {key[-1]: c for key, c in definitions()["checks"].items() if c["kind"].startswith("custom")}


@pytest.mark.parametrize("name", sorted(DEMO_STEPS))
def test_every_step_of_the_demo_validates(name):
    checked = check_select(DEMO_STEPS[name], demo_known())
    assert checked.tables


@pytest.mark.parametrize("name", sorted(DEMO_CUSTOM_CHECKS))
def test_every_custom_check_of_the_demo_validates(name):
    check = DEMO_CUSTOM_CHECKS[name]
    parse_condition(check["params"]["sql"], aggregate=check["kind"] == "custom_aggregate")


DBT_STYLE = [
    # window functions and de-duplication
    "SELECT * FROM (SELECT o.*, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn"
    " FROM chart.orders o) ranked WHERE rn = 1",
    "SELECT DISTINCT ON (customer_id) customer_id, ordered_at FROM chart.orders ORDER BY customer_id, ordered_at DESC",
    "SELECT order_id, sum(amount) OVER (PARTITION BY customer_id ORDER BY ordered_at"
    " ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running, lag(amount) OVER w AS previous,"
    " lead(amount, 1, 0) OVER w AS next, rank() OVER w AS r, dense_rank() OVER w AS dr,"
    " ntile(4) OVER w AS quartile, first_value(amount) OVER w AS first_amount"
    " FROM chart.orders WINDOW w AS (PARTITION BY customer_id ORDER BY ordered_at)",
    # dates and intervals
    "SELECT CAST(date_trunc('month', ordered_at) AS date) AS month, count(*) AS n FROM chart.orders GROUP BY 1",
    "SELECT order_id FROM chart.orders WHERE ordered_at >= current_date - interval '30 days'",
    "SELECT extract(year FROM ordered_at) AS y, date_part('dow', ordered_at) AS dow,"
    " ordered_at + INTERVAL '1 hour' * 2 AS later FROM chart.orders",
    "SELECT to_char(ordered_at, 'YYYY-MM') AS ym, to_date('2024-01-02', 'YYYY-MM-DD') AS d,"
    " ordered_at::date AS day, now() AS loaded_at FROM chart.orders",
    "SELECT g.d::date AS day, count(o.order_id) AS n"
    " FROM generate_series(DATE '2024-01-01', DATE '2024-01-31', INTERVAL '1 day') AS g(d)"
    " LEFT JOIN chart.orders o ON CAST(o.ordered_at AS date) = CAST(g.d AS date) GROUP BY 1",
    # conditionals and casts
    "SELECT coalesce(status, 'unknown') AS status, nullif(trim(currency), '') AS currency,"
    " CASE WHEN amount > 100 THEN 'big' WHEN amount > 10 THEN 'medium' ELSE 'small' END AS size,"
    " greatest(amount, 0) AS g, least(amount, 1000) AS l, amount::numeric(12, 2) AS a2,"
    " CAST(customer_id AS bigint) AS cid, customer_id::text AS cid_text FROM chart.orders",
    # strings and regexes
    "SELECT lower(trim(email)) AS email, upper(currency) AS currency, split_part(email, '@', 2) AS domain,"
    " regexp_replace(status, '[^a-z]', '', 'g') AS status, substring(email FROM 1 FOR 3) AS prefix,"
    " concat_ws(' ', status, currency) AS label, left(email, 2) || '***' AS masked,"
    " length(email) AS n, replace(status, '_', ' ') AS s2, lpad(CAST(order_id AS text), 8, '0') AS padded"
    " FROM chart.orders WHERE email ~ '^[^@]+@[^@]+$' AND status ILIKE 'open%' AND currency NOT LIKE 'X%'",
    # aggregates: FILTER, DISTINCT, WITHIN GROUP, string_agg
    "SELECT customer_id, count(*) FILTER (WHERE status = 'paid') AS paid, count(DISTINCT currency) AS currencies,"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) AS median_amount,"
    " string_agg(DISTINCT currency, ',') AS currency_list, array_agg(order_id ORDER BY ordered_at) AS ids,"
    " bool_or(amount > 100) AS any_big, avg(amount) AS mean, stddev(amount) AS sd, max(ordered_at) AS last_at"
    " FROM chart.orders GROUP BY customer_id HAVING count(*) > 1",
    # joins, CTEs, set operations, subqueries
    "WITH paid AS (SELECT * FROM chart.orders WHERE status = 'paid'),"
    " per_customer AS (SELECT customer_id, sum(amount) AS total FROM paid GROUP BY customer_id)"
    " SELECT c.customer_id, c.email, p.total FROM chart.customers c LEFT JOIN per_customer p USING (customer_id)"
    " WHERE EXISTS (SELECT 1 FROM chart.orders o WHERE o.customer_id = c.customer_id)"
    " AND c.customer_id IN (SELECT customer_id FROM paid)",
    "SELECT customer_id FROM chart.orders UNION SELECT customer_id FROM chart.customers"
    " EXCEPT SELECT customer_id FROM explore.customers",
    "SELECT o.order_id, (SELECT max(i.line_amount) FROM chart.order_items i WHERE i.order_id = o.order_id) AS top"
    " FROM chart.orders o",
    "SELECT c.* FROM chart.customers c JOIN chart.orders o ON o.customer_id = c.customer_id",
    "SELECT * FROM chart.orders ORDER BY ordered_at DESC NULLS LAST LIMIT 10 OFFSET 5",
    "SELECT currency, day, sum(revenue) AS revenue FROM navigate.daily_revenue GROUP BY ROLLUP (currency, day)",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)"
    " SELECT n.i, o.order_id FROM n CROSS JOIN chart.orders o",
    # json accessors and arrays of values
    "SELECT payload ->> 'source' AS source, payload -> 'meta' AS meta, tags[1] AS first_tag,"
    " array_length(tags, 1) AS n_tags, unnest(tags) AS tag FROM chart.orders",
    "SELECT o.order_id, t.tag FROM chart.orders o CROSS JOIN LATERAL unnest(o.tags) AS t(tag)",
    # output alias in ORDER BY / GROUP BY equal to a table name
    "SELECT customer_id, count(*) AS orders FROM chart.orders GROUP BY customer_id ORDER BY orders DESC",
    "SELECT day, orders FROM navigate.daily_revenue",
    "SELECT md5(lower(email)) AS email_key, round(amount * 1.2, 2) AS gross, abs(amount) AS a,"
    " amount / nullif(2, 0) AS half, amount % 3 AS r, floor(amount) AS f, ceil(amount) AS c FROM chart.orders",
    "SELECT email IS NOT DISTINCT FROM 'x' AS same, amount BETWEEN 1 AND 10 AS small,"
    " ordered_at AT TIME ZONE 'UTC' AS utc, status IS NULL AS no_status FROM chart.orders",
    "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, label) JOIN chart.orders o ON o.order_id = v.id",
]


@pytest.mark.parametrize("sql", DBT_STYLE)
def test_what_dbt_users_write_validates(sql):
    check_select(sql, KNOWN)


@pytest.mark.parametrize("sql", DBT_STYLE)
def test_what_dbt_users_write_validates_without_known_columns(sql):
    """At definition time the inputs may not be loaded yet: qualified columns are checked at run time."""
    check_select(sql, set(KNOWN))


CONDITIONS = [
    ("amount >= 0", False),
    ("amount >= 0 OR status ILIKE 'x%'", False),
    ("CAST(customer_id AS integer) > 0", False),
    ("coalesce(status, '') <> 'void' AND length(trim(email)) BETWEEN 3 AND 254", False),
    ("ordered_at <= now() + interval '1 day'", False),
    ("email ~ '^[^@]+@[^@]+$'", False),
    ("date_trunc('day', ordered_at) >= DATE '2020-01-01'", False),
    ("sum(amount) >= 0", True),
    ("count(*) FILTER (WHERE amount < 0) = 0", True),
    ("count(DISTINCT customer_id) <= count(*)", True),
    ("max(ordered_at) > now() - interval '2 days'", True),
]


@pytest.mark.parametrize(("sql", "aggregate"), CONDITIONS)
def test_ordinary_check_conditions_validate(sql, aggregate):
    parse_condition(sql, aggregate=aggregate)
    parse_condition(sql, aggregate=aggregate, columns=set(ORDERS))


def test_a_check_naming_no_column_of_its_dataset_is_refused():
    with pytest.raises(ValueError, match="no column 'text'"):
        parse_condition("CAST(text AS integer) > 0", aggregate=False, columns=set(ORDERS))


def test_the_toolkit_is_callable_directly():
    catalog = Catalog.of(KNOWN, lambda layer, table: frozenset(KNOWN[(layer, table)]))
    checked = validate_select("SELECT o.order_id FROM chart.orders o;", catalog)
    assert checked.tables == (("chart", "orders"),) and checked.sql.endswith("o")
    assert validate_expression("amount > 0").sql() == "amount > 0"
    with pytest.raises(SQLRefused, match="whole row"):
        validate_select("SELECT o FROM chart.orders o", catalog)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT o.text FROM chart.orders o",
        "SELECT o.row_to_json FROM chart.orders o",
        "WITH x AS (SELECT * FROM chart.orders) SELECT x.to_jsonb FROM x",
    ],
)
def test_attribute_notation_on_a_whole_row_is_refused_when_columns_are_known(sql):
    with pytest.raises(Exception, match="has no column"):
        check_select(sql, KNOWN)


ORDERS_DDL = (
    "order_id bigint, customer_id bigint, ordered_at timestamp, status text, currency text,"
    " amount numeric(12, 2), tags text[], payload json, email text"
)
TABLES = {
    "explore.orders": ORDERS_DDL,
    "chart.orders": ORDERS_DDL,
    "explore.customers": (
        "customer_id bigint, first_name text, last_name text, email text, phone text, signup_at timestamp,"
        " country text, birth_date date"
    ),
    "chart.customers": (
        "customer_id bigint, first_name text, last_name text, email text, phone text, signup_at timestamp,"
        " country text, birth_date date"
    ),
    "chart.order_items": "order_id bigint, line_no integer, sku text, quantity integer, unit_price numeric(12, 2),"
    " line_amount numeric(14, 2)",
    "navigate.daily_revenue": "day date, currency text, orders bigint, revenue numeric(14, 2)",
}


@pytest.fixture
def shop_tables(wh):
    with wh.cursor() as cur:
        for name, columns in TABLES.items():
            cur.execute(f"CREATE TABLE {name} ({columns})")
        cur.execute(
            "INSERT INTO chart.orders VALUES (1, 7, TIMESTAMP '2024-01-02 10:00:00', 'paid', 'EUR', 12.50,"
            " ARRAY['a', 'b'], '{\"source\": \"web\", \"meta\": {\"x\": 1}}', 'ann@example.com')"
        )
        cur.execute(
            "INSERT INTO chart.customers VALUES (7, 'Ann', 'Lee', 'ann@example.com', '+33 1', TIMESTAMP"
            " '2023-05-01 00:00:00', 'FR', DATE '1990-01-01')"
        )
    return wh


@pytest.mark.django_db
@pytest.mark.parametrize("sql", DBT_STYLE)
def test_the_accepted_queries_run_on_this_engine(shop_tables, sql):
    """Accepted means it runs: as written on PostgreSQL, as transpiled on DuckDB."""
    wh = shop_tables
    check_select(sql, KNOWN)
    with wh.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM ({wh.transpile(sql)}) AS q").fetchall()


@pytest.mark.django_db
@pytest.mark.parametrize(("sql", "aggregate"), CONDITIONS)
def test_the_accepted_conditions_run_on_this_engine(shop_tables, sql, aggregate):
    wh = shop_tables
    root = parse_condition(sql, aggregate=aggregate)
    with wh.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM chart.orders WHERE {wh.transpile(root.sql('postgres'))}"
                    if not aggregate else
                    f"SELECT {wh.transpile(root.sql('postgres'))} FROM chart.orders").fetchall()


# One row of chart.orders (see shop_tables), each allowlisted function, the same answer on both engines.
SAME_ANSWER = [
    ("lower(currency)", "eur"), ("upper(status)", "PAID"), ("trim('  x ')", "x"), ("btrim('xax', 'x')", "a"),
    ("length(email)", 15), ("char_length(status)", 4), ("substring(email FROM 1 FOR 3)", "ann"),
    ("substr(email, 5, 7)", "example"), ("concat(status, '-', currency)", "paid-EUR"),
    ("concat_ws('/', status, currency)", "paid/EUR"), ("replace(status, 'a', 'o')", "poid"),
    ("left(email, 3)", "ann"), ("right(email, 3)", "com"), ("lpad(status, 6, '*')", "**paid"),
    ("rpad(status, 5)", "paid "), ("strpos(email, '@')", 4), ("position('@' IN email)", 4),
    ("split_part(email, '@', 2)", "example.com"), ("initcap('ann lee')", "Ann Lee"), ("reverse(status)", "diap"),
    ("repeat('ab', 2)", "abab"), ("regexp_replace(email, '[aeiou]', '', 'g')", "nn@xmpl.cm"),
    ("email ~ '^[a-z]+@'", True), ("email ~* '^ANN'", True), ("email !~ 'x$'", True),
    ("regexp_split_to_array('a,b', ',')", ["a", "b"]), ("md5(status)", "76e084771e78c194efd0e2d5b8920bea"),
    ("chr(65)", "A"), ("ascii(status)", 112), ("translate(status, 'pa', 'PA')", "PAid"),
    ("starts_with(email, 'ann')", True), ("email LIKE '%.com'", True), ("status ILIKE 'P%'", True),
    ("to_char(ordered_at, 'YYYY-MM')", "2024-01"), ("abs(-amount)", 12.5), ("ceil(amount)", 13),
    ("floor(amount)", 12), ("round(amount, 1)", 12.5), ("trunc(amount)", 12), ("sqrt(16)", 4),
    ("power(2, 3)", 8), ("sign(-amount)", -1), ("mod(customer_id, 4)", 3), ("customer_id % 4", 3),
    ("greatest(1, customer_id)", 7), ("least(1, customer_id)", 1),
    ("date_trunc('month', ordered_at)", datetime(2024, 1, 1)), ("extract(year FROM ordered_at)", 2024),
    ("date_part('month', ordered_at)", 1), ("ordered_at + interval '1 day'", datetime(2024, 1, 3, 10)),
    ("ordered_at - interval '1 month'", datetime(2023, 12, 2, 10)), ("make_date(2020, 2, 3)", date(2020, 2, 3)),
    ("ordered_at::date", date(2024, 1, 2)), ("CAST(amount AS integer)", 13), ("amount::numeric(6, 1)", 12.5),
    ("customer_id::text", "7"), ("date(ordered_at)", date(2024, 1, 2)),
    ("CASE WHEN amount > 10 THEN 'big' ELSE 'small' END", "big"), ("coalesce(NULL, status)", "paid"),
    ("nullif(status, 'paid')", None), ("status IS NOT DISTINCT FROM 'paid'", True),
    ("amount BETWEEN 10 AND 20", True), ("currency IN ('EUR', 'USD')", True),
    ("payload ->> 'source'", "web"), ("tags[1]", "a"), ("array_length(tags, 1)", 2), ("cardinality(tags)", 2),
    ("array_to_string(tags, '+')", "a+b"), ("array_position(tags, 'b')", 2),
    ("array_cat(tags, ARRAY['c'])", ["a", "b", "c"]), ("array_append(tags, 'c')", ["a", "b", "c"]),
    ("'a' = ANY(tags)", True), ("tags @> ARRAY['a']", True), ("tags && ARRAY['z']", False),
    ("string_to_array('a b', ' ')", ["a", "b"]), ("array_remove(tags, 'a')", ["b"]), ("bit_length(status)", 32),
    ("overlay(status PLACING 'X' FROM 1)", "Xaid"), ("regexp_count(email, 'a')", 2),
    ("extract(epoch FROM ordered_at)", 1704189600), ("interval '1 hour' * 2", timedelta(hours=2)),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("expr", "expected"), SAME_ANSWER, ids=[e for e, _ in SAME_ANSWER])
def test_allowlisted_functions_give_the_same_answer_on_this_engine(shop_tables, expr, expected):
    wh = shop_tables
    sql = f"SELECT {expr} AS v FROM chart.orders"
    check_select(sql, KNOWN)
    with wh.cursor() as cur:
        value = cur.execute(wh.transpile(sql)).fetchall()[0][0]
    if isinstance(expected, float | int) and not isinstance(expected, bool):
        assert float(value) == pytest.approx(expected)
    else:
        assert value == expected
