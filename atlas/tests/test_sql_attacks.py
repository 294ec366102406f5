"""The attacks of issue 12 on operator SQL: each is refused with a clear message and changes nothing.

Validation-level tests run every attack through the public doors (a step's
SELECT via ``pipelines.sql.check_select``, a custom check via
``quality.definitions.parse_condition``); the end-to-end tests run the
CTE-shadowing step on the engine of this pass and check that the run fails
with the message and that nothing was published.
"""

from __future__ import annotations

import pytest

from pipelines.sql import SQLValidationError, check_select
from quality.definitions import parse_condition

CUSTOMERS = ["customer_id", "first_name", "last_name", "email", "phone", "key"]
KNOWN = {
    ("explore", "customers"): CUSTOMERS,
    ("chart", "customers"): CUSTOMERS,
    ("chart", "orders"): ["order_id", "customer_id", "amount"],
}


def refused(sql: str) -> str:
    with pytest.raises(SQLValidationError) as exc:
        check_select(sql, KNOWN)
    return str(exc.value)


# --- the CTE-shadowing family ---------------------------------------------------------
SHADOWING = [
    pytest.param(
        "SELECT t.key, t.user_id FROM explore.customers c CROSS JOIN"
        " (WITH authtoken_token AS (SELECT 1 AS x) SELECT x FROM authtoken_token) s"
        " CROSS JOIN authtoken_token t",
        "authtoken_token",
        id="issue-api-tokens",
    ),
    pytest.param(
        "SELECT u.password FROM explore.customers c CROSS JOIN"
        " (WITH auth_user AS (SELECT 1 AS x) SELECT x FROM auth_user) s CROSS JOIN auth_user u",
        "auth_user",
        id="password-hashes",
    ),
    pytest.param(
        "SELECT r.rolpassword FROM explore.customers c CROSS JOIN"
        " (WITH pg_authid AS (SELECT 1 AS x) SELECT x FROM pg_authid) s CROSS JOIN pg_authid r",
        "pg_authid",
        id="pg-authid",
    ),
    pytest.param(
        "SELECT a.query FROM explore.customers c CROSS JOIN"
        " (WITH pg_stat_activity AS (SELECT 1 AS x) SELECT x FROM pg_stat_activity) s"
        " CROSS JOIN pg_stat_activity a",
        "pg_stat_activity",
        id="other-sessions-sql",
    ),
    pytest.param(
        "SELECT c.customer_id, (WITH auth_user AS (SELECT 1 AS x) SELECT max(x) FROM auth_user) AS n,"
        " u.password FROM explore.customers c CROSS JOIN auth_user u",
        "auth_user",
        id="cte-in-scalar-subquery",
    ),
    pytest.param(
        "SELECT x FROM explore.customers WHERE EXISTS"
        " (WITH auth_user AS (SELECT 1 AS x) SELECT 1 FROM auth_user) UNION ALL SELECT password FROM auth_user",
        "auth_user",
        id="cte-in-exists-used-in-union",
    ),
    pytest.param(
        "WITH a AS (SELECT password FROM auth_user), auth_user AS (SELECT 1 AS x)"
        " SELECT a.password FROM a CROSS JOIN explore.customers",
        "auth_user",
        id="forward-reference-to-a-later-cte",
    ),
    pytest.param(
        'WITH "Auth_user" AS (SELECT 1 AS x) SELECT u.password FROM explore.customers CROSS JOIN auth_user u',
        "auth_user",
        id="cte-name-differs-by-quoted-case",
    ),
    pytest.param(
        'SELECT p.* FROM explore.customers c CROSS JOIN (WITH "/etc/passwd" AS (SELECT 1 AS x)'
        ' SELECT x FROM "/etc/passwd") s CROSS JOIN "/etc/passwd" p',
        "/etc/passwd",
        id="duckdb-quoted-path",
    ),
    pytest.param(
        "SELECT p.* FROM explore.customers c CROSS JOIN '/var/lib/atlas/secrets.parquet' p",
        "secrets.parquet",
        id="duckdb-string-path",
    ),
    pytest.param(
        "SELECT p.* FROM explore.customers c CROSS JOIN (WITH \"data.csv\" AS (SELECT 1 AS x)"
        " SELECT x FROM \"data.csv\") s CROSS JOIN 'data.csv' p",
        "data.csv",
        id="duckdb-string-path-shadowed",
    ),
]


