"""Least privilege in the PostgreSQL warehouse: the roles, and the grants that keep them apart.

The roles, their names from settings:

* the **owner** (``ATLAS_WAREHOUSE_OWNER_ROLE``, by default the role the warehouse URL
  logs in as): creates, loads, publishes and drops tables — Atlas's own SQL;
* one **operator-SQL role per layer** (``ATLAS_WAREHOUSE_SQL_ROLE`` + ``_<layer>``:
  ``atlas_sql_explore``, ``atlas_sql_chart``, ``atlas_sql_navigate``; one password,
  ``ATLAS_WAREHOUSE_SQL_PASSWORD``): runs the SQL operators write (refine/aggregate
  SELECTs, custom check expressions, previews) for a dataset of that layer. It may read
  the tables of the layers its layer may read (``LAYER_READS``: the same as the validator's
  ``Step.INPUT_LAYERS``, enforced a second time by the engine — Explore holds raw,
  unmasked PII, and a Navigate step's SQL has no business there) and, for one statement,
  insert into the one staging table granted to it; it has no access to the ``atlas``
  schema (the batch ledger, the PII key), to ``public`` (Django's tables when metadata
  and warehouse share a database) or to anything else, and it is a member of no role;
* the **key role** (``ATLAS_WAREHOUSE_KEY_ROLE``, ``atlas_key``, NOLOGIN): owns the
  table of the PII hash key; the owner is its member and applies hash policies.

Why each operator-SQL role logs in on a connection of its own instead of being taken on
with ``SET LOCAL ROLE`` by the owner's connection: after ``SET ROLE``, PostgreSQL still
lets a statement switch to any role the *session* user belongs to — ``SELECT
set_config('role', 'owner', true), query_to_xml('SELECT * FROM atlas.pii_keys', ...)``
would read the key in a single SELECT. A session whose login role is ``atlas_sql_chart``
can only become roles ``atlas_sql_chart`` belongs to: none. For the same reason the layer
roles are not built from shared "reader" group roles: a login role must be a member of no
role that can read more than it may (the tests check there is no membership at all).

The role named by ``ATLAS_WAREHOUSE_SQL_ROLE`` itself (``atlas_sql``) ran every layer's SQL
before the layer roles existed; setting up a database takes back what it was granted there
(its table grants, schema usage and default privileges in the layer schemas), so an
upgraded warehouse keeps no login that reads every layer. It is not dropped.

Roles are cluster-wide and several databases (tests, CI, other engineers) share one
server: creating them is idempotent and race-safe (a concurrent creator's
``duplicate_object``/``unique_violation`` is the same success), and nothing here ever
drops a role.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from .base import LAYER_SCHEMAS, META_SCHEMA, WarehouseError

logger = logging.getLogger(__name__)

# Functions PUBLIC may call that act outside the statement's result, whatever the
# role's table grants: large objects (storage the role would own), notifications to
# other sessions, advisory locks (held past the statement, blocking other sessions).
# Revoked from PUBLIC where the connection may (it owns them: a superuser); the owner
# gets them back explicitly. An allowlist of what stays callable is not possible in
# PostgreSQL (EXECUTE is granted to PUBLIC by default), so this is the one list of
# names: the SQL allowlist (``atlas.sql``) refuses them at validation too.
SIDE_EFFECT_FUNCTIONS = (
    "lo_from_bytea(oid, bytea)",
    "lo_create(oid)",
    "lo_creat(integer)",
    "lo_open(oid, integer)",
    "lo_put(oid, bigint, bytea)",
    "lo_unlink(oid)",
    "pg_notify(text, text)",
    "pg_advisory_lock(bigint)",
    "pg_advisory_lock(integer, integer)",
    "pg_advisory_lock_shared(bigint)",
    "pg_advisory_lock_shared(integer, integer)",
    "pg_try_advisory_lock(bigint)",
    "pg_try_advisory_lock(integer, integer)",
    "pg_try_advisory_lock_shared(bigint)",
    "pg_try_advisory_lock_shared(integer, integer)",
    "pg_advisory_xact_lock(bigint)",
    "pg_advisory_xact_lock(integer, integer)",
    "pg_advisory_xact_lock_shared(bigint)",
    "pg_advisory_xact_lock_shared(integer, integer)",
    "pg_try_advisory_xact_lock(bigint)",
    "pg_try_advisory_xact_lock(integer, integer)",
    "pg_try_advisory_xact_lock_shared(bigint)",
    "pg_try_advisory_xact_lock_shared(integer, integer)",
)


# What the SQL producing or checking a dataset of each layer may read: the layers a step
# writing that layer reads (``pipelines.models.Step.INPUT_LAYERS``, refine -> chart,
# aggregate -> navigate; a test keeps the two equal) and, for Explore (no operator step
# writes it, but its checks and previews are operator SQL), Explore alone.
LAYER_READS: dict[str, tuple[str, ...]] = {
    "explore": ("explore",),
    "chart": ("explore", "chart"),
    "navigate": ("chart", "navigate"),
}


def check_layer(layer: str) -> str:
    """``layer`` if it is a layer schema; else a WarehouseError (operator SQL runs for a layer)."""
    if layer not in LAYER_READS:
        raise WarehouseError(
            f"{layer!r} is not a layer ({', '.join(LAYER_SCHEMAS)}): operator SQL runs as the role of the"
            " layer of the dataset it produces or checks."
        )
    return layer


def readers_of(schema: str) -> tuple[str, ...]:
    """The layers whose operator SQL may read the tables of ``schema``."""
    return tuple(layer for layer, reads in LAYER_READS.items() if schema in reads)


@dataclass(frozen=True)
class Roles:
    owner: str  # "" : the role the warehouse connection logs in as
    sql: str  # the prefix of the layer roles (and the former single operator-SQL role)
    sql_password: str
    key: str

    def for_layer(self, layer: str) -> str:
        """The login role that runs operator SQL for datasets of ``layer`` (``atlas_sql_chart``)."""
        return f"{self.sql}_{check_layer(layer)}"

    def operator_roles(self) -> tuple[str, ...]:
        """Every layer's operator-SQL role, in layer order."""
        return tuple(self.for_layer(layer) for layer in LAYER_SCHEMAS)

    def readers(self, schema: str) -> tuple[str, ...]:
        """The operator-SQL roles that may read the tables of ``schema``."""
        return tuple(self.for_layer(layer) for layer in readers_of(schema))


