"""Least privilege in the warehouse (issue 12): operator SQL that got past validation still cannot
reach what it must not, because the ENGINE refuses it.

Each attack calls the execution functions directly with raw SQL (no validation in front):
``stage_operator_select`` (how refine/aggregate steps write their staging table) and
``operator_query`` (read-only previews). PostgreSQL: the operator-SQL role; DuckDB: the
locked-down embedded connection.
"""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.db import connection

from atlas.warehouse import WarehouseError
from atlas.warehouse.privileges import configured_roles

pytestmark = pytest.mark.django_db


def _refused(run, *needles: str) -> str:
    with pytest.raises(WarehouseError) as info:
        run()
    message = str(info.value).lower()
    assert any(n in message for n in needles), message
    return message


# --- PostgreSQL: the operator-SQL role ----------------------------------------------------------
@pytest.fixture
def pg(wh):
    if wh.vendor != "postgresql":
        pytest.skip("PostgreSQL warehouse only")
    with wh.cursor() as cur:
        cur.execute("CREATE TABLE explore.orders (id integer, email text)")
        cur.execute("INSERT INTO explore.orders VALUES (1, 'ann@example.com'), (2, 'bob@example.com')")
        cur.execute("CREATE TABLE chart.victim (id integer)")
        cur.execute("INSERT INTO chart.victim VALUES (1)")
    wh.ensure_pii_hmac("kid", b"\x36" * 64, b"\x5c" * 64)  # a key in atlas.pii_keys
    return wh


def _both_paths(wh, sql: str):
    """The attack through both doors: the staging write and the read-only query."""
    return [lambda: wh.stage_operator_select("chart", "stg_attack", sql), lambda: wh.operator_query(sql)]


DENIED = ("permission denied", "must be owner")


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM public.auth_user",
        "SELECT * FROM atlas.pii_keys",
        "SELECT * FROM atlas.loaded_batches",
        "SELECT * FROM pg_authid",
        "SELECT table_to_xml('atlas.pii_keys', true, false, '')",
        "SELECT query_to_xml('SELECT * FROM atlas.pii_keys', true, false, '')",
        "SELECT atlas.pii_hmac('ann@example.com', 'x'::bytea, 'y'::bytea)",
        "SELECT lo_from_bytea(0, 'stolen'::bytea)",
        "SELECT pg_notify('atlas', 'hello')",
        "SELECT pg_advisory_lock(42)",
        "SELECT pg_advisory_xact_lock(42)",
    ],
)
def test_operator_sql_cannot_reach_metadata_key_catalogue_or_side_effects(pg, sql):
    for run in _both_paths(pg, sql):
        _refused(run, *DENIED)


@pytest.mark.postgres
def test_operator_sql_cannot_read_any_django_table(pg):
    tables = connection.introspection.table_names()
    assert "auth_user" in tables
    for table in tables:
        _refused(lambda t=table: pg.operator_query(f'SELECT * FROM public."{t}"'), *DENIED)
    role = configured_roles().sql
    with pg.cursor() as cur:
        assert cur.execute("SELECT has_schema_privilege(%s, 'public', 'USAGE')", [role]).fetchone()[0] is False
        assert cur.execute("SELECT has_schema_privilege(%s, 'atlas', 'USAGE')", [role]).fetchone()[0] is False


@pytest.mark.postgres
def test_the_keyed_hash_cannot_be_computed_by_the_operator_role(pg):
    _refused(lambda: pg.operator_query(f"SELECT {pg.pii_hmac_sql(pg.literal('ann@example.com'), 'kid')}"), *DENIED)


@pytest.mark.postgres
def test_switching_back_to_the_owner_role_is_refused(pg):
    owner = pg.operator_query("SELECT 1")  # the role works at all
    assert owner == (["?column?"], [(1,)])
    with pg.cursor() as cur:
        me = cur.execute("SELECT current_user").fetchone()[0]
    sql = f"SELECT set_config('role', '{me}', true), query_to_xml('SELECT * FROM atlas.pii_keys', true, false, '')"
    _refused(lambda: pg.operator_query(sql), "permission denied")