@pytest.mark.parametrize(("sql", "name"), SHADOWING)
def test_a_table_named_after_an_out_of_scope_cte_is_refused(sql, name):
    message = refused(sql)
    assert name in message
    assert "is neither a dataset nor a WITH query visible" in message


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM pg_catalog.pg_authid", "Unknown layer 'pg_catalog'"),
        ("SELECT * FROM information_schema.tables", "Unknown layer 'information_schema'"),
        ("SELECT * FROM atlas.pii_keys", "Unknown layer 'atlas'"),
        ("SELECT * FROM public.auth_user", "Unknown layer 'public'"),
        ("SELECT * FROM warehouse.explore.customers", "layer.table"),
        ("SELECT * FROM explore.customers CROSS JOIN explore.\"/etc/passwd\"", "Unknown dataset"),
    ],
)
def test_relations_outside_the_datasets_are_refused(sql, message):
    assert message in refused(sql)


# --- catalogue, XML/JSON serialisers, files, network, side effects ----------------------
FUNCTIONS = [
    # whole tables, schemas and queries serialised (the key of atlas.pii_keys)
    ("table_to_xml('atlas.pii_keys', true, false, '')", "table_to_xml"),
    ("schema_to_xml('atlas', true, false, '')", "schema_to_xml"),
    ("database_to_xml(true, false, '')", "database_to_xml"),
    ("query_to_xml('SELECT * FROM atlas.pii_keys', true, false, '')", "query_to_xml"),
    ("table_to_xmlschema('atlas.pii_keys', true, false, '')", "table_to_xmlschema"),
    ("CAST(c.email AS xml)", "xml"),
    # files (PostgreSQL and DuckDB)
    ("pg_read_file('/etc/passwd')", "pg_read_file"),
    ("pg_read_binary_file('/etc/passwd')", "pg_read_binary_file"),
    ("pg_ls_dir('.')", "pg_ls_dir"),
    ("pg_stat_file('postgresql.conf')", "pg_stat_file"),
    ("lo_import('/etc/passwd')", "lo_import"),
    ("lo_export(1, '/tmp/x')", "lo_export"),
    ("read_text('/etc/passwd')", "read_text"),
    ("read_blob('/etc/passwd')", "read_blob"),
    ("getenv('HOME')", "getenv"),
    # network
    ("dblink('host=evil', 'SELECT 1')", "dblink"),
    ("dblink_exec('host=evil', 'DROP TABLE x')", "dblink_exec"),
    # side effects: large objects, locks, notifications, settings, sequences, backends
    ("lo_from_bytea(0, 'x')", "lo_from_bytea"),
    ("lo_create(0)", "lo_create"),
    ("lo_unlink(1)", "lo_unlink"),
    ("pg_advisory_lock(1)", "pg_advisory_lock"),
    ("pg_try_advisory_lock(1)", "pg_try_advisory_lock"),
    ("pg_advisory_xact_lock(1)", "pg_advisory_xact_lock"),
    ("pg_notify('ch', c.email)", "pg_notify"),
    ("set_config('search_path', 'public', false)", "set_config"),
    ("nextval('s')", "nextval"),
    ("setval('s', 1)", "setval"),
    ("pg_terminate_backend(1)", "pg_terminate_backend"),
    ("pg_cancel_backend(1)", "pg_cancel_backend"),
    ("pg_reload_conf()", "pg_reload_conf"),
    ("pg_sleep(10)", "pg_sleep"),
    ("txid_current()", "txid_current"),
    # catalogue and session state
    ("current_setting('data_directory')", "current_setting"),
    ("current_query()", "current_query"),
    ("version()", "version"),
    ("inet_server_addr()", "inet_server_addr"),
    ("inet_client_addr()", "inet_client_addr"),
    ("pg_backend_pid()", "pg_backend_pid"),
    ("current_database()", "current_database"),
    ("current_user", "current_user"),
    ("session_user", "session_user"),
    ("has_table_privilege('atlas.pii_keys', 'select')", "has_table_privilege"),
    ("to_regclass('atlas.pii_keys')", "to_regclass"),
    ("pg_get_userbyid(10)", "pg_get_userbyid"),
    ("obj_description(1)", "obj_description"),
    # whole-row serialisers
    ("row_to_json(c.email)", "row_to_json"),
    ("to_json(c.email)", "to_json"),
    ("to_jsonb(c.email)", "to_jsonb"),
    ("json_agg(c.email)", "json_agg"),
    ("hstore(c.email)", "hstore"),
]


