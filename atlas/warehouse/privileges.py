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
    """The grants of the layer roles (idempotent): each reads its ``LAYER_READS``, nothing else.

    What a layer role may not read is revoked too (tables, schema usage, default
    privileges): running this again after a change converges on the same grants. (The
    former single role's grants are taken back by ``former_role_sql``.)
    """
    out = [f"REVOKE ALL ON SCHEMA {qi(META_SCHEMA)} FROM PUBLIC"]
    for role in roles.operator_roles():
        out += [
            f"REVOKE ALL ON SCHEMA {qi(META_SCHEMA)} FROM {qi(role)}",
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {qi(META_SCHEMA)} FROM {qi(role)}",
        ]
    for schema in schemas:
        s = qi(schema)
        out.append(f"REVOKE CREATE ON SCHEMA {s} FROM PUBLIC")
        readers = set(roles.readers(schema))
        for role in roles.operator_roles():
            r = qi(role)
            if role in readers:
                out += [
                    f"GRANT USAGE ON SCHEMA {s} TO {r}",
                    f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}",
                    f"ALTER DEFAULT PRIVILEGES FOR ROLE {qi(owner)} IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}",
                ]
            else:
                out += revoke_schema_sql(role, owner, schema)
    return out


def revoke_schema_sql(role: str, owner: str, schema: str) -> list[str]:
    """Take back what ``role`` may do in ``schema``: its tables, the schema, the default grants."""
    s, r = qi(schema), qi(role)
    return [
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {qi(owner)} IN SCHEMA {s} REVOKE ALL ON TABLES FROM {r}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
        f"REVOKE ALL ON SCHEMA {s} FROM {r}",
    ]


def former_role_sql(roles: Roles, owner: str, schemas: Sequence[str] = LAYER_SCHEMAS) -> list[str]:
    """Take back from the former single operator-SQL role (``roles.sql``) every read it had here."""
    out = [
        f"REVOKE ALL ON SCHEMA {qi(META_SCHEMA)} FROM {qi(roles.sql)}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {qi(META_SCHEMA)} FROM {qi(roles.sql)}",
    ]
    for schema in schemas:
        out += revoke_schema_sql(roles.sql, owner, schema)
    return out


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