@pytest.mark.postgres
def test_other_sessions_query_text_is_hidden(pg):
    with pg.cursor() as cur:
        cur.execute("SELECT 'secret-marker-h2' AS x").fetchall()
    _cols, rows = pg.operator_query(
        "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query IS NOT NULL"
    )
    assert rows, "other sessions exist (the owner's)"
    assert not any("secret-marker-h2" in (r[0] or "") for r in rows)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE chart.victim",
        "SELECT 1 AS a) AS q; DROP TABLE chart.victim; SELECT * FROM (SELECT 1 AS a",
    ],
)
def test_multi_statement_text_is_refused(pg, sql):
    for run in _both_paths(pg, sql):
        with pytest.raises(WarehouseError):
            run()
    assert pg.table_exists("chart", "victim")


@pytest.mark.postgres
def test_a_statement_past_the_timeout_is_stopped(pg, settings):
    settings.ATLAS_SQL_STATEMENT_TIMEOUT_SECONDS = 0.5
    for run in _both_paths(pg, "SELECT 1 AS slept FROM pg_sleep(5)"):
        _refused(run, "ran longer than 0.5 s")


@pytest.mark.postgres
def test_operator_role_writes_nothing_but_its_staging_table(pg):
    for sql in (
        "INSERT INTO chart.victim VALUES (2)",
        "DELETE FROM chart.victim",
        "DROP TABLE chart.victim",
        "CREATE TABLE chart.planted (a integer)",
        "CREATE TABLE public.planted (a integer)",
        "ALTER TABLE explore.orders ADD COLUMN x integer",
        "GRANT SELECT ON atlas.pii_keys TO PUBLIC",
    ):
        with pytest.raises(WarehouseError) as info, pg._operator_session(read_only=False) as cur:
            pg._run_one(cur, sql)
        assert any(n in str(info.value).lower() for n in DENIED), (sql, str(info.value))
    # A data-modifying WITH cannot hide inside the staging statement either.
    with pytest.raises(WarehouseError):
        pg.stage_operator_select("chart", "stg_w", "WITH d AS (DELETE FROM chart.victim RETURNING id) SELECT id FROM d")
    with pg.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM chart.victim").fetchone()[0] == 1


@pytest.mark.postgres
def test_read_only_queries_run_in_a_read_only_transaction(pg):
    with pytest.raises(WarehouseError) as info, pg._operator_session(read_only=True) as cur:
        pg._run_one(cur, "CREATE TEMP TABLE t (a integer)")
    assert "read-only" in str(info.value)


@pytest.mark.postgres
def test_a_staging_write_reads_the_layers_and_the_result_is_readable_after(pg):
    rows = pg.stage_operator_select(
        "chart", "stg_ok", "SELECT id, upper(email) AS email, 1.5::numeric(6,2) AS n, 'x' AS lit FROM explore.orders"
    )
    assert rows == 2
    assert [(c.name, c.type) for c in pg.columns("chart", "stg_ok")] == [
        ("id", "integer"), ("email", "text"), ("n", "numeric"), ("lit", "text"),
    ]
    assert pg.operator_query("SELECT count(*) AS n FROM chart.stg_ok")[1] == [(2,)]
    # Private staging (columns to hash): the operator role may not read it.
    pg.stage_operator_select("chart", "stg_private", "SELECT email FROM explore.orders", readable=False)
    _refused(lambda: pg.operator_query("SELECT * FROM chart.stg_private"), "permission denied")


@pytest.mark.postgres
def test_roles_are_idempotent_and_race_safe(pg, settings):
    from atlas.warehouse.postgresql import PostgresWarehouse

    errors: list[BaseException] = []

    def setup() -> None:
        other = PostgresWarehouse(pg.conninfo)
        try:
            other.setup_roles()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            other.close()

    threads = [threading.Thread(target=setup) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    call_command("warehouse_roles")
    call_command("warehouse_roles")
    roles = configured_roles()
    with pg.cursor() as cur:
        rows = cur.execute(
            "SELECT rolname, rolsuper, rolcanlogin, rolinherit FROM pg_roles WHERE rolname = ANY(%s) ORDER BY 1",
            [[roles.sql, roles.key]],
        ).fetchall()
        assert sorted(rows) == sorted([(roles.sql, False, True, False), (roles.key, False, False, True)])
        member_of = cur.execute(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
            [roles.sql],
        ).fetchone()[0]
        assert member_of == 0, "the operator-SQL role belongs to no role"
        owner = cur.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'atlas' AND tablename = 'pii_keys'"
        ).fetchone()[0]
        assert owner == roles.key