@pytest.mark.parametrize(("expr", "name"), FUNCTIONS, ids=[n for _, n in FUNCTIONS])
def test_functions_off_the_allowlist_are_refused_in_a_step(expr, name):
    message = refused(f"SELECT {expr} AS v FROM explore.customers c")
    assert name in message.lower()
    assert "not allowed" in message


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SELECT * FROM read_csv_auto('http://evil.example/x.csv')", "read_csv_auto"),
        ("SELECT * FROM read_parquet('/data/*.parquet')", "read_parquet"),
        ("SELECT * FROM read_json('/etc/x.json')", "read_json"),
        ("SELECT * FROM sniff_csv('/etc/passwd')", "sniff_csv"),
        ("SELECT * FROM query('SELECT * FROM atlas.pii_keys')", "query"),
        ("SELECT * FROM pg_ls_dir('.') AS f", "pg_ls_dir"),
        ("SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(x int)", "dblink"),
        ("SELECT * FROM explore.customers c, LATERAL pg_ls_dir('.') AS f", "pg_ls_dir"),
    ],
)
def test_table_functions_that_read_files_or_reach_out_are_refused(sql, message):
    text = refused(sql)
    assert message in text and "not allowed" in text


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT CAST('atlas.pii_keys' AS regclass) AS v FROM explore.customers", "regclass"),
        ("SELECT 'pg_read_file'::regproc AS v FROM explore.customers", "regproc"),
        ("SELECT 'x'::regnamespace AS v FROM explore.customers", "regnamespace"),
        ("SELECT pg_catalog.lower(email) AS v FROM explore.customers", "pg_catalog.lower"),
        ("SELECT 1 OPERATOR(pg_catalog.+) 2 AS v FROM explore.customers", "OPERATOR"),
        ("SELECT email FROM explore.customers FOR UPDATE", "FOR UPDATE"),
        ("SELECT * INTO chart.stolen FROM explore.customers", "read-only"),
        ("WITH d AS (DELETE FROM chart.orders RETURNING *) SELECT * FROM d", "read-only"),
    ],
)
def test_catalogue_casts_qualified_functions_and_operators_are_refused(sql, message):
    assert message in refused(sql)


# --- whole-row references ------------------------------------------------------------
WHOLE_ROWS = [
    pytest.param("SELECT row_to_json(c) AS payload FROM explore.customers c", id="issue-row-to-json"),
    pytest.param("SELECT c AS payload FROM explore.customers c", id="bare-alias"),
    pytest.param("SELECT customers AS payload FROM explore.customers", id="bare-table-name"),
    pytest.param("SELECT CAST(c AS text) AS payload FROM explore.customers c", id="cast-of-alias"),
    pytest.param("SELECT c::text AS payload FROM explore.customers c", id="pg-cast-of-alias"),
    pytest.param("SELECT md5(c::text) AS payload FROM explore.customers c", id="alias-in-function"),
    pytest.param("SELECT concat(c) AS payload FROM explore.customers c", id="alias-as-argument"),
    pytest.param("SELECT count(c.*) AS n FROM explore.customers c", id="star-inside-aggregate"),
    pytest.param("SELECT (c).* FROM explore.customers c", id="paren-star"),
    pytest.param("SELECT ROW(c.*) AS payload FROM explore.customers c", id="row-constructor"),
    pytest.param("SELECT array_agg(c) AS rows FROM explore.customers c", id="array-of-rows"),
    pytest.param("SELECT string_agg(s::text, ',') AS p FROM (SELECT * FROM explore.customers) s", id="derived-table"),
    pytest.param(
        "WITH x AS (SELECT * FROM explore.customers) SELECT concat_ws(',', x) AS p FROM x", id="cte-row",
    ),
    pytest.param(
        "SELECT o.order_id, (SELECT max(c::text) FROM explore.customers x WHERE x.customer_id = o.customer_id)"
        " AS p FROM chart.orders o CROSS JOIN explore.customers c",
        id="outer-alias-in-subquery",
    ),
    pytest.param("SELECT c.customer_id FROM explore.customers c ORDER BY c", id="order-by-row"),
    pytest.param("SELECT c.customer_id FROM explore.customers c WHERE c IS NOT NULL", id="where-row"),
    pytest.param("SELECT c.text AS payload FROM explore.customers c", id="attribute-notation-cast"),
    pytest.param("SELECT c.row_to_json AS payload FROM explore.customers c", id="attribute-notation-call"),
    pytest.param(
        "WITH x AS (SELECT * FROM explore.customers) SELECT x.to_jsonb AS payload FROM x",
        id="attribute-notation-through-cte",
    ),
]


@pytest.mark.parametrize("sql", WHOLE_ROWS)
def test_whole_row_references_are_refused(sql):
    message = refused(sql)
    assert "whole row" in message
    assert "column" in message


def test_a_column_named_like_its_table_is_still_a_column():
    checked = check_select(
        "SELECT key, c.amount FROM explore.customers key CROSS JOIN chart.orders c", KNOWN,
    )
    assert set(checked.tables) == {("explore", "customers"), ("chart", "orders")}


def test_an_alias_whose_columns_are_unknown_cannot_be_proven_a_column():
    message = refused("SELECT c FROM explore.customers c")
    assert "whole row" in message


@pytest.mark.parametrize("name", ["user", "current_role", "current_catalog", "session_user"])
def test_session_values_written_as_columns_are_refused(name):
    message = refused(f"SELECT {name} AS who FROM explore.customers")
    assert name in message and ("session" in message or "not allowed" in message)


