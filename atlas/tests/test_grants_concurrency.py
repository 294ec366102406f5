"""The operator-SQL roles' setup beside publishers (issue 20): no "tuple concurrently updated", same grants.

Every process that runs operator SQL applies the roles' grants once. ``GRANT … ON ALL TABLES IN
SCHEMA`` rewrites the catalogue row of every table of the schema and takes no lock; held in a
transaction, it made a publisher replacing one of those tables wait for the transaction and then
fail with "tuple concurrently updated" (4 of 200 runs of ``benchmarks.beat``). The first test
reproduces that, deterministically; the others show the setup that replaced it never holds a
table's row a publisher needs, writes nothing when nothing changed, and ends with the same grants
as the statements it replaced (the slow full way) after each kind of drift.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from atlas.warehouse import LAYER_SCHEMAS, privileges
from atlas.warehouse.base import META_SCHEMA
from atlas.warehouse.postgresql import PostgresWarehouse
from atlas.warehouse.privileges import configured_roles, qi

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def pg(wh):
    if wh.vendor != "postgresql":
        pytest.skip("PostgreSQL warehouse only")
    with wh.cursor() as cur:
        cur.execute("CREATE TABLE explore.orders (id integer, email text)")
        cur.execute("INSERT INTO explore.orders VALUES (1, 'ann@example.com')")
        cur.execute("CREATE TABLE chart.people (id integer)")
        cur.execute("CREATE TABLE navigate.kpi (n integer)")
    wh.ensure_pii_hmac("kid", b"\x36" * 64, b"\x5c" * 64)  # runs the setup; the key table in atlas
    return wh


def _fresh(pg) -> PostgresWarehouse:
    """Another process's warehouse: its own connection, its setup not done yet."""
    return PostgresWarehouse(pg.conninfo)


class Publisher:
    """A publisher's statement on its own connection, in a thread: did it wait, and how did it end."""

    def __init__(self, pg, statement: str) -> None:
        self.conn = psycopg.connect(pg.conninfo, autocommit=True)
        self.conn.execute("SET lock_timeout = '20s'")
        self.pid = self.conn.info.backend_pid
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(statement,))
        self.thread.start()

    def _run(self, statement: str) -> None:
        try:
            self.conn.execute(statement)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def waits_on(self, watcher, *, seconds: float = 10.0) -> str | None:
        """The lock the statement waits on ('transactionid', 'relation'), None once it has finished."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                return None
            row = watcher.execute(
                "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s", [self.pid]
            ).fetchone()
            if row and row[0] == "Lock":
                return row[1]
            time.sleep(0.01)
        raise AssertionError("the publisher neither finished nor waited on a lock")

    def end(self) -> BaseException | None:
        self.thread.join(30)
        self.conn.close()
        return self.error


@pytest.fixture
def watcher(pg):
    with psycopg.connect(pg.conninfo, autocommit=True) as conn:
        yield conn


def test_a_grant_on_all_tables_held_in_a_transaction_fails_a_publisher(pg, watcher):
    """The failure of the reverted design, reproduced: the publisher waits for the grant's transaction, then fails."""
    reader = configured_roles().for_layer("explore")
    setup = psycopg.connect(pg.conninfo)  # a transaction, as the reverted one-transaction setup had
    try:
        setup.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA explore TO {qi(reader)}")
        publisher = Publisher(pg, "ALTER TABLE explore.orders RENAME TO orders_next")
        assert publisher.waits_on(watcher) == "transactionid"  # on the setup's transaction, not on a lock of the table
        setup.commit()
    finally:
        setup.close()
    error = publisher.end()
    assert isinstance(error, psycopg.errors.InternalError_) and "tuple concurrently updated" in str(error)


def _schema_statements(pg) -> list[str]:
    roles = configured_roles()
    with pg._conn().cursor() as cur:
        return pg._plan_privileges(cur, roles, set_password=False).statements


def test_the_setups_transaction_holds_no_table_a_publisher_changes(pg, watcher):
    """Every schema-level statement held open in one transaction: publishers rename, drop and create meanwhile."""
    statements = _schema_statements(pg)
    assert statements and not any("ALL TABLES" in s for s in statements)
    setup = psycopg.connect(pg.conninfo)
    try:
        for statement in statements:
            setup.execute(statement)
        for statement in (
            "ALTER TABLE explore.orders RENAME TO orders_next",
            "DROP TABLE navigate.kpi",
            "CREATE TABLE chart.people_next (id integer)",
            "ALTER TABLE chart.people_next RENAME TO people_new",
        ):
            publisher = Publisher(pg, statement)
            assert publisher.waits_on(watcher) is None, statement  # finished without waiting
            assert publisher.end() is None, statement
        setup.commit()
    finally:
        setup.close()


