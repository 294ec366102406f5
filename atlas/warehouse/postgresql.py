"""The PostgreSQL warehouse.

Loads stream through ``COPY``: DuckDB parses the file (see ``filereader``) and
writes CSV into a FIFO while this process relays it to ``COPY ... FROM STDIN``,
so parsing and loading run side by side in bounded memory. Explore tables are
partitioned by batch: publishing a batch is ``ATTACH PARTITION`` — no second
pass over the rows, and readers never see half a batch.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
from django.conf import settings
from psycopg import sql as pgsql

from . import interrupts, pgcopy, privileges
from .base import (
    BATCH_CONSTANT_COLUMNS,
    LAYER_SCHEMAS,
    META_SCHEMA,
    Column,
    Cursor,
    FileFormat,
    FileLayout,
    LoadResult,
    NothingClaimed,
    StagedBatch,
    StreamedFile,
    Warehouse,
    WarehouseError,
    hide_values,
)
from .features import PostgresFeatures
from .filereader import IngestError, csv_columns, plan_scan
from .operations import PostgresOperations
from .quality_ops import PostgresQualityOps

_CHUNK = 1 << 20


@dataclass(frozen=True)
class _PrivilegesPlan:
    """The roles' setup as read from the catalogue: what ``_apply_privileges`` would run."""

    roles: privileges.Roles  # with the owner resolved
    owner: str
    statements: list[str]  # schema-level, idempotent; none names a table but the key table
    passwords: list[Any]  # ALTER ROLE … PASSWORD (composed: never part of the stamp)
    former: bool  # the former single operator-SQL role exists


def copy_select(select_sql: str) -> str:
    """DuckDB SQL giving the rows of ``select_sql`` numbered in file order (``_row_number``, last)."""
    return f"SELECT *, row_number() OVER () FROM ({select_sql})"


def copy_csv_to(select_sql: str, path: str) -> str:
    """The DuckDB statement writing the rows of ``select_sql`` to ``path`` (a FIFO) as CSV for COPY.

    CSV, not COPY's text format: PostgreSQL parses text a little faster (about
    0.1 s less backend CPU per million rows, measured), but escaping every value
    for it cost DuckDB 0.3–1.0 s more (replace() per value, even behind a
    contains() test), and on a machine of two CPUs both sides count.
    """
    return f"COPY ({select_sql}) TO {Warehouse.literal(path)} (FORMAT csv, HEADER false)"


def _grow_pipe(fd: int) -> None:
    """A 1 MiB pipe buffer (Linux; 64 KiB by default): fewer wake-ups between DuckDB and COPY."""
    # Above /proc/sys/fs/pipe-max-size, or not Linux: keep the default.
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _CHUNK)


logger = logging.getLogger(__name__)


def _error_message(exc: psycopg.Error) -> str:
    """The message of a PostgreSQL error, for a WarehouseError (operator SQL and Atlas's own alike).

    Data errors (SQLSTATE classes 22 and 23) say what went wrong and on which table, never
    a value: their primary message may quote one (``invalid input syntax for type integer:
    "ann@example.com"``) and their detail often does (``Key (email)=(ann@example.com)
    already exists``, ``Failing row contains (...)``), so the detail is left out and the
    quoted parts of the primary message are hidden, except the names PostgreSQL reports
    as names (table, column, constraint, type).
    """
    if (exc.sqlstate or "")[:2] not in ("22", "23"):
        return str(exc).strip()
    diag = exc.diag
    names = (diag.schema_name, diag.table_name, diag.column_name, diag.constraint_name, diag.datatype_name)
    table = ".".join(p for p in (diag.schema_name, diag.table_name) if p) if diag.table_name else None
    return hide_values(diag.message_primary or type(exc).__name__, keep=[n for n in names if n], table=table)


def conninfo_from_django(db: dict[str, Any]) -> str:
    """A libpq URL for a Django PostgreSQL database settings dict."""
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    url = f"postgresql://{auth}{quote(host, safe='')}{port}/{quote(db['NAME'], safe='')}"
    return url