def configured_roles() -> Roles:
    return Roles(
        owner=getattr(settings, "ATLAS_WAREHOUSE_OWNER_ROLE", ""),
        sql=getattr(settings, "ATLAS_WAREHOUSE_SQL_ROLE", "atlas_sql"),
        sql_password=getattr(settings, "ATLAS_WAREHOUSE_SQL_PASSWORD", ""),
        key=getattr(settings, "ATLAS_WAREHOUSE_KEY_ROLE", "atlas_key"),
    )


def statement_timeout_ms() -> int:
    """The longest an operator's statement may run (``ATLAS_SQL_STATEMENT_TIMEOUT_SECONDS``)."""
    return int(float(getattr(settings, "ATLAS_SQL_STATEMENT_TIMEOUT_SECONDS", 600)) * 1000)


def qi(name: str) -> str:
    if not name or "\x00" in name:
        raise WarehouseError(f"Invalid role name {name!r}.")
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def create_role_sql(name: str, *, login: bool, inherit: bool = False) -> str:
    """CREATE ROLE if missing, as one DO block: a concurrent creator's win is our success."""
    options = ("LOGIN" if login else "NOLOGIN") + ("" if inherit or not login else " NOINHERIT")
    return (
        "DO $atlas$ BEGIN"
        f" IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {lit(name)}) THEN"
        f" CREATE ROLE {qi(name)} {options} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;"
        " END IF;"
        " EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;"
        " END $atlas$"
    )


def grant_sql(roles: Roles, owner: str, schemas: Sequence[str] = LAYER_SCHEMAS) -> list[str]:
    """The schema-level grants of the layer roles (idempotent): each reads its ``LAYER_READS``, nothing else.

    What a layer role may not reach is revoked too (schema usage, default privileges): running
    this again after a change converges on the same grants. No statement here names a table:
    the tables' own grants are :func:`table_grant_sql`'s, one table at a time (an ``ON ALL
    TABLES IN SCHEMA`` statement rewrites every table's catalogue row, and a publisher
    changing one of those rows at the same time fails with "tuple concurrently updated").
    (The former single role's grants are taken back by ``former_role_sql``.)
    """
    out = [f"REVOKE ALL ON SCHEMA {qi(META_SCHEMA)} FROM PUBLIC"]
    for role in roles.operator_roles():
        out.append(f"REVOKE ALL ON SCHEMA {qi(META_SCHEMA)} FROM {qi(role)}")
    for schema in schemas:
        s = qi(schema)
        out.append(f"REVOKE CREATE ON SCHEMA {s} FROM PUBLIC")
        readers = set(roles.readers(schema))
        for role in roles.operator_roles():
            r = qi(role)
            if role in readers:
                out += [
                    f"GRANT USAGE ON SCHEMA {s} TO {r}",
                    f"ALTER DEFAULT PRIVILEGES FOR ROLE {qi(owner)} IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}",
                ]
            else:
                out += revoke_schema_sql(role, owner, schema)
    return out


