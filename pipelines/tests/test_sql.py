import pytest

from pipelines.sql import SQLValidationError, check_select, check_single_select

KNOWN = {("explore", "orders"), ("chart", "orders"), ("chart", "customers")}


def test_a_select_over_known_datasets_is_accepted_with_its_tables():
    checked = check_select(
        "WITH x AS (SELECT * FROM chart.orders) SELECT c.*, x.order_id FROM chart.customers c JOIN x USING (customer_id);",
        KNOWN,
    )
    assert set(checked.tables) == {("chart", "orders"), ("chart", "customers")}
    assert not checked.sql.endswith(";")


def test_union_and_subqueries_are_queries_too():
    checked = check_select("SELECT 1 AS a FROM chart.orders UNION ALL SELECT 2 FROM (SELECT 1 FROM explore.orders) s", KNOWN)
    assert set(checked.tables) == {("chart", "orders"), ("explore", "orders")}


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("", "empty"),
        ("SELECT 1 FROM chart.orders; SELECT 2 FROM chart.orders", "exactly one statement; found 2"),
        ("DELETE FROM chart.orders", "Only a SELECT"),
        ("DROP TABLE chart.orders", "Only a SELECT"),
        ("WITH d AS (DELETE FROM chart.orders RETURNING *) SELECT * FROM d", "read-only"),
        ("SELECT * INTO chart.copy FROM chart.orders", "read-only"),
        ("SELECT * FROM chart.unknown", "Unknown dataset(s): chart.unknown"),
        ("SELECT * FROM orders", "Qualify the table 'orders'"),
        ("SELECT * FROM public.auth_user", "Unknown layer 'public'"),
        ("SELECT pg_read_file('/etc/passwd') FROM chart.orders", "pg_read_file() is not allowed"),
        ("SELECT pg_sleep(10) FROM chart.orders", "pg_sleep() is not allowed"),
        ("SELECT * FROM read_csv('/etc/passwd')", "not allowed"),
        ("SELECT * FROM chart.orders FOR UPDATE", "FOR UPDATE"),
        ("SELEC * FROM chart.orders", "parse"),
        ('SELECT "unclosed FROM chart.orders', "parse"),
        ("SELECT 1", "reads no dataset"),
    ],
)
def test_bad_sql_is_refused_with_a_clear_reason(sql, message):
    with pytest.raises(SQLValidationError) as exc:
        check_select(sql, KNOWN)
    assert message in str(exc.value)


def test_single_select_accepts_any_table_for_sql_sources():
    check_single_select("SELECT id, email FROM public.customers WHERE active")
    with pytest.raises(SQLValidationError):
        check_single_select("UPDATE public.customers SET active = false")


def test_columns_come_from_the_warehouse_once_a_dataset_is_loaded(wh):
    """Before a load nothing is known (checked again at run time); after it, the real columns count."""
    from pipelines.models import Dataset
    from pipelines.transform import known_tables

    Dataset.objects.create(name="people", layer="explore", table="people")
    sql = "SELECT p.text AS row_as_text FROM explore.people p"
    assert check_select(sql, known_tables()).tables == (("explore", "people"),)
    with wh.cursor() as cur:
        cur.execute("CREATE TABLE explore.people (id integer, name text)")
    with pytest.raises(SQLValidationError, match="p has no column 'text'"):
        check_select(sql, known_tables())
    assert check_select("SELECT p.id, name FROM explore.people p", known_tables()).tables


def test_sql_sources_stay_one_read_only_statement_without_side_effects():
    with pytest.raises(SQLValidationError, match="pg_notify"):
        check_single_select("SELECT pg_notify('channel', email) FROM public.customers")
    with pytest.raises(SQLValidationError, match="read-only"):
        check_single_select("WITH d AS (DELETE FROM public.customers RETURNING id) SELECT id FROM d")