@pytest.mark.postgres
def test_a_connection_that_may_not_create_roles_points_to_the_command(pg, settings):
    from atlas.warehouse.postgresql import PostgresWarehouse

    # A role that owns nothing and may create no role: the first operator statement says what to run.
    with pg.cursor() as cur:
        cur.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'atlas_h2_weak') THEN"
            " CREATE ROLE atlas_h2_weak LOGIN; END IF;"
            " EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(pg.conninfo)
    params["user"] = "atlas_h2_weak"
    weak = PostgresWarehouse(psycopg.conninfo.make_conninfo(**params))
    try:
        _refused(lambda: weak.operator_query("SELECT 1"), "manage.py warehouse_roles")
    finally:
        weak.close()


# --- DuckDB: the locked-down embedded warehouse ---------------------------------------------------
@pytest.fixture
def duck(wh):
    if wh.vendor != "duckdb":
        pytest.skip("DuckDB warehouse only")
    return wh


def _duck_paths(wh, sql: str):
    """Operator SQL doors, and the plain cursor: the lock is on the whole connection."""

    def plain() -> None:
        with wh.cursor() as cur:
            cur.execute(sql)

    return [lambda: wh.stage_operator_select("chart", "stg_attack", f"SELECT * FROM ({sql}) AS x"),
            lambda: wh.operator_query(sql), plain]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
    ],
)
def test_duckdb_reads_no_file_outside_atlas_directories(duck, sql):
    for run in _duck_paths(duck, sql):
        with pytest.raises(WarehouseError):
            run()


def test_duckdb_configuration_is_locked(duck, tmp_path, settings):
    for sql in (
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "SET lock_configuration = false",
        "RESET lock_configuration",
        "SET autoload_known_extensions = true",
    ):
        with pytest.raises(WarehouseError), duck.cursor() as cur:
            cur.execute(sql)
    # A SET that changes nothing stays accepted (retention pins UTC this way).
    with duck.cursor() as cur:
        cur.execute("SET TimeZone = 'UTC'")


def test_duckdb_cannot_attach_copy_out_or_reach_the_metadata_database(duck, tmp_path, settings):
    with duck.cursor() as cur:
        cur.execute("CREATE TABLE chart.victim AS SELECT 1 AS id")
    var = tmp_path / "var"
    for sql in (
        f"ATTACH '{tmp_path.parent / (tmp_path.name + '-other.duckdb')}' AS other",  # outside the roots
        f"ATTACH '{var / 'atlas.sqlite3'}' AS meta (TYPE sqlite)",
        f"COPY chart.victim TO '{tmp_path.parent / (tmp_path.name + '-out.csv')}'",  # a sibling, not inside
        "COPY chart.victim TO '/tmp/atlas-h2-out.csv'",
        "INSTALL httpfs",
        "LOAD sqlite",
    ):
        with pytest.raises(WarehouseError, match="."), duck.cursor() as cur:
            cur.execute(sql)
            pytest.fail(f"not refused: {sql}")
    assert not (tmp_path.parent / (tmp_path.name + "-out.csv")).exists()


def test_duckdb_operator_sql_is_one_statement_within_the_timeout(duck, settings):
    with duck.cursor() as cur:
        cur.execute("CREATE TABLE chart.victim AS SELECT 1 AS id")
    for sql in (
        "SELECT 1; DROP TABLE chart.victim",
        "SELECT 1 AS a) AS q; DROP TABLE chart.victim; SELECT * FROM (SELECT 1 AS a",
    ):
        for run in (lambda s=sql: duck.stage_operator_select("chart", "stg", s), lambda s=sql: duck.operator_query(s)):
            with pytest.raises(WarehouseError):
                run()
    assert duck.table_exists("chart", "victim")
    settings.ATLAS_SQL_STATEMENT_TIMEOUT_SECONDS = 0.3
    _refused(lambda: duck.operator_query("SELECT count(*) FROM range(100000000000) AS a"), "ran longer than 0.3 s")


def test_duckdb_still_reads_files_under_the_data_roots(duck, tmp_path, settings):
    root = tmp_path / "data"
    root.mkdir()
    (root / "in.csv").write_text("a,b\n1,2\n")
    with duck.cursor() as cur:
        rows = cur.execute(f"SELECT * FROM read_csv('{root / 'in.csv'}')").fetchall()
    assert rows == [(1, 2)]