def revoke_schema_sql(role: str, owner: str, schema: str) -> list[str]:
    """Take back what ``role`` may do in ``schema``: the schema, the default grants (its tables: ``table_grant_sql``)."""
    s, r = qi(schema), qi(role)
    return [
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {qi(owner)} IN SCHEMA {s} REVOKE ALL ON TABLES FROM {r}",
        f"REVOKE ALL ON SCHEMA {s} FROM {r}",
    ]


def former_role_sql(roles: Roles, owner: str, schemas: Sequence[str] = LAYER_SCHEMAS) -> list[str]:
    """Take back from the former single operator-SQL role (``roles.sql``) every schema-level right it had here."""
    out = [f"REVOKE ALL ON SCHEMA {qi(META_SCHEMA)} FROM {qi(roles.sql)}"]
    for schema in schemas:
        out += revoke_schema_sql(roles.sql, owner, schema)
    return out


# Relation kinds ``GRANT … ON ALL TABLES IN SCHEMA`` covers: tables, views, materialized views,
# foreign tables, partitioned tables (PostgreSQL's objectsInSchemaToOids).
TABLE_KINDS = ("r", "v", "m", "f", "p")

_TABLE_DRIFT = """
SELECT relname, missing, extra FROM (
  SELECT c.relname,
         ARRAY(SELECT rd FROM unnest(%(readers)s::text[]) AS rd
               WHERE (%(every_table)s OR c.relacl IS NULL)
                 AND NOT EXISTS (SELECT FROM aclexplode(c.relacl) a
                                 WHERE a.grantee = to_regrole(quote_ident(rd)) AND a.privilege_type = 'SELECT')
               ORDER BY rd) AS missing,
         ARRAY(SELECT o FROM unnest(%(others)s::text[]) AS o
               WHERE EXISTS (SELECT FROM aclexplode(c.relacl) a WHERE a.grantee = to_regrole(quote_ident(o)))
               ORDER BY o) AS extra
  FROM pg_class c
  WHERE c.relnamespace = to_regnamespace(quote_ident(%(schema)s)) AND c.relkind = ANY(%(kinds)s::"char"[])
) t WHERE cardinality(missing) > 0 OR cardinality(extra) > 0 ORDER BY relname
"""


def table_grant_sql(
    cur, roles: Roles, *, former: bool, every_table: bool, schemas: Sequence[str] = LAYER_SCHEMAS
) -> list[tuple[str, str, str]]:
    """The tables whose grants differ from what the layer roles may do, and the statement fixing each.

    ``(schema, table, statement)``, read from the catalogue, one statement per table and role
    set: ``GRANT SELECT`` to the readers of its layer that hold no SELECT on it, ``REVOKE ALL``
    from the operator-SQL roles that may not read it (every operator role in ``atlas``, and the
    former single role when ``former``) yet hold some right on it. Nothing when every table is
    as it should be: a process starting finds nothing to write.

    The grants: every table lacking one when ``every_table`` (``manage.py warehouse_roles``, which
    converges after a change of ``LAYER_READS``, as ``GRANT … ON ALL TABLES`` did); otherwise only
    the tables no grant or revoke ever touched (``relacl`` NULL: created before the roles' default
    privileges existed). A table whose grants Atlas set on purpose is left as it is: a staging
    table being filled, or kept unreadable until its clear values are hashed
    (``stage_operator_select``), must not be opened to readers by a process starting beside it.
    """
    extra_roles = [*roles.operator_roles(), *([roles.sql] if former else [])]
    out: list[tuple[str, str, str]] = []
    for schema in (*schemas, META_SCHEMA):
        readers = list(roles.readers(schema)) if schema in LAYER_READS else []
        others = [r for r in extra_roles if r not in readers]
        rows = cur.execute(
            _TABLE_DRIFT,
            {"readers": readers, "others": others, "schema": schema, "kinds": list(TABLE_KINDS),
             "every_table": every_table},
        ).fetchall()
        for table, missing, extra in rows:
            name = f"{qi(schema)}.{qi(table)}"
            if extra:
                out.append((schema, table, f"REVOKE ALL ON {name} FROM {', '.join(qi(r) for r in extra)}"))
            if missing:
                out.append((schema, table, f"GRANT SELECT ON {name} TO {', '.join(qi(r) for r in missing)}"))
    return out