def _untouched(pg, table: str) -> None:
    """``table`` as if created before the roles' default privileges: no grant or revoke ever touched it."""
    with pg.cursor() as cur:
        cur.execute(f"UPDATE pg_class SET relacl = NULL WHERE oid = '{table}'::regclass")


def _fixes(pg) -> list[tuple[str, str, str]]:
    with pg._conn().cursor() as cur:
        return privileges.table_grant_sql(cur, configured_roles(), former=False, every_table=False)


def test_a_tables_grant_locks_it_first_so_a_publisher_waits_then_succeeds(pg, watcher):
    """A table that needs its grant: the fix locks it, a publisher renaming or dropping it waits for the lock."""
    with pg.cursor() as cur:
        cur.execute("CREATE TABLE explore.late (a integer)")
    for table, publisher_sql in (("explore.late", "ALTER TABLE explore.late RENAME TO late_next"),
                                 ("explore.late_next", "DROP TABLE explore.late_next")):
        _untouched(pg, table)
        fixes = _fixes(pg)
        assert [f"{s}.{t}" for s, t, _ in fixes] == [table]
        setup = psycopg.connect(pg.conninfo)
        try:
            privileges.change_table_grants(setup.cursor(), *fixes[0])
            publisher = Publisher(pg, publisher_sql)
            assert publisher.waits_on(watcher) == "relation"  # on the table's lock: it reads the new row after
            setup.commit()
        finally:
            setup.close()
        assert publisher.end() is None, publisher_sql


def test_a_table_dropped_by_a_publisher_while_its_fix_waits_is_skipped(pg, watcher):
    with pg.cursor() as cur:
        cur.execute("CREATE TABLE explore.late (a integer)")
    _untouched(pg, "explore.late")
    fixes = _fixes(pg)
    publisher = psycopg.connect(pg.conninfo)
    other = _fresh(pg)
    try:
        publisher.execute("DROP TABLE explore.late")  # uncommitted
        done: list[int] = []
        conn = other._conn()
        fixer = threading.Thread(target=lambda: done.append(privileges.fix_table_grants(conn, conn.cursor(), fixes)))
        fixer.start()
        deadline = time.monotonic() + 10
        while watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                              [conn.info.backend_pid]).fetchone()[0] != "Lock":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        publisher.commit()
        fixer.join(30)
        assert done == [0]  # the table is gone: nothing to grant, no error
    finally:
        publisher.close()
        other.close()


def test_the_setup_runs_beside_a_publisher_holding_a_table(pg, watcher):
    """A process starting while a publisher's transaction holds a table's row: its setup neither waits nor fails."""
    publisher = psycopg.connect(pg.conninfo)
    try:
        publisher.execute("ALTER TABLE explore.orders RENAME TO orders_next")  # uncommitted
        with pg.cursor() as cur:  # drift, so that the other process applies everything but the tables
            cur.execute(f"REVOKE USAGE ON SCHEMA chart FROM {qi(configured_roles().for_layer('navigate'))}")
        other = _fresh(pg)
        try:
            other._conn().execute("SET lock_timeout = '3s'")  # a wait for the publisher would fail the test
            other.ensure_privileges()
        finally:
            other.close()
        publisher.commit()
    finally:
        publisher.close()


def _row_versions(pg) -> dict:
    """The xmin of every catalogue row the setup could write: a rewritten row has a new one."""
    schemas = [*LAYER_SCHEMAS, META_SCHEMA, "public"]
    with pg.cursor() as cur:
        return {
            "schemas": cur.execute(
                "SELECT nspname, xmin::text FROM pg_namespace WHERE nspname = ANY(%s) ORDER BY 1", [schemas]
            ).fetchall(),
            "tables": cur.execute(
                "SELECT c.oid::regclass::text, c.xmin::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = ANY(%s) ORDER BY 1", [schemas]
            ).fetchall(),
            "defaults": cur.execute("SELECT oid, xmin::text FROM pg_default_acl ORDER BY 1").fetchall(),
            "functions": cur.execute(
                "SELECT oid, xmin::text FROM pg_proc WHERE oid = ANY(%s::regprocedure[]) ORDER BY 1",
                [[f"pg_catalog.{f}" for f in privileges.SIDE_EFFECT_FUNCTIONS]],
            ).fetchall(),
            "stamp": cur.execute("SELECT xmin::text FROM pg_description WHERE objoid = %s::regnamespace",
                                 [META_SCHEMA]).fetchall(),
        }


