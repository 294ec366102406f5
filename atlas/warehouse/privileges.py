"""Least privilege in the PostgreSQL warehouse: the roles, and the grants that keep them apart.

Three roles, their names from settings:

* the **owner** (``ATLAS_WAREHOUSE_OWNER_ROLE``, by default the role the warehouse URL
  logs in as): creates, loads, publishes and drops tables — Atlas's own SQL;
* the **operator-SQL role** (``ATLAS_WAREHOUSE_SQL_ROLE``, ``atlas_sql``): runs the SQL
  operators write (refine/aggregate SELECTs, custom check expressions, previews). It
  may read the tables of the layer schemas and, for one statement, insert into the one
  staging table granted to it; it has no access to the ``atlas`` schema (the batch
  ledger, the PII key), to ``public`` (Django's tables when metadata and warehouse
  share a database) or to anything else, and it is a member of no role;
* the **key role** (``ATLAS_WAREHOUSE_KEY_ROLE``, ``atlas_key``, NOLOGIN): owns the
  table of the PII hash key; the owner is its member and applies hash policies.

Why the operator-SQL role logs in on a connection of its own instead of being taken on
with ``SET LOCAL ROLE`` by the owner's connection: after ``SET ROLE``, PostgreSQL still
lets a statement switch to any role the *session* user belongs to — ``SELECT
set_config('role', 'owner', true), query_to_xml('SELECT * FROM atlas.pii_keys', ...)``
would read the key in a single SELECT. A session whose login role is ``atlas_sql`` can
only become roles ``atlas_sql`` belongs to: none.

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


@dataclass(frozen=True)
class Roles:
    owner: str  # "" : the role the warehouse connection logs in as
    sql: str
    sql_password: str
    key: str


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
    """The grants of the operator-SQL role on the layer schemas (idempotent), and none elsewhere."""
    sql = qi(roles.sql)
    out = [
        f"REVOKE ALL ON SCHEMA {qi(META_SCHEMA)} FROM PUBLIC",
        f"REVOKE ALL ON SCHEMA {qi(META_SCHEMA)} FROM {sql}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {qi(META_SCHEMA)} FROM {sql}",
    ]
    for schema in schemas:
        s = qi(schema)
        out += [
            f"REVOKE CREATE ON SCHEMA {s} FROM PUBLIC",
            f"GRANT USAGE ON SCHEMA {s} TO {sql}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {sql}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {qi(owner)} IN SCHEMA {s} GRANT SELECT ON TABLES TO {sql}",
        ]
    return out


def key_table_sql(roles: Roles, owner: str, table: str) -> list[str]:
    """The PII key table: owned by the key role, readable by it (and its members) only."""
    return [
        # PostgreSQL wants a table's new owner to have CREATE on its schema; only the owner is a member.
        f"GRANT USAGE, CREATE ON SCHEMA {qi(META_SCHEMA)} TO {qi(roles.key)}",
        f"ALTER TABLE {table} OWNER TO {qi(roles.key)}",
        f"REVOKE ALL ON {table} FROM PUBLIC",
        f"REVOKE ALL ON {table} FROM {qi(roles.sql)}",
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