def missing_readers(cur, schema: str, table: str, readers: Sequence[str]) -> list[str]:
    """The roles of ``readers`` holding no SELECT grant on ``schema.table`` (read only: nothing written)."""
    row = cur.execute(
        "SELECT ARRAY(SELECT rd FROM unnest(%s::text[]) AS rd WHERE NOT EXISTS ("
        " SELECT FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = to_regclass(%s)"
        " AND a.grantee = to_regrole(quote_ident(rd)) AND a.privilege_type = 'SELECT') ORDER BY rd)",
        [list(readers), f"{qi(schema)}.{qi(table)}"],
    ).fetchone()
    return list(row[0]) if row else list(readers)


def change_table_grants(cur, schema: str, table: str, *statements: str) -> None:
    """Run one table's GRANTs and REVOKEs, the table locked first: one round trip, one transaction.

    In the caller's transaction; or, on an autocommit connection, in the implicit transaction
    PostgreSQL gives the statements of one query string (all or none; the lock held to its end).

    ``SHARE UPDATE EXCLUSIVE``: a publisher replacing, renaming, dropping or attaching the table
    (``ACCESS EXCLUSIVE``), another grant of the same table, ANALYZE: each waits for this
    transaction's lock, then reads the row this one wrote, instead of finding it updated under
    it ("tuple concurrently updated": a GRANT alone takes no lock, and an ``ON ALL TABLES``
    statement held every table's row this way until its transaction ended).
    """
    cur.execute("; ".join([f"LOCK TABLE ONLY {qi(schema)}.{qi(table)} IN SHARE UPDATE EXCLUSIVE MODE", *statements]))


def fix_table_grants(conn, cur, fixes: Sequence[tuple[str, str, str]]) -> int:
    """Apply :func:`table_grant_sql`'s fixes, each table in a transaction of its own; the number applied.

    One lock at a time (no lock-order deadlock with a publisher), held for one statement. A
    table dropped meanwhile (a publisher replaced it) is skipped: its successor got its grants
    when it was created or published.
    """
    import psycopg

    done = 0
    for schema, table, statement in fixes:
        def run(s=schema, t=table, st=statement) -> None:
            with conn.transaction():
                change_table_grants(cur, s, t, st)

        try:
            retry(run)
            done += 1
        except psycopg.errors.UndefinedTable:
            continue
    return done


def key_table_sql(roles: Roles, owner: str, table: str) -> list[str]:
    """The PII key table: owned by the key role, readable by it (and its members) only."""
    return [
        # PostgreSQL wants a table's new owner to have CREATE on its schema; only the owner is a member.
        f"GRANT USAGE, CREATE ON SCHEMA {qi(META_SCHEMA)} TO {qi(roles.key)}",
        f"ALTER TABLE {table} OWNER TO {qi(roles.key)}",
        f"REVOKE ALL ON {table} FROM PUBLIC",
        *(f"REVOKE ALL ON {table} FROM {qi(role)}" for role in roles.operator_roles()),
    ]


def retry(action: Callable[[], None], *, attempts: int = 10) -> None:
    """Run a catalogue change; another database on the server doing the same at once may collide.

    ``tuple concurrently updated`` (GRANT on a shared role) and the unique index of
    pg_authid are the collisions seen; they succeed on a second try.
    """
    import psycopg

    for attempt in range(attempts):
        try:
            action()
            return
        except psycopg.errors.InternalError_ as exc:
            if "concurrently" not in str(exc) or attempt == attempts - 1:
                raise
        except psycopg.errors.UniqueViolation:
            if attempt == attempts - 1:
                raise
        time.sleep(0.05 * (attempt + 1))


def apply(conn, cur, statements: Sequence[Any]) -> None:
    """Run ``statements`` (idempotent catalogue changes) in one transaction on ``conn``; all or none.

    One commit for all of them (autocommit committed, and flushed the WAL, once per statement:
    about 0.3 s of every process on a busy server). None of them may name a table (see
    :func:`grant_sql`): a transaction holding a table's catalogue row is what made publishers
    fail. A collision with another process changing the same shared rows at once (see
    :func:`retry`) rolls the transaction back and runs it again.
    """
    if not statements:
        return

    def run() -> None:
        with conn.transaction():
            for statement in statements:
                cur.execute(statement)

    retry(run)