def test_a_process_finding_the_setup_applied_writes_nothing(pg):
    assert privileges.stored_stamp(pg._conn().cursor()) is not None
    # The fixture's key table was handed to the key role after its setup: one process stamps that state.
    other = _fresh(pg)
    try:
        other.ensure_privileges()
    finally:
        other.close()
    before = _row_versions(pg)
    for _ in range(2):
        other = _fresh(pg)
        try:
            other.ensure_privileges()
            assert other._privileges_ready
        finally:
            other.close()
    assert _row_versions(pg) == before


# --- the same grants as the statements the setup replaced (the slow full way) ---------------------
def _slow_full_way(pg) -> None:
    """The setup as it was: every statement in autocommit, the tables' grants ``ON ALL TABLES IN SCHEMA``."""
    roles = configured_roles()
    conn = pg._conn()
    with conn.cursor() as cur:
        plan = pg._plan_privileges(cur, roles, set_password=False)
        owner = plan.owner
        statements = list(plan.statements)
        for role in roles.operator_roles():
            statements.append(f"REVOKE ALL ON ALL TABLES IN SCHEMA {qi(META_SCHEMA)} FROM {qi(role)}")
        for schema in LAYER_SCHEMAS:
            for role in roles.operator_roles():
                if role in roles.readers(schema):
                    statements.append(f"GRANT SELECT ON ALL TABLES IN SCHEMA {qi(schema)} TO {qi(role)}")
                else:
                    statements.append(f"REVOKE ALL ON ALL TABLES IN SCHEMA {qi(schema)} FROM {qi(role)}")
        if plan.former:
            statements.append(f"REVOKE ALL ON ALL TABLES IN SCHEMA {qi(META_SCHEMA)} FROM {qi(roles.sql)}")
            statements += [f"REVOKE ALL ON ALL TABLES IN SCHEMA {qi(s)} FROM {qi(roles.sql)}" for s in LAYER_SCHEMAS]
        assert owner
        for statement in statements:
            cur.execute(statement)


def _grants(pg) -> dict:
    """Every grant the setup is about, as sets of (object, grantee, privilege)."""
    schemas = [*LAYER_SCHEMAS, META_SCHEMA, "public"]
    with pg.cursor() as cur:
        def rows(sql, params):
            return sorted(cur.execute(sql, params).fetchall())

        return {
            "schemas": rows(
                "SELECT n.nspname, coalesce(pg_get_userbyid(a.grantee), '') , a.privilege_type"
                " FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a"
                " WHERE n.nspname = ANY(%s)", [schemas]),
            "tables": rows(
                "SELECT c.oid::regclass::text, pg_get_userbyid(a.grantee), a.privilege_type"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,"
                " aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a"
                " WHERE n.nspname = ANY(%s) AND c.relkind = ANY(%s::\"char\"[])", [schemas, list(privileges.TABLE_KINDS)]),
            "defaults": rows(
                "SELECT n.nspname, d.defaclobjtype::text, pg_get_userbyid(a.grantee), a.privilege_type"
                " FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a"
                " WHERE n.nspname = ANY(%s)", [schemas]),
            "functions": rows(
                "SELECT p.oid::regprocedure::text, pg_get_userbyid(a.grantee), a.privilege_type"
                " FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
                " WHERE p.oid = ANY(%s::regprocedure[])",
                [[f"pg_catalog.{f}" for f in privileges.SIDE_EFFECT_FUNCTIONS]]),
        }


