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


# --- the memo of long statements (saving one step validates every step's SQL again) -------------
def wide_select(table: str = "chart.orders", n: int = 120) -> str:
    cols = ",\n  ".join(f"CASE WHEN o.amount > {i} THEN upper(o.status) ELSE lower(o.status) END AS c{i}" for i in range(n))
    return f"SELECT o.order_id,\n  {cols}\nFROM {table} AS o"


@pytest.fixture
def validations(monkeypatch):
    """How many times the toolkit really validated (the memo answered the rest)."""
    import pipelines.sql as module

    calls, real = [], module.validate_select
    monkeypatch.setattr(module, "validate_select", lambda sql, catalog: calls.append(sql) or real(sql, catalog))
    monkeypatch.setattr(module, "_CHECKED", type(module._CHECKED)())
    return calls


def test_a_long_statement_is_validated_once_for_the_same_catalogue(validations):
    known = {("chart", "orders"): {"order_id": "bigint", "amount": "numeric", "status": "text"}}
    sql = wide_select()
    assert len(sql) > 2_000
    first, second = check_select(sql, known), check_select(sql, dict(known))
    assert first == second and first.tables == (("chart", "orders"),)
    assert len(validations) == 1


def test_the_memo_is_keyed_on_the_columns_it_read(validations):
    sql = wide_select()
    check_select(sql, {("chart", "orders"): {"order_id": "bigint", "amount": "numeric", "status": "text"}})
    with pytest.raises(SQLValidationError, match="status"):  # the column went away: validated again, refused
        check_select(sql, {("chart", "orders"): {"order_id": "bigint", "amount": "numeric"}})
    with pytest.raises(SQLValidationError, match="status"):  # the refusal is remembered as a refusal
        check_select(sql, {("chart", "orders"): {"order_id": "bigint", "amount": "numeric"}})
    assert len(validations) == 2
    # a dataset the SQL does not name is no part of the key (validation never looks it up: a run's
    # plan and its step, each with the datasets its own SQL names, share one validation) ...
    other = {("chart", "orders"): {"order_id": "bigint", "amount": "numeric", "status": "text"}}
    check_select(sql, {**other, ("chart", "customers"): {"id": "bigint"}})
    check_select(sql, {**other, ("chart", "customers"): {"id": "bigint", "name": "text"}})
    assert len(validations) == 2
    # ... a dataset it names is, known or not
    with pytest.raises(SQLValidationError, match="Unknown dataset"):
        check_select(sql + " CROSS JOIN chart.customers", other)
    check_select(sql + " CROSS JOIN chart.customers", {**other, ("chart", "customers"): {"id": "bigint"}})
    assert len(validations) == 4


def test_short_statements_and_escaped_names_are_not_remembered(validations):
    known = {("chart", "orders"): {"order_id": "bigint", "amount": "numeric", "status": "text"}}
    for _ in range(2):
        check_select("SELECT order_id FROM chart.orders", known)
    escaped = wide_select() + " /* U&'x' */"
    for _ in range(2):
        check_select(escaped, known)
    assert len(validations) == 4


@pytest.mark.django_db
def test_saving_a_step_validates_its_long_sql_once(validations, simple_pipeline):
    from atlas.api.testing import token_client, user_with_role

    pipeline = simple_pipeline()
    step = pipeline.steps.get(name="refine")
    sql = wide_select("explore.people").replace("order_id", "id").replace("status", "name")
    response = token_client(user_with_role("Operator", "ops")).patch(f"/api/v1/steps/{step.pk}/", {"sql": sql}, format="json")
    assert response.status_code == 200, response.content
    assert validations.count(sql) == 1  # the model's clean; planning and storing inputs were answered