# The catalogue state the schema-level setup reads and writes: the schemas' grants and owners,
# the owner's default privileges there, the side-effect functions' grants, the roles involved,
# their memberships, the key table's owner and grants. With the statements planned from it, its
# digest is the setup's stamp (:func:`setup_stamp`).
_SETUP_STATE = """
SELECT concat_ws(E'\n',
  (SELECT string_agg(n.nspname || ' ' || pg_get_userbyid(n.nspowner) || ' ' || coalesce(n.nspacl::text, '-'),
                     ';' ORDER BY n.nspname)
     FROM pg_namespace n WHERE n.nspname = ANY(%(schemas)s)),
  (SELECT string_agg(x, ';' ORDER BY x) FROM (
     SELECT pg_get_userbyid(d.defaclrole) || ' ' || n.nspname || ' ' || d.defaclobjtype::text || ' '
            || d.defaclacl::text AS x
     FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
     WHERE n.nspname = ANY(%(schemas)s)) AS t),
  (SELECT string_agg(p.oid::regprocedure::text || ' ' || coalesce(p.proacl::text, '-'), ';'
                     ORDER BY p.oid::regprocedure::text)
     FROM pg_proc p WHERE p.oid = ANY(%(functions)s::regprocedure[])),
  (SELECT string_agg(r.rolname || ' ' || r.rolsuper::text || r.rolcreaterole::text || r.rolcanlogin::text || r.rolinherit::text, ';'
                     ORDER BY r.rolname)
     FROM pg_roles r WHERE r.rolname = ANY(%(roles)s)),
  (SELECT string_agg(x, ';' ORDER BY x) FROM (
     SELECT pg_get_userbyid(m.member) || '>' || pg_get_userbyid(m.roleid) AS x FROM pg_auth_members m
     WHERE pg_get_userbyid(m.member) = ANY(%(roles)s) OR pg_get_userbyid(m.roleid) = ANY(%(roles)s)) AS t),
  (SELECT pg_get_userbyid(c.relowner) || ' ' || coalesce(c.relacl::text, '-') FROM pg_class c
     WHERE c.oid = to_regclass(%(key_table)s))
)
"""

STAMP_PREFIX = "Atlas operator-SQL grants applied: "


def setup_stamp(cur, statements: Sequence[str], roles: Roles, owner: str, key_table: str) -> str:
    """A digest of the setup's planned statements and of the catalogue state they act on.

    Stored after the statements are applied (:func:`store_stamp`), with the plan and the state
    read again in the same transaction. A process finding the same digest would plan the same
    statements against the same grants, owners, roles and memberships, so applying them would
    change nothing: it skips them. Any difference (a grant changed by hand, a role dropped, a
    release planning other statements, another owner) gives another digest, and the setup runs.
    """
    import hashlib

    me = cur.execute("SELECT current_user").fetchone()[0]
    state = cur.execute(_SETUP_STATE, {
        "schemas": [*LAYER_SCHEMAS, META_SCHEMA, "public"],
        "functions": [f"pg_catalog.{fn}" for fn in SIDE_EFFECT_FUNCTIONS],
        "roles": sorted({*roles.operator_roles(), roles.key, roles.sql, owner, me}),
        "key_table": key_table,
    }).fetchone()[0]
    return hashlib.sha256("\n".join([*statements, "--", state or ""]).encode()).hexdigest()


def stored_stamp(cur) -> str | None:
    """The stamp the last complete setup stored (the comment of the ``atlas`` schema), if any."""
    row = cur.execute(
        "SELECT obj_description(to_regnamespace(%s), 'pg_namespace')", [qi(META_SCHEMA)]
    ).fetchone()
    text = row[0] if row else None
    return text[len(STAMP_PREFIX):] if text and text.startswith(STAMP_PREFIX) else None


def store_stamp_sql(stamp: str) -> str:
    return f"COMMENT ON SCHEMA {qi(META_SCHEMA)} IS {lit(STAMP_PREFIX + stamp)}"


def isolate_metadata_database(cur, roles: Roles) -> str:
    """Make the database ``cur`` is connected to (Django's metadata) unreachable by operator SQL.

    For the production default, metadata and warehouse in separate databases: the
    operator-SQL roles then cannot even connect to the database holding users, sessions,
    API token digests and the audit log. PUBLIC loses CONNECT and TEMPORARY; the role
    ``cur`` logs in as (Django's) keeps them. Returns the database's name.
    """
    cur.execute("SELECT current_database(), current_user")
    database, me = cur.fetchone()
    cur.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [[roles.sql, *roles.operator_roles()]])
    existing = [row[0] for row in cur.fetchall()]
    db = qi(database)
    for statement in (
        f"REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC",
        f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {qi(me)}",
        *(f"REVOKE ALL ON DATABASE {db} FROM {qi(role)}" for role in existing),
    ):
        cur.execute(statement)
    return database