class PostgresWarehouse(PostgresQualityOps, Warehouse):
    vendor = "postgresql"
    dialect = "postgres"
    row_locator = ("tableoid", "ctid")
    operations_class = PostgresOperations
    features_class = PostgresFeatures

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._local = threading.local()  # one connection per thread
        self._all: list[psycopg.Connection] = []
        self._all_lock = threading.Lock()
        self._privileges_lock = threading.Lock()
        self._privileges_ready = False

    def connect_own(self) -> psycopg.Connection:
        """A new autocommit connection for Atlas's own statements, with the warehouse statement timeout."""
        conn = psycopg.connect(self.conninfo, autocommit=True)
        if timeout := self.statement_timeout_seconds():
            conn.execute("SELECT set_config('statement_timeout', %s, false)", [str(int(timeout * 1000))])
        return conn

    def _conn(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        watch = interrupts.current()
        if watch is not None:
            watch.check()  # a stopped step starts nothing more
        if conn is None or conn.closed or conn.broken:
            if conn is not None and watch is not None:
                watch.discard(("pg", id(conn)))
            try:
                conn = self.connect_own()
            except psycopg.OperationalError as exc:
                raise WarehouseError(f"Cannot connect to the PostgreSQL warehouse: {exc}") from exc
            self._local.conn = conn
            with self._all_lock:
                self._all = [c for c in self._all if not c.closed] + [conn]
        if watch is not None:
            # This thread's connection serves the watched work until the watch ends.
            watch.add(("pg", id(conn)), conn.info.backend_pid)
        return conn

    def forget_thread_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _failure(self, exc: psycopg.Error) -> Exception:
        """The exception to raise for a PostgreSQL error: stopped on purpose, timed out, or the error."""
        watch = interrupts.current()
        if watch is not None and watch.reason is not None:
            return interrupts.Interrupted(watch.reason)
        if isinstance(exc, psycopg.errors.QueryCanceled) and "statement timeout" in str(exc):
            return self.statement_timeout_error(self.statement_timeout_seconds())
        return WarehouseError(_error_message(exc))

    def _interrupt_sessions(self, sessions: list[Any], *, terminate: bool) -> int:
        """``pg_cancel_backend`` (or ``pg_terminate_backend``) of each backend, from a connection of its own.

        The role needs to be a member of the roles it signals or of ``pg_signal_backend``
        (README, Time limits and cancel); a refusal is logged and the step stops at its
        next statement instead.
        """
        fn = "pg_terminate_backend" if terminate else "pg_cancel_backend"
        reached = 0
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                for pid in sorted(set(sessions)):
                    try:
                        if conn.execute(f"SELECT {fn}(%s)", [pid]).fetchone()[0]:
                            reached += 1
                    except psycopg.Error as exc:
                        logger.warning("%s(%s) refused: %s", fn, pid, str(exc).strip())
        except psycopg.Error as exc:
            logger.warning("Cannot reach the warehouse to stop a step's statements: %s", str(exc).strip())
        return reached

    def close(self) -> None:
        """Close the connections of every thread."""
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all = []

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        conn = self._conn()
        try:
            with conn.cursor() as raw:
                yield Cursor(raw)
        except psycopg.Error as exc:
            raise self._failure(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        conn = self._conn()
        try:
            with conn.transaction(), conn.cursor() as raw:
                yield Cursor(raw)
        except psycopg.Error as exc:
            raise self._failure(exc) from exc

    # --- least privilege: operator SQL runs as its own role (see ``privileges``) ---------
    def ensure_privileges(self) -> None:
        """Create the roles and grants operator SQL needs, once per backend (idempotent).

        Done on first use where this connection may (a superuser, as in tests, or a
        role with CREATEROLE that owns the schemas); otherwise the error says to run
        ``manage.py warehouse_roles`` as a role that may.
        """
        if self._privileges_ready:
            return
        with self._privileges_lock:
            if self._privileges_ready:
                return
            try:
                self.ensure_schemas()
                self._apply_privileges()
            except (WarehouseError, psycopg.Error) as exc:
                raise WarehouseError(
                    "The warehouse roles for operator SQL are missing or incomplete and this"
                    f" connection cannot set them up ({str(exc).strip().splitlines()[0]}). Run"
                    " `python manage.py warehouse_roles` once as a PostgreSQL role that may create"
                    " roles and owns the warehouse schemas (see README, Security model)."
                ) from exc
            self._privileges_ready = True

    def _apply_privileges(
        self, *, set_password: bool = False, owner: str | None = None, every_table: bool = False
    ) -> None:
        """Roles, schema grants and default privileges in one transaction; then each table whose grants differ.

        Every process that runs operator SQL calls this once (``ensure_privileges``). Its three parts:

        * the plan, read from the catalogue (which roles exist, who owns what), and the stamp
          (``privileges.setup_stamp``): a digest of the planned statements and of the state they
          act on. Equal to the stamp the last complete setup stored: nothing to apply, nothing
          written (the usual case: one read, no commit);
        * otherwise the schema-level statements (``privileges.grant_sql`` and the rest: none
          names a table) in one transaction with the new stamp, retried whole on a collision
          with another process doing the same (``privileges.apply``);
        * then the tables whose grants differ from the layers' reads (``privileges.table_grant_sql``:
          usually none), each in a transaction of its own with the table locked first, so a
          publisher replacing that table waits for the lock instead of failing with "tuple
          concurrently updated" (what ``GRANT … ON ALL TABLES IN SCHEMA`` in the transaction did).

        ``set_password`` (``manage.py warehouse_roles``) applies everything whatever the stamp;
        ``every_table`` grants the layers' readers every table that lacks it, not only the tables
        no grant ever touched (see ``table_grant_sql``).
        """
        roles = privileges.configured_roles()
        if owner:
            roles = privileges.Roles(owner=owner, sql=roles.sql, sql_password=roles.sql_password, key=roles.key)
        conn = self._conn()
        key_table = self.table(META_SCHEMA, self.PII_KEYS_TABLE)
        with conn.cursor() as cur:
            plan = self._plan_privileges(cur, roles, set_password=set_password)
            stamp = privileges.setup_stamp(cur, plan.statements, plan.roles, plan.owner, key_table)
            if set_password or plan.passwords or stamp != privileges.stored_stamp(cur):

                def run() -> None:
                    with conn.transaction():
                        for statement in (*plan.statements, *plan.passwords):
                            cur.execute(statement)
                        after = self._plan_privileges(cur, roles, set_password=False)
                        cur.execute(privileges.store_stamp_sql(privileges.setup_stamp(
                            cur, after.statements, after.roles, after.owner, key_table
                        )))

                privileges.retry(run)
            fixes = privileges.table_grant_sql(cur, plan.roles, former=plan.former, every_table=every_table)
            privileges.fix_table_grants(conn, cur, fixes)

    def _plan_privileges(self, cur: Any, roles: privileges.Roles, *, set_password: bool) -> _PrivilegesPlan:
        """What the setup would apply, read from the catalogue (no change made)."""
        me, superuser, createrole = cur.execute(
            "SELECT current_user, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        owner = roles.owner or me
        roles = privileges.Roles(owner=owner, sql=roles.sql, sql_password=roles.sql_password, key=roles.key)
        operator_roles = roles.operator_roles()
        existing = {
            r[0]
            for r in cur.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                [[*operator_roles, roles.key, roles.sql]],
            ).fetchall()
        }
        statements: list[str] = []
        passwords: list[Any] = []
        new_logins: list[str] = []
        for name, login in (*((r, True) for r in operator_roles), (roles.key, False)):
            if name in existing:
                continue
            if not (superuser or createrole):
                raise WarehouseError(f"the role {name!r} does not exist and {me!r} may not create it")
            statements.append(privileges.create_role_sql(name, login=login))
            if login:
                new_logins.append(name)
        if roles.sql_password:
            for name in operator_roles if set_password else new_logins:
                passwords.append(pgsql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    pgsql.Identifier(name), pgsql.Literal(roles.sql_password)
                ))
        # A key role created by this plan has no member yet (pg_has_role refuses a missing role): a superuser needs none.
        if not (self._is_member(cur, owner, roles.key) if roles.key in existing else self._is_superuser(cur, owner)):
            statements.append(f"GRANT {privileges.qi(roles.key)} TO {privileges.qi(owner)}")
        statements += privileges.grant_sql(roles, owner)
        former = roles.sql in existing
        if former:  # the former single operator-SQL role: it reads nothing here any more
            statements += privileges.former_role_sql(roles, owner)
        statements += self._lock_public_schema(cur, roles, owner)
        statements += self._revoke_side_effect_functions(cur, owner, superuser=bool(superuser))
        statements += self._protect_key_table(cur, roles, owner)
        return _PrivilegesPlan(roles=roles, owner=owner, statements=statements, passwords=passwords, former=former)

    @staticmethod
    def _is_superuser(cur: Any, name: str) -> bool:
        row = cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [name]).fetchone()
        return bool(row and row[0])

    @staticmethod
    def _is_member(cur: Any, member: str, role: str) -> bool:
        row = cur.execute(
            "SELECT rolsuper OR pg_has_role(%s, %s, 'USAGE') FROM pg_roles WHERE rolname = %s",
            [member, role, member],
        ).fetchone()
        return bool(row and row[0])

    def _lock_public_schema(self, cur: Any, roles: privileges.Roles, owner: str) -> list[str]:
        """``public`` (Django's tables when both share a database) is not reachable by PUBLIC: the statements.

        Its owner (the database owner: Django's role) keeps every right; the warehouse
        owner gets USAGE back when it is another role (pgcrypto lives there).
        """
        row = cur.execute(
            "SELECT pg_has_role(current_user, n.nspowner, 'USAGE') FROM pg_namespace n WHERE n.nspname = 'public'"
        ).fetchone()
        if not row or not row[0]:
            logger.info("Not the owner of schema public: leaving its PUBLIC grants to the database owner.")
            return []
        return [
            "REVOKE ALL ON SCHEMA public FROM PUBLIC",
            *(f"REVOKE ALL ON SCHEMA public FROM {privileges.qi(role)}" for role in roles.operator_roles()),
            f"GRANT USAGE ON SCHEMA public TO {privileges.qi(owner)}",
        ]

    def _revoke_side_effect_functions(self, cur: Any, owner: str, *, superuser: bool) -> list[str]:
        if not superuser:
            row = cur.execute(
                "SELECT has_function_privilege(%s, 'pg_catalog.pg_notify(text, text)', 'EXECUTE')",
                [privileges.configured_roles().for_layer("explore")],
            ).fetchone()
            if not row or not row[0]:
                return []  # revoked already (``manage.py warehouse_roles --admin-url``)
            logger.info(
                "Not a superuser: large-object, NOTIFY and advisory-lock functions stay callable by"
                " PUBLIC in the warehouse; the SQL allowlist refuses them."
            )
            return []
        out = []
        for fn in privileges.SIDE_EFFECT_FUNCTIONS:
            out += [f"REVOKE EXECUTE ON FUNCTION pg_catalog.{fn} FROM PUBLIC",
                    f"GRANT EXECUTE ON FUNCTION pg_catalog.{fn} TO {privileges.qi(owner)}"]
        return out

    def _protect_key_table(self, cur: Any, roles: privileges.Roles, owner: str) -> list[str]:
        row = cur.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = %s",
            [META_SCHEMA, self.PII_KEYS_TABLE],
        ).fetchone()
        if row and row[0] != roles.key:
            return privileges.key_table_sql(roles, owner, self.table(META_SCHEMA, self.PII_KEYS_TABLE))
        return []

    def ensure_pii_hmac(self, key_id: str, ipad: bytes, opad: bytes) -> None:
        """Store the key (see ``Warehouse.ensure_pii_hmac``) in a table only the key role reads."""
        self.ensure_privileges()
        super().ensure_pii_hmac(key_id, ipad, opad)
        roles = privileges.configured_roles()
        conn = self._conn()
        try:
            with conn.cursor() as cur:
                owner = roles.owner or cur.execute("SELECT current_user").fetchone()[0]
                privileges.apply(conn, cur, self._protect_key_table(cur, roles, owner))
        except psycopg.Error as exc:
            raise self._failure(exc) from exc

    def setup_roles(self, *, owner: str | None = None, owner_password: str | None = None) -> None:
        """The management command's door: (re)apply roles, grants and the configured password.

        ``owner``: set up for that owner role while connected as another (an administrator):
        it is created as a LOGIN role if missing (with ``owner_password``), made owner of the
        database (Django migrates as it) and of the warehouse schemas.
        """
        if owner:
            conn = self._conn()
            with conn.cursor() as cur:
                privileges.retry(lambda: cur.execute(privileges.create_role_sql(owner, login=True, inherit=True)))
                if owner_password:
                    cur.execute(
                        pgsql.SQL("ALTER ROLE {} PASSWORD {}").format(
                            pgsql.Identifier(owner), pgsql.Literal(owner_password)
                        )
                    )
                db = cur.execute("SELECT current_database()").fetchone()[0]
                cur.execute(f"ALTER DATABASE {privileges.qi(db)} OWNER TO {privileges.qi(owner)}")
                for schema in (*LAYER_SCHEMAS, META_SCHEMA):
                    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {privileges.qi(schema)} AUTHORIZATION {privileges.qi(owner)}")
                    cur.execute(f"ALTER SCHEMA {privileges.qi(schema)} OWNER TO {privileges.qi(owner)}")
        else:
            self.ensure_schemas()
        self._apply_privileges(set_password=True, owner=owner, every_table=True)
        self._privileges_ready = not owner

    def _operator_conninfo(self, layer: str) -> str:
        """The warehouse URL, logged in as ``layer``'s operator-SQL role (the password if configured)."""
        roles = privileges.configured_roles()
        params = psycopg.conninfo.conninfo_to_dict(self.conninfo)
        params.pop("password", None)
        params["user"] = roles.for_layer(layer)
        if roles.sql_password:
            params["password"] = roles.sql_password
        params["application_name"] = f"atlas-operator-sql-{layer}"
        return psycopg.conninfo.make_conninfo(**params)

    @contextmanager
    def _operator_connection(self, layer: str) -> Iterator[psycopg.Connection]:
        """A fresh connection as ``layer``'s operator-SQL role, closed when the block ends.

        It serves one operator statement — or the two of one operator SELECT that
        :meth:`stage_operator_select` runs (its shape planned, then the same SELECT filling the
        staging table), each in its own :meth:`_operator_session` transaction.
        """
        role = privileges.configured_roles().for_layer(layer)  # refuses a schema that is not a layer
        self.ensure_privileges()
        try:
            conn = psycopg.connect(self._operator_conninfo(layer), autocommit=False)
        except psycopg.OperationalError as exc:
            raise WarehouseError(
                f"Cannot connect to the warehouse as the operator-SQL role {role!r}: {str(exc).strip()}."
                " Run `python manage.py warehouse_roles` and check ATLAS_WAREHOUSE_SQL_PASSWORD and pg_hba.conf."
            ) from exc
        try:
            with interrupts.enlisted(("pg", id(conn)), conn.info.backend_pid):
                yield conn
        finally:
            conn.close()

    @contextmanager
    def _operator_session(
        self, layer: str, *, read_only: bool, repeatable: bool = False, snapshot: str | None = None,
        conn: psycopg.Connection | None = None,
    ) -> Iterator[psycopg.Cursor]:
        """One transaction as ``layer``'s operator-SQL role: on a fresh connection closed after, or on ``conn``.

        The role reads only the layers ``layer`` may read (``privileges.LAYER_READS``).
        Pinned, in every transaction (``SET TRANSACTION``, ``set_config(..., true)``: they end
        with it): read only or not, ``statement_timeout``, ``lock_timeout`` (a lock wait counts
        against the same budget) and a ``search_path`` of ``pg_catalog`` only (names resolve to
        the catalogue or to what the statement qualifies, never to a schema a role could plant
        objects in). A fresh connection per operator statement: nothing a statement leaves on
        its session (a session advisory lock, a prepared statement, a temporary table) outlives
        it. ``conn`` (:meth:`_operator_connection`): the second statement of the same operator
        SELECT, as the same login role (checked), after ``DISCARD ALL`` has reset the session —
        and even without it, all it could find there is what that very SELECT could have left
        itself; the connection is closed after it.
        """
        if conn is None:
            with self._operator_connection(layer) as fresh, self._operator_session(
                layer, read_only=read_only, repeatable=repeatable, snapshot=snapshot, conn=fresh
            ) as cur:
                yield cur
            return
        role = privileges.configured_roles().for_layer(layer)
        if conn.info.parameter_status("session_authorization") != role:
            raise WarehouseError(f"An operator-SQL session for the {layer} layer must be {role!r}.")
        if getattr(conn, "_atlas_sessions", 0):
            # What the earlier statement left on the session (temporary tables, prepared statements,
            # advisory locks, LISTEN, settings) goes, as a connection pool resets a connection.
            conn.autocommit = True
            try:
                conn.execute("DISCARD ALL")
            except psycopg.Error as exc:
                raise self._failure(exc) from exc
            finally:
                conn.autocommit = False
        conn._atlas_sessions = getattr(conn, "_atlas_sessions", 0) + 1
        timeout = privileges.statement_timeout_ms()
        try:
            with conn.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY" if read_only else "SET TRANSACTION READ WRITE")
                if repeatable or snapshot:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                if snapshot:  # before the transaction's first query, as PostgreSQL requires
                    cur.execute(pgsql.SQL("SET TRANSACTION SNAPSHOT {}").format(pgsql.Literal(snapshot)))
                cur.execute(
                    "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true),"
                    " set_config('search_path', 'pg_catalog', true),"
                    " set_config('idle_in_transaction_session_timeout', %s, true)",
                    [str(timeout), str(timeout), str(timeout)],
                )
                yield cur
            conn.commit()
        except psycopg.errors.QueryCanceled as exc:
            conn.rollback()
            if (watch := interrupts.current()) is not None:
                watch.check()  # cancelled or timed out by the watchdog, not by the statement timeout
            raise WarehouseError(
                f"The operator's SQL ran longer than {timeout / 1000:g} s and was stopped"
                " (ATLAS_SQL_STATEMENT_TIMEOUT_SECONDS)."
            ) from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            conn.rollback()
            first, _, rest = _error_message(exc).partition("\n")
            reads = " and ".join(privileges.LAYER_READS[layer])
            raise WarehouseError(
                f"{first} (SQL for a {layer} dataset runs as {role!r}, which may read {reads} tables only)"
                + (f"\n{rest}" if rest else "")
            ) from exc
        except psycopg.Error as exc:
            if not conn.broken:
                conn.rollback()
            raise self._failure(exc) from exc

    @staticmethod
    def _run_one(cur: psycopg.Cursor, sql: str, params: Any = None) -> None:
        """Run exactly one statement: the extended protocol (``binary=True``) refuses ``;``-joined text."""
        cur.execute(sql, params, binary=True)

    def operator_query(
        self, select_sql: str, params: Any = None, *, layer: str, limit: int | None = None
    ) -> tuple[list[str], list[tuple]]:
        """Rows of an operator's SELECT, read as ``layer``'s operator-SQL role in a READ ONLY transaction."""
        sql = f"SELECT * FROM ({select_sql}) AS _atlas_q" + (f" LIMIT {int(limit)}" if limit is not None else "")
        with self._operator_session(layer, read_only=True) as cur:
            self._run_one(cur, sql, params)
            return [d.name for d in cur.description or []], [tuple(r) for r in cur.fetchall()]

    def operator_columns(self, select_sql: str, *, layer: str) -> list[str]:
        select_sql, bound = self.bind_parameters(select_sql, None, planning=True)
        return [name for name, _type in self._operator_shape(select_sql, layer, bound)]

    def operator_rows_in_one_snapshot(
        self, statements: Sequence[tuple[str, Any]], *, layer: str, work_mem: str = ""
    ) -> list[tuple]:
        """The one row of each operator SELECT, run side by side on as many connections, all from one snapshot.

        The first session (REPEATABLE READ) exports its snapshot (``pg_export_snapshot``);
        the others import it before their first query, so every statement sees exactly the
        data the first one sees, as one statement with these as subqueries would, while
        PostgreSQL runs them on as many CPUs. Each runs as ``layer``'s operator-SQL role,
        read only, with the pinned timeouts, and joins the current work's watch (a cancel
        stops them all). The first statement's failure, else the first other failure, is raised.
        ``work_mem``: each transaction's (``set_config(..., true)``: it ends with it); "": the server's.
        """
        from concurrent.futures import ThreadPoolExecutor

        watch = interrupts.current()
        statements = [(f"SELECT * FROM ({sql}) AS _atlas_q", params) for sql, params in statements]

        def memory(cur: psycopg.Cursor) -> None:
            if work_mem:
                cur.execute("SELECT set_config('work_mem', %s, true)", [work_mem])

        def imported(statement: tuple[str, Any], snapshot: str) -> tuple:
            with self.adopt(watch), self._operator_session(layer, read_only=True, snapshot=snapshot) as cur:
                memory(cur)
                self._run_one(cur, *statement)
                return tuple(cur.fetchone())

        (first_sql, first_params), rest = statements[0], statements[1:]
        with self._operator_session(layer, read_only=True, repeatable=True) as cur:
            snapshot = cur.execute("SELECT pg_export_snapshot()").fetchone()[0]
            memory(cur)
            with ThreadPoolExecutor(max_workers=max(1, len(rest)), thread_name_prefix="atlas-scan") as pool:
                others = [pool.submit(imported, statement, snapshot) for statement in rest]
                try:
                    self._run_one(cur, first_sql, first_params)
                    first = tuple(cur.fetchone())
                finally:  # the importers need this transaction open until they have their snapshot
                    for future in others:
                        future.exception()
            return [first, *(future.result() for future in others)]

    def _operator_shape(
        self, select_sql: str, layer: str, params: Any = None, *, conn: psycopg.Connection | None = None
    ) -> list[tuple[str, str]]:
        """(name, type) of the columns an operator's SELECT gives, planned but not run (LIMIT 0)."""
        with self._operator_session(layer, read_only=True, conn=conn) as cur:
            self._run_one(cur, f"SELECT * FROM ({select_sql}) AS _atlas_q LIMIT 0", params)
            res = cur.pgresult
            assert res is not None
            fields = [(res.fname(i).decode(), res.ftype(i), res.fmod(i)) for i in range(res.nfields)]
        if not fields:
            raise WarehouseError("The query gives no column.")
        with self.cursor() as cur:
            types = cur.execute(
                "SELECT format_type(t, m) FROM unnest(%s::oid[], %s::int[]) WITH ORDINALITY AS u(t, m, i) ORDER BY i",
                [[f[1] for f in fields], [f[2] for f in fields]],
            ).fetchall()
        # A bare literal is of type unknown; CREATE TABLE AS makes it text, so do we.
        return [(name, "text" if t[0] == "unknown" else t[0]) for (name, _o, _m), t in zip(fields, types, strict=True)]

    def stage_operator_select(
        self, schema: str, name: str, select_sql: str, *, readable: bool = True, params: Any = None,
        few_rows: bool = False,
    ) -> int:
        """Materialise an operator's SELECT as a new table ``schema.name``; return its rows.

        The SELECT runs as the operator-SQL role of the layer ``schema`` (the layer of the
        dataset the step produces), which reads only the layers that layer may read. The
        owner creates the table (shaped by planning the SELECT as that role), takes it
        away from every operator-SQL role (default privileges gave its readers SELECT) and
        grants INSERT on it alone to the writing role; the role then runs ``INSERT INTO
        name SELECT ...`` — one statement, on its own connection, with the timeout and
        search path pinned — and loses the grant after. The writing transaction cannot
        be READ ONLY (PostgreSQL refuses any write to a regular table in one), so what
        READ ONLY would forbid is forbidden by privilege: the role owns nothing, may
        write this one table only, and the functions that write elsewhere (large
        objects, NOTIFY, advisory locks) are revoked from PUBLIC where the owner may.
        ``few_rows``: the SELECT reads a few rows of large tables (affected groups): compiled without JIT,
        whose cost the planner estimates from the tables, not from the rows the statement ends up reading.
        ``readable=True`` then lets the roles of the layers that read ``schema`` read it
        (its checks, the next step); ``readable=False`` keeps it unreadable by every
        operator-SQL role (a step whose staged columns are hashed by the owner afterwards:
        they hold clear values).
        """
        roles = privileges.configured_roles()
        writer = privileges.qi(roles.for_layer(schema))
        every = ", ".join(privileges.qi(r) for r in roles.operator_roles())
        readers = ", ".join(privileges.qi(r) for r in roles.readers(schema))
        select_sql, bound = self.bind_parameters(select_sql, params)  # run parameters: bound, never formatted
        tbl = self.table(schema, name)
        # One operator connection for the SELECT's two statements, each its own transaction with
        # its own settings (read only to plan its shape; INSERT on this one table to fill it).
        with self._operator_connection(schema) as conn:
            shape = self._operator_shape(select_sql, schema, bound, conn=conn)
            defs = ", ".join(f"{self.quote(n)} {t}" for n, t in shape)
            with self.cursor() as cur:  # one round trip: the statements of one query string are one transaction
                cur.execute(f"DROP TABLE IF EXISTS {tbl}; CREATE TABLE {tbl} ({defs});"
                            f" REVOKE ALL ON {tbl} FROM {every}; GRANT INSERT ON {tbl} TO {writer}")
            try:
                with self._operator_session(schema, read_only=False, conn=conn) as cur:
                    if few_rows:  # a statement for a few rows of large tables: compiling it (JIT) costs more
                        cur.execute("SELECT set_config('jit', 'off', true)")
                    self._run_one(cur, f"INSERT INTO {tbl} SELECT * FROM ({select_sql}) AS _atlas_q", bound)
                    rows = cur.rowcount
            finally:
                with self.cursor() as cur:
                    privileges.change_table_grants(cur, schema, name, f"REVOKE ALL ON {tbl} FROM {every}",
                                                   *([f"GRANT SELECT ON {tbl} TO {readers}"] if readable else []))
        return int(rows)

    # What information_schema.columns, .tables and .schemata answer, read from pg_catalog directly:
    # the same rows (relation kinds, temporary schemas, privileges, and data_type as the views spell it:
    # format_type without modifiers, "ARRAY", "USER-DEFINED", a domain as its base type), without
    # planning the views' dozen joins on every call — about a millisecond of the server's CPU each,
    # paid several times by every run (test_warehouse_postgres_catalogue.py compares them with the views).
    _COLUMNS_SQL = (
        "SELECT a.attname,"
        " CASE WHEN t.typtype = 'd' THEN"
        "  CASE WHEN bt.typelem <> 0 AND bt.typlen = -1 THEN 'ARRAY'"
        "   WHEN nbt.nspname = 'pg_catalog' THEN format_type(t.typbasetype, NULL) ELSE 'USER-DEFINED' END"
        " ELSE"
        "  CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN 'ARRAY'"
        "   WHEN nt.nspname = 'pg_catalog' THEN format_type(a.atttypid, NULL) ELSE 'USER-DEFINED' END"
        " END,"
        " NOT (a.attnotnull OR (t.typtype = 'd' AND t.typnotnull))"
        " FROM pg_catalog.pg_attribute a"
        " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
        " JOIN pg_catalog.pg_namespace nc ON nc.oid = c.relnamespace"
        " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
        " JOIN pg_catalog.pg_namespace nt ON nt.oid = t.typnamespace"
        " LEFT JOIN (pg_catalog.pg_type bt JOIN pg_catalog.pg_namespace nbt ON nbt.oid = bt.typnamespace)"
        "  ON t.typtype = 'd' AND t.typbasetype = bt.oid"
        " WHERE nc.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
        " AND c.relkind IN ('r', 'v', 'f', 'p') AND NOT pg_catalog.pg_is_other_temp_schema(nc.oid)"
        " AND (pg_catalog.pg_has_role(c.relowner, 'USAGE')"
        "  OR pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT, INSERT, UPDATE, REFERENCES'))"
        " ORDER BY a.attnum"
    )
    _TABLE_EXISTS_SQL = (
        "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace nc ON nc.oid = c.relnamespace"
        " WHERE nc.nspname = %s AND c.relname = %s"
        " AND c.relkind IN ('r', 'v', 'f', 'p') AND NOT pg_catalog.pg_is_other_temp_schema(nc.oid)"
        " AND (pg_catalog.pg_has_role(c.relowner, 'USAGE')"
        "  OR pg_catalog.has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')"
        "  OR pg_catalog.has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES'))"
    )

    _SCHEMAS_PRESENT_SQL = (
        "SELECT (SELECT count(*) FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY(%s)"
        "  AND (pg_catalog.pg_has_role(n.nspowner, 'USAGE') OR pg_catalog.has_schema_privilege(n.oid, 'CREATE, USAGE'))),"
        " (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace nc ON nc.oid = c.relnamespace"
        "  WHERE nc.nspname = %s AND c.relname = ANY(%s)"
        "  AND c.relkind IN ('r', 'v', 'f', 'p') AND NOT pg_catalog.pg_is_other_temp_schema(nc.oid)"
        "  AND (pg_catalog.pg_has_role(c.relowner, 'USAGE')"
        "   OR pg_catalog.has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')"
        "   OR pg_catalog.has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')))"
    )

    def _schemas_present(self) -> bool:
        schemas, tables = (*LAYER_SCHEMAS, META_SCHEMA), ("loaded_batches", "published_steps")
        with self.cursor() as cur:
            row = cur.execute(self._SCHEMAS_PRESENT_SQL, [list(schemas), META_SCHEMA, list(tables)]).fetchone()
        return bool(row) and (row[0], row[1]) == (len(schemas), len(tables))

    def columns(self, schema: str, name: str) -> list[Column]:
        with self.cursor() as cur:
            rows = cur.execute(self._COLUMNS_SQL, [schema, name]).fetchall()
        return [Column(r[0], str(r[1]).lower(), bool(r[2])) for r in rows]

    def table_exists(self, schema: str, name: str) -> bool:
        with self.cursor() as cur:
            row = cur.execute(self._TABLE_EXISTS_SQL, [schema, name]).fetchone()
        return bool(row and row[0])

    def relations(self, schemas: Sequence[str]) -> list[tuple[str, str, str]]:
        """Tables and sequences (the direct-COPY parts' row numbers) of ``schemas``.

        Not partitions: an Explore table's batches are its partitions (attached staging tables,
        which keep their staging names); a partition goes with its table.
        """
        if not schemas:
            return []
        with self.cursor() as cur:
            rows = cur.execute(
                "SELECT n.nspname, c.relname, CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'S') AND NOT c.relispartition",
                [list(schemas)],
            ).fetchall()
        return [(s, n, k) for s, n, k in rows]

    def publish(self, **kwargs: Any) -> int:
        """Publish (see ``Warehouse.publish``); the published table is readable by the roles reading its layer."""
        rows = super().publish(**kwargs)
        if self._privileges_ready:
            readers = privileges.configured_roles().readers(kwargs["schema"])
            schema, target = kwargs["schema"], kwargs["target"]
            missing: list[str] = []
            if readers:
                with self.cursor() as cur:  # usually none: the roles' default privileges gave it at creation
                    missing = privileges.missing_readers(cur, schema, target, readers)
            if missing:  # the table locked first, as every grant on an existing table (``privileges.change_table_grants``)
                with self.transaction() as cur:
                    privileges.change_table_grants(
                        cur, schema, target,
                        f"GRANT SELECT ON {self.table(schema, target)} TO {', '.join(privileges.qi(r) for r in missing)}",
                    )
        return rows

    # --- merges look keys up (issue 20: a merge costs the keys it touches, not the table) ---------------
    def _index_staged_keys(self, schema: str, staging: str, keys: Sequence[str]) -> str | None:
        # Built on the staged table before the swap (readers of the published table are not held up);
        # renamed to the target's key index name in the swap's transaction (:meth:`_name_key_index`).
        name = self.key_index_name(schema, staging, keys)
        with self.cursor() as cur:
            cur.execute(f"CREATE INDEX {self.quote(name)} ON {self.table(schema, staging)}"
                        f" ({', '.join(self.quote(k) for k in keys)})")
            # and its statistics (kept by the rename): the steps that join it to the few rows of a merge
            # (affected groups) are planned on them, not on a fresh table's defaults (200 distinct values)
            cur.execute(f"ANALYZE {self.table(schema, staging)}")
        return name

    def analyze(self, schema: str, table: str) -> None:
        with self.cursor() as cur:
            cur.execute(f"ANALYZE {self.table(schema, table)}")

    def _name_key_index(self, cur: Cursor, schema: str, index: str, target: str, keys: Sequence[str]) -> None:
        # The old table (and its index of that name) was dropped earlier in this transaction.
        cur.execute(f"ALTER INDEX {self.table(schema, index)} RENAME TO {self.quote(self.key_index_name(schema, target, keys))}")

    def _merge_delete(self, cur: Cursor, schema: str, target: str, keys_table: str, keys: Sequence[str]) -> int:
        """The published rows of the staged keys, looked up in the key index, not found by a scan of the table.

        A table published before it had the index gets it here, once. The planner is told to probe
        the index key by key when the keys are few against the table (a tenth of its rows, as
        ``pg_class`` estimates them): fresh tables have no statistics, and composite keys are
        estimated as if their columns were independent, so it would otherwise hash the keys and
        scan every row of the table — the cost of the table, not of the keys (measured: 20k keys
        merged into 2M rows). The hints are local to the statement: reset after it.
        """
        probe = self._probe_keys(cur, schema, target, keys_table, keys)
        deleted = super()._merge_delete(cur, schema, target, keys_table, keys)
        if probe:
            cur.execute("SET LOCAL enable_hashjoin TO DEFAULT")
            cur.execute("SET LOCAL enable_mergejoin TO DEFAULT")
        return deleted

    def _probe_keys(self, cur: Cursor, schema: str, target: str, keys_table: str, keys: Sequence[str]) -> bool:
        """The key index (made once); keys few against the table (a tenth of its rows, as ``pg_class``
        estimates them): the planner told to probe it."""
        tgt = self.table(schema, target)
        cur.execute(f"CREATE INDEX IF NOT EXISTS {self.quote(self.key_index_name(schema, target, keys))}"
                    f" ON {tgt} ({', '.join(self.quote(k) for k in keys)})")
        (estimated,) = cur.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [tgt]).fetchone()
        (count,) = cur.execute(f"SELECT count(*) FROM {self.table(schema, keys_table)}").fetchone()
        probe = estimated is not None and count * 10 < estimated
        if probe:
            cur.execute("SET LOCAL enable_hashjoin = off")
            cur.execute("SET LOCAL enable_mergejoin = off")
        return probe

    # --- Explore tables are partitioned by batch --------------------------------
    def _create_explore_table(self, schema: str, target: str, columns: list[str]) -> None:
        with self.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {self.table(schema, target)} ({self._explore_column_defs(columns)})"
                ' PARTITION BY LIST ("_batch_id")'
            )

    def _partitions(self, cur: Cursor, schema: str, target: str) -> list[tuple[str, str]]:
        return cur.execute(
            "SELECT n.nspname, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = %s::regclass",
            [self.table(schema, target)],
        ).fetchall()

    def _is_partitioned(self, cur: Cursor, schema: str, target: str) -> bool:
        row = cur.execute(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            [schema, target],
        ).fetchone()
        return bool(row and row[0] == "p")

    def load_file(
        self,
        path: str,
        *,
        fmt: FileFormat,
        options: dict[str, Any],
        schema: str,
        target: str,
        staging: str,
        batch_id: str,
        source_label: str,
        layout: FileLayout | None = None,
        stream: StreamedFile | None = None,
        pipe: pgcopy.Pipe | None = None,
    ) -> LoadResult:
        """Stream the file into a staging table that is ready to attach as the batch's partition.

        A CSV file without quote characters (which COPY reads exactly as DuckDB
        does) goes straight to COPY, in parts loaded side by side (``pgcopy``);
        a compressed one (``stream``) is decompressed straight into one COPY,
        never written to disk; any other file, or one COPY refuses, is parsed
        by DuckDB (the stream written to ``path`` first) and streamed to COPY as
        below.

        Only what differs per row crosses the wire: the source columns and
        ``_row_number`` (numbered by DuckDB in file order). ``_batch_id`` is a
        column default checked by the partition's CHECK constraint (so ATTACH
        PARTITION needs no scan); ``_ingested_at`` and ``_source`` are the same
        for the whole batch and are added after the load with a constant
        default, which PostgreSQL keeps once in the catalogue, not in every row.
        The table is created and filled in one transaction, with ``COPY ...
        FREEZE``: its rows are written frozen and need no hint-bit pass on
        their first read.
        """
        if pipe is not None and layout is not None:
            try:
                return LoadResult(rows=pipe.finish(path, options, layout), columns=pipe.columns)
            except pgcopy.DirectCopyRefused as exc:
                logger.info("%s: the load fed while it was read is refused (%s); parsing it with DuckDB.", path, exc)
        else:
            direct = self._direct_copy(
                path, fmt, options, layout, schema, target, staging, batch_id, source_label, stream
            )
            if direct is not None:
                return direct
        if stream is not None:
            stream.materialise()  # DuckDB reads files
        # DuckDB parses files (0.07 s of import): loaded here, not by every process that runs a check
        import duckdb

        from .duckdb import parser_config

        duck = duckdb.connect(config=parser_config())
        try:
            scan = plan_scan(
                path, fmt, options, tag="load", max_line_bytes=settings.ATLAS_INGEST_MAX_LINE_BYTES, duck=duck
            )
            self.ensure_explore_table(schema, target, scan.columns)
            stg = self.table(schema, staging)
            defs = self.column_defs(schema, target, exclude=BATCH_CONSTANT_COLUMNS)
            batch = self.literal(batch_id)
            with self.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {stg}")
            conn = self._conn()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(
                        f"CREATE TABLE {stg} ({defs}, _batch_id text NOT NULL DEFAULT {batch}"
                        f" CONSTRAINT {self.quote('batch_' + batch_id)} CHECK (_batch_id = {batch}))"
                    )
                    rows = self._copy_through_fifo(
                        duck,
                        copy_select(scan.select_sql),
                        stg,
                        [*scan.columns, "_row_number"],
                        path,
                    )
                    cur.execute(
                        f"ALTER TABLE {stg} ADD COLUMN _ingested_at timestamp with time zone NOT NULL"
                        f" DEFAULT now(), ADD COLUMN _source text DEFAULT {self.literal(source_label)}"
                    )
            except psycopg.Error as exc:
                if (watch := interrupts.current()) is not None:
                    watch.check()  # stopped on purpose: not a problem of the file
                raise IngestError(f"{path}: loading into PostgreSQL failed: {str(exc).strip()}") from exc
            rejects = scan.collect_rejects(duck)
        finally:
            duck.close()
        return LoadResult(rows=rows, columns=scan.columns, rejects=rejects)

    def copy_pipe(self, *, schema: str, target: str, staging: str, batch_id: str, source_label: str) -> Any:
        mode = settings.ATLAS_INGEST_COPY_PIPE
        if not settings.ATLAS_INGEST_DIRECT_COPY or mode == "off":
            return None
        return pgcopy.Pipe(
            self, schema=schema, target=target, staging=staging, batch_id=batch_id, source_label=source_label,
            max_line_bytes=settings.ATLAS_INGEST_MAX_LINE_BYTES,
            plain=mode in ("auto", "all") or settings.ATLAS_INGEST_COPY_STREAMS <= 1,
            streams=settings.ATLAS_INGEST_COPY_STREAMS,
            segment_bytes=settings.ATLAS_INGEST_COPY_SEGMENT_BYTES,
        )

    def _direct_copy(
        self,
        path: str,
        fmt: FileFormat,
        options: dict[str, Any],
        layout: FileLayout | None,
        schema: str,
        target: str,
        staging: str,
        batch_id: str,
        source_label: str,
        stream: StreamedFile | None = None,
    ) -> LoadResult | None:
        """The load by direct COPY (see ``pgcopy``), or None when the file must go through DuckDB."""
        if fmt is not FileFormat.CSV or layout is None or not settings.ATLAS_INGEST_DIRECT_COPY:
            return None
        max_line = settings.ATLAS_INGEST_MAX_LINE_BYTES
        if stream is not None:
            if b"\n" not in stream.head and len(stream.head) < layout.size:
                return None  # a header line longer than the head: read from disk
            columns = csv_columns(path, options, max_line_bytes=max_line, head=stream.head)
        else:
            columns = plan_scan(path, fmt, options, tag="load", max_line_bytes=max_line, duck=None).columns
        plan = pgcopy.plan(
            path,
            options,
            layout,
            columns=columns,
            streams=settings.ATLAS_INGEST_COPY_STREAMS,
            part_bytes=settings.ATLAS_INGEST_COPY_PART_BYTES,
            max_line_bytes=max_line,
            stream=stream,
        )
        if plan is None:
            return None
        self.ensure_explore_table(schema, target, columns)
        defs = self.column_defs(schema, target, exclude=(*BATCH_CONSTANT_COLUMNS, "_row_number"))
        with self.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.table(schema, staging)}")
        try:
            rows = pgcopy.load(
                self,
                plan,
                schema=schema,
                staging=staging,
                defs=defs,
                columns=columns,
                batch_id=batch_id,
                source_label=source_label,
            )
        except pgcopy.DirectCopyRefused as exc:
            logger.info("%s: COPY refused the file (%s); parsing it with DuckDB instead.", path, exc)
            return None
        logger.debug("%s: %d rows by direct COPY in %d part(s).", path, rows, len(plan.parts))
        return LoadResult(rows=rows, columns=columns)

    def _copy_through_fifo(self, duck: Any, select_sql: str, stg: str, columns: list[str], path: str) -> int:
        """Run ``select_sql`` in DuckDB into a FIFO and relay it to ``COPY stg FROM STDIN``.

        Called inside the transaction that created ``stg`` (``FREEZE`` needs it).
        """
        # The pid in the name: the janitor removes the directory of a process that is gone.
        tmpdir = tempfile.mkdtemp(prefix=f"atlas-load-{os.getpid()}-")
        fifo = os.path.join(tmpdir, "rows.csv")
        os.mkfifo(fifo)
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                duck.execute(copy_csv_to(select_sql, fifo))
            except BaseException as exc:  # reported by the consumer
                failure.append(exc)
                # If DuckDB failed before opening the FIFO, open it so the reader sees EOF.
                try:
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                    os.close(fd)
                except OSError:
                    pass

        producer = threading.Thread(target=produce, name="atlas-duckdb-producer", daemon=True)
        producer.start()
        copy_sql = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, FREEZE)").format(
            pgsql.SQL(stg), pgsql.SQL(", ").join(pgsql.Identifier(c) for c in columns)
        )
        conn = self._conn()
        try:
            with open(fifo, "rb", buffering=0) as reader:
                _grow_pipe(reader.fileno())
                buf = bytearray(_CHUNK)
                view = memoryview(buf)
                try:
                    with conn.cursor() as cur:
                        with cur.copy(copy_sql) as copy:
                            while n := reader.readinto(buf):
                                copy.write(view[:n])
                            if failure:
                                raise IngestError(f"{path}: {failure[0]}")
                        rows = cur.rowcount
                except BaseException:
                    duck.interrupt()
                    while reader.readinto(buf):
                        pass
                    raise
        finally:
            producer.join()
            os.unlink(fifo)
            os.rmdir(tmpdir)
        if failure:
            raise IngestError(f"{path}: {failure[0]}")
        return int(rows)

    def _row_sample_sql(self, schema: str, table: str, rows: int, total: int) -> str:
        percent = min(100.0, 100.0 * rows * 1.2 / max(total, 1))
        return f"SELECT * FROM {self.table(schema, table)} TABLESAMPLE BERNOULLI ({percent:.6f}) REPEATABLE (42)"

    def _create_pii_hmac_function(self) -> None:
        # pgcrypto's hmac() (one OpenSSL HMAC per row) is the fastest HMAC-SHA256 PostgreSQL has
        # (benchmarks/pii): install it when this role may (a trusted extension since PostgreSQL 13).
        # Without it, pii_hmac_sql falls back to the built-in sha256 (PostgreSQL 11+).
        self._pgcrypto = None
        try:
            with self.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
        except WarehouseError as exc:
            logger.info("pgcrypto is not available (%s); PII hashing uses the built-in sha256.", exc)
        # Kept for SQL written against it; pii_hmac_sql inlines the expression instead (a SQL
        # function whose arguments are subqueries is not inlined: one function call per row).
        with self.cursor() as cur:
            cur.execute(
                f"CREATE OR REPLACE FUNCTION {self.quote(META_SCHEMA)}.{self.PII_HMAC_FUNCTION}"
                "(v text, ipad bytea, opad bytea) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS"
                " $$ SELECT encode(sha256(opad || sha256(ipad || convert_to(v, 'UTF8'))), 'hex') $$"
            )

    def _pgcrypto_schema(self) -> str | None:
        """The schema of pgcrypto's ``hmac`` when the extension is installed (looked up once)."""
        if getattr(self, "_pgcrypto", None) is None:
            with self.cursor() as cur:
                row = cur.execute(
                    "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace"
                    " WHERE e.extname = 'pgcrypto'"
                ).fetchone()
            self._pgcrypto = row[0] if row else ""
        return self._pgcrypto or None

    def pii_hmac_sql(self, expr_sql: str, key_id: str, *, implementation: str | None = None) -> str:
        """HMAC-SHA256 as one inline expression; the key is read once per statement (an InitPlan).

        ``implementation``: ``"pgcrypto"`` or ``"sha256"``; by default pgcrypto when installed.
        """
        keys = self.table(META_SCHEMA, self.PII_KEYS_TABLE)
        kid = self.literal(key_id)
        data = f"convert_to(CAST({expr_sql} AS text), 'UTF8')"
        schema = self._pgcrypto_schema()
        use = implementation or ("pgcrypto" if schema else "sha256")
        if use == "pgcrypto":
            if not schema:
                raise WarehouseError("pgcrypto is not installed in the warehouse.")
            key = f"(SELECT block_key FROM {keys} WHERE key_id = {kid})"
            return f"encode({self.quote(schema)}.hmac({data}, {key}, 'sha256'), 'hex')"
        ipad = f"(SELECT ipad FROM {keys} WHERE key_id = {kid})"
        opad = f"(SELECT opad FROM {keys} WHERE key_id = {kid})"
        return f"encode(sha256({opad} || sha256({ipad} || {data})), 'hex')"

    def publish_batches(
        self, *, schema: str, target: str, batches: list[StagedBatch], replace: bool
    ) -> list[StagedBatch]:
        shape = self.columns(schema, target)
        mine: list[StagedBatch] = []
        try:
            with self.transaction() as cur:
                mine = self.claim_batches(cur, batches, replace=replace)
                self._attach_claimed(cur, schema, target, shape, mine, replace=replace)
        except NothingClaimed:
            mine = []
        return self.drop_unclaimed(schema, batches, mine)

    def _attach_claimed(
        self, cur: Cursor, schema: str, target: str, shape: list, batches: list[StagedBatch], *, replace: bool
    ) -> None:
        if not self._is_partitioned(cur, schema, target):
            raise WarehouseError(f"{schema}.{target} is not a partitioned Explore table.")
        if replace:
            for part_schema, part in self._partitions(cur, schema, target):
                cur.execute(f"DROP TABLE {self.table(part_schema, part)}")
        for batch in batches:
            # A later file of the same run may have added columns to the table: a
            # partition needs them all (nullable, no default: no row is rewritten).
            have = {c.name for c in self.columns(schema, batch.staging)}
            for col in shape:
                if col.name not in have:
                    cur.execute(
                        f"ALTER TABLE {self.table(schema, batch.staging)}"
                        f" ADD COLUMN {self.quote(col.name)} {col.type}"
                    )
            cur.execute(
                f"ALTER TABLE {self.table(schema, target)} ATTACH PARTITION {self.table(schema, batch.staging)}"
                f" FOR VALUES IN ({self.literal(batch.batch_id)})"
            )