def _drifts() -> dict[str, list[str]]:
    roles = configured_roles()
    explore, chart, navigate = (qi(roles.for_layer(layer)) for layer in LAYER_SCHEMAS)
    late = "DO $$ BEGIN EXECUTE 'UPDATE pg_class SET relacl = NULL WHERE oid = ''chart.late''::regclass'; END $$"
    return {
        "a reader lost a schema": [f"REVOKE USAGE ON SCHEMA chart FROM {navigate}"],
        "a non-reader got a schema and a table": [
            f"GRANT USAGE ON SCHEMA navigate TO {explore}", f"GRANT SELECT, INSERT ON navigate.kpi TO {explore}"],
        "a default privilege lost": [
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA explore REVOKE SELECT ON TABLES FROM {chart}"],
        "a non-reader got a default privilege": [
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA explore GRANT SELECT ON TABLES TO {navigate}"],
        "PUBLIC may notify again": ["GRANT EXECUTE ON FUNCTION pg_catalog.pg_notify(text, text) TO PUBLIC"],
        "a table of atlas granted": [f"GRANT SELECT ON atlas.loaded_batches TO {chart}"],
        "PUBLIC may create in a layer": ["GRANT CREATE ON SCHEMA chart TO PUBLIC"],
        "a table no grant ever touched": ["CREATE TABLE chart.late (a integer)", late],
        "a view and a partitioned table before the roles": [
            "CREATE VIEW explore.orders_view AS SELECT id FROM explore.orders",
            "CREATE TABLE chart.parts (a integer) PARTITION BY LIST (a)",
            "UPDATE pg_class SET relacl = NULL WHERE oid IN ('explore.orders_view'::regclass, 'chart.parts'::regclass)"],
    }


@pytest.mark.parametrize("drift", list(_drifts()))
def test_after_each_drift_a_process_ends_with_the_grants_of_the_full_setup(pg, drift):
    """Exactness: the stamped, table-by-table setup against the statements it replaced, from the same drift."""
    statements = _drifts()[drift]
    with pg.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    drifted = _grants(pg)
    other = _fresh(pg)
    try:
        other.ensure_privileges()
    finally:
        other.close()
    new_way = _grants(pg)
    assert new_way != drifted, "the drift was repaired"
    # Drift again from the same start, then the slow full way.
    with pg.cursor() as cur:
        cur.execute("DROP VIEW IF EXISTS explore.orders_view")
        cur.execute("DROP TABLE IF EXISTS chart.late, chart.parts")
        for statement in statements:
            cur.execute(statement)
    assert _grants(pg) == drifted
    _slow_full_way(pg)
    assert _grants(pg) == new_way
    # A process after that one finds nothing more to do, and writes nothing.
    for check in (False, True):
        before = _row_versions(pg)
        other = _fresh(pg)
        try:
            other.ensure_privileges()
        finally:
            other.close()
        assert _grants(pg) == new_way
        if check:
            assert _row_versions(pg) == before


def test_a_private_staging_table_stays_unreadable_when_a_process_starts(pg):
    """Least privilege: a table Atlas kept from the readers on purpose is not opened by another process's setup."""
    roles = configured_roles()
    with pg.cursor() as cur:
        # What stage_operator_select leaves while a hashing step's clear values wait (readable=False).
        cur.execute("CREATE TABLE chart.stg_private (email text)")
        cur.execute(f"REVOKE ALL ON chart.stg_private FROM {', '.join(qi(r) for r in roles.operator_roles())}")
        cur.execute(f"REVOKE USAGE ON SCHEMA chart FROM {qi(roles.for_layer('navigate'))}")  # the stamp misses
    other = _fresh(pg)
    try:
        other.ensure_privileges()
    finally:
        other.close()
    with pg.cursor() as cur:
        for role in roles.operator_roles():
            assert cur.execute(
                "SELECT has_table_privilege(%s, 'chart.stg_private', 'SELECT')", [role]
            ).fetchone()[0] is False, role
        assert cur.execute("SELECT has_schema_privilege(%s, 'chart', 'USAGE')",
                           [roles.for_layer("navigate")]).fetchone()[0] is True
    # ``manage.py warehouse_roles`` converges every table, as the statements it replaced did.
    pg.setup_roles()
    with pg.cursor() as cur:
        assert cur.execute("SELECT has_table_privilege(%s, 'chart.stg_private', 'SELECT')",
                           [roles.for_layer("navigate")]).fetchone()[0] is True


def test_publishing_grants_only_what_the_readers_lack(pg):
    """A published table its readers already read keeps its catalogue row; a private one is granted, locked first."""
    roles = configured_roles()

    def version(table: str) -> str:
        with pg.cursor() as cur:
            return cur.execute(f"SELECT xmin::text FROM pg_class WHERE oid = '{table}'::regclass").fetchone()[0]

    pg.stage_operator_select("chart", "stg_open", "SELECT id FROM explore.orders")
    pg.publish(schema="chart", staging="stg_open", target="open", mode="replace")
    before = version("chart.open")
    pg.stage_operator_select("chart", "stg_more", "SELECT id FROM explore.orders")
    pg.publish(schema="chart", staging="stg_more", target="open", mode="append")
    assert version("chart.open") == before  # the append wrote rows, not the table's grants
    pg.stage_operator_select("chart", "stg_private", "SELECT id FROM explore.orders", readable=False)
    with pg.cursor() as cur:
        assert privileges.missing_readers(cur, "chart", "stg_private", roles.readers("chart")) == sorted(
            roles.readers("chart"))
    pg.publish(schema="chart", staging="stg_private", target="private", mode="replace")
    for role in roles.readers("chart"):
        with pg.cursor() as cur:
            assert cur.execute("SELECT has_table_privilege(%s, 'chart.private', 'SELECT')", [role]).fetchone()[0]
    with pg.cursor() as cur:
        assert privileges.missing_readers(cur, "chart", "private", roles.readers("chart")) == []