# --- custom checks: the same allowlist -------------------------------------------------
CHECK_ATTACKS = [
    ("CAST(CAST(table_to_xml('atlas.pii_keys', true, false, '') AS text) AS integer) > 0", "table_to_xml"),
    ("CAST(schema_to_xml('atlas', true, false, '') AS text) <> ''", "schema_to_xml"),
    ("lo_from_bytea(0, 'x') > 0", "lo_from_bytea"),
    ("pg_advisory_lock(1) IS NULL", "pg_advisory_lock"),
    ("pg_notify('ch', email) IS NULL", "pg_notify"),
    ("current_setting('data_directory') <> ''", "current_setting"),
    ("length(pg_read_file('/etc/passwd')) > 0", "pg_read_file"),
    ("length(getenv('HOME')) > 0", "getenv"),
    ("CAST('atlas.pii_keys' AS regclass) IS NOT NULL", "regclass"),
    ("pg_catalog.length(email) > 0", "pg_catalog.length"),
    ("1 OPERATOR(pg_catalog.<) 2", "OPERATOR"),
]


@pytest.mark.parametrize(("sql", "name"), CHECK_ATTACKS, ids=[n for _, n in CHECK_ATTACKS])
def test_custom_checks_use_the_same_allowlist(sql, name):
    with pytest.raises(ValueError) as exc:
        parse_condition(sql, aggregate=False)
    assert name in str(exc.value)


def test_custom_aggregate_checks_use_the_same_allowlist():
    with pytest.raises(ValueError, match="table_to_xml"):
        parse_condition("max(length(CAST(table_to_xml('atlas.pii_keys', true, false, '') AS text))) > 0", aggregate=True)


def test_messages_never_echo_values_from_the_sql():
    message = refused("SELECT pg_read_file('/home/ann/secret-token-123') AS v FROM explore.customers")
    assert "secret-token-123" not in message


# --- end to end: the run fails with the message, nothing is published -------------------
def _layer_tables(wh) -> set[tuple[str, str]]:
    with wh.cursor() as cur:
        return set(
            cur.execute(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_schema IN ('explore', 'chart', 'navigate')"
            ).fetchall()
        )


def _run_attack(wh, simple_pipeline, sql: str):
    from pipelines.models import RunStatus
    from pipelines.tests.conftest import run_now

    pipeline = simple_pipeline()
    pipeline.steps.filter(name="ingest").update(position=0)
    first = run_now(pipeline)  # ingest, refine and aggregate succeed once: Chart and Navigate exist
    assert first.status == RunStatus.SUCCEEDED, first.error
    before = _layer_tables(wh)
    with wh.cursor() as cur:
        chart_before = cur.execute("SELECT * FROM chart.people ORDER BY 1").fetchall()
    pipeline.steps.filter(name="refine").update(sql=sql)  # an update skips clean(): the run must refuse it
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    # refused while planning the run: no step ran, so nothing was read, staged or published
    assert "Step 'refine'" in run.error and "is neither a dataset nor a WITH query visible" in run.error
    assert not run.step_runs.filter(status=RunStatus.SUCCEEDED).exists()
    assert _layer_tables(wh) == before  # no staging table left, nothing new
    with wh.cursor() as cur:
        assert cur.execute("SELECT * FROM chart.people ORDER BY 1").fetchall() == chart_before
    return run.error


@pytest.mark.django_db
def test_embedded_a_cte_shadowing_step_reading_a_local_file_fails_and_publishes_nothing(wh, simple_pipeline, tmp_path):
    from atlas.warehouse import get_warehouse

    if get_warehouse().vendor != "duckdb":
        pytest.skip("the DuckDB variant of the attack (a quoted path); the PostgreSQL pass runs the other")
    secret = tmp_path / "secret.csv"
    secret.write_text("token\nsupersecret-token-value\n")
    sql = (
        f'SELECT CAST(p.id AS integer) AS id, f.token AS name, 0 AS amount FROM explore.people p'
        f' CROSS JOIN (WITH "{secret}" AS (SELECT 1 AS x) SELECT x FROM "{secret}") s CROSS JOIN "{secret}" f'
    )
    error = _run_attack(wh, simple_pipeline, sql)
    assert "supersecret-token-value" not in error


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_a_cte_shadowing_step_reading_auth_user_fails_and_publishes_nothing(wh, simple_pipeline):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("victim", password="hunter2-long-password")
    sql = (
        "SELECT CAST(p.id AS integer) AS id, u.password AS name, 0 AS amount FROM explore.people p"
        " CROSS JOIN (WITH auth_user AS (SELECT 1 AS x) SELECT x FROM auth_user) s CROSS JOIN auth_user u"
    )
    error = _run_attack(wh, simple_pipeline, sql)
    assert "pbkdf2" not in error
