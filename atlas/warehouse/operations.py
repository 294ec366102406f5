"""How to say it on this engine (``wh.ops``), the way Django's ``DatabaseOperations`` does.

The apps build their set-based SQL from these pieces and never name an engine:
retention's expiry (UTC comparisons, lenient timestamp parsing, batch
partitions), privacy's key indexes, the export of a source database's query.
An engine derives from :class:`BaseOperations` and implements what is abstract;
an engine missing a piece fails when its ``ops`` is first built, not halfway
through a statement.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from .base import META_SCHEMA, Cursor, Warehouse
from .errors import NotSupported

if TYPE_CHECKING:
    from collections.abc import Sequence


class BaseOperations(abc.ABC):
    """Engine-specific SQL; ``self.wh`` is the backend it writes for."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.wh = warehouse

    # --- time -----------------------------------------------------------------------
    @abc.abstractmethod
    def use_utc(self, cur: Cursor) -> None:
        """Compare and cast timestamps in UTC on this cursor (inside a transaction)."""

    @abc.abstractmethod
    def try_cast_timestamptz(self, expr: str) -> str:
        """SQL casting text ``expr`` to a timestamp with time zone, NULL where it does not parse."""

    def prepare_try_cast(self) -> None:  # noqa: B027 - optional: nothing to create by default
        """Create what ``try_cast_timestamptz`` needs (a function); idempotent, cheap to repeat."""

    # --- text -----------------------------------------------------------------------
    @abc.abstractmethod
    def regex_full_match(self, expr: str, pattern: str) -> str:
        """SQL true where ``expr`` matches the (trusted, Atlas-written) ``pattern`` as a whole."""

    def insert_pairs_sql(self, table: str) -> str:
        """``INSERT`` into the two-text-column ``table`` of the pairs zipped from two bound arrays (``%s``, ``%s``)."""
        raise NotSupported(f"The {self.wh.vendor} warehouse binds no arrays (it overrides Warehouse.replace_values).")

    # --- deleting, locking ---------------------------------------------------------------
    @abc.abstractmethod
    def delete(self, cur: Cursor, sql: str, params: Sequence[Any]) -> int:
        """Run a ``DELETE``; the rows it removed."""

    def lock_for_maintenance(self, cur: Cursor, schema: str, table: str) -> None:  # noqa: B027 - optional
        """Serialise maintenance (expiry) of one table, within the transaction; readers and loads go on."""

    # --- batch partitions (``features.partitioned_explore_tables``) ---------------------
    def batch_partitions(self, cur: Cursor, schema: str, table: str) -> list[tuple[str, str]] | None:
        """(schema, name) of the table's batch partitions by name, or None when it is not partitioned."""
        return None

    def drop_partition(self, cur: Cursor, schema: str, table: str, part_schema: str, part: str) -> None:
        """Detach a partition from its table and drop it (within the caller's transaction)."""
        raise NotSupported(f"The {self.wh.vendor} warehouse has no partitions (features.partitioned_explore_tables).")

    # --- indexes (``features.expression_indexes``) ---------------------------------------------
    def create_expression_index(self, schema: str, table: str, name: str, expr: str) -> None:
        """An index named ``name`` on ``expr`` over ``schema.table``, unless it exists."""
        with self.wh.cursor() as cur:
            cur.execute(f"CREATE INDEX IF NOT EXISTS {self.wh.quote(name)} ON {self.wh.table(schema, table)} (({expr}))")

    # --- sources: a query on another database of this engine ------------------------------------
    @classmethod
    def export_query_csv(cls, url: str, query: str, path: str, params: Sequence[Any] | None = None) -> None:
        """Run ``query`` read-only on the database at ``url`` and write its rows to ``path`` as CSV with a header.

        ``params``: values the driver binds (``registry.source_sql(url)`` says how ``query`` marks them).
        """
        raise NotSupported(f"{cls.__name__} cannot read a source database; choose a database of a supported engine.")

    @classmethod
    def source_rows(cls, url: str, query: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Columns and rows of a small ``query`` on the source database at ``url``, read-only."""
        raise NotSupported(f"{cls.__name__} cannot read a source database; choose a database of a supported engine.")

    @staticmethod
    def url_path(url: str) -> str:
        """What follows ``scheme://`` in a URL (a file path for an embedded engine)."""
        return url.split("://", 1)[1] if "://" in url else url


class DuckDBOperations(BaseOperations):
    def use_utc(self, cur: Cursor) -> None:
        # A DuckDB cursor is its own connection: the setting stays on it.
        cur.execute("SET TimeZone = 'UTC'")

    def try_cast_timestamptz(self, expr: str) -> str:
        return f"TRY_CAST({expr} AS TIMESTAMPTZ)"

    def regex_full_match(self, expr: str, pattern: str) -> str:
        return f"regexp_full_match({expr}, {self.wh.literal(pattern)})"

    def insert_pairs_sql(self, table: str) -> str:
        return f"INSERT INTO {table} SELECT unnest(%s::VARCHAR[]), unnest(%s::VARCHAR[])"  # zipped: same length

    def delete(self, cur: Cursor, sql: str, params: Sequence[Any]) -> int:
        row = cur.execute(sql, params).fetchone()  # DuckDB answers a DELETE with its count
        return int(row[0]) if row else 0

    @classmethod
    def export_query_csv(cls, url: str, query: str, path: str, params: Sequence[Any] | None = None) -> None:
        import duckdb

        con = duckdb.connect(cls.url_path(url), read_only=True)
        try:
            con.execute(f"COPY ({query}) TO {Warehouse.literal(path)} (FORMAT csv, HEADER true)", list(params or ()) or None)
        finally:
            con.close()

    @classmethod
    def source_rows(cls, url: str, query: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        import duckdb

        con = duckdb.connect(cls.url_path(url), read_only=True)
        try:
            cur = con.execute(query, list(params or ()) or None)
            return [d[0] for d in cur.description or []], cur.fetchall()
        finally:
            con.close()


TRY_CAST_FUNCTION = "retention_try_timestamptz"


def _bound(params: Sequence[Any] | None) -> list | None:
    return None if params is None else list(params)


class PostgresOperations(BaseOperations):
    def use_utc(self, cur: Cursor) -> None:
        cur.execute("SET LOCAL TimeZone = 'UTC'")

    def try_cast_timestamptz(self, expr: str) -> str:
        return f"{self.wh.quote(META_SCHEMA)}.{TRY_CAST_FUNCTION}({expr})"

    def insert_pairs_sql(self, table: str) -> str:
        return f"INSERT INTO {table} SELECT * FROM unnest(%s::text[], %s::text[])"

    def prepare_try_cast(self) -> None:
        # PostgreSQL 15 has no pg_input_is_valid: a small function catches the cast's error.
        with self.wh.cursor() as cur:
            exists = cur.execute(
                "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = %s AND p.proname = %s",
                [META_SCHEMA, TRY_CAST_FUNCTION],
            ).fetchone()
            if exists:
                return
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.wh.quote(META_SCHEMA)}")
            cur.execute(
                f"CREATE OR REPLACE FUNCTION {self.wh.quote(META_SCHEMA)}.{TRY_CAST_FUNCTION}(v text)"
                " RETURNS timestamptz LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$"
                " BEGIN RETURN v::timestamptz; EXCEPTION WHEN others THEN RETURN NULL; END $$"
            )

    def regex_full_match(self, expr: str, pattern: str) -> str:
        return f"({expr} ~ {self.wh.literal(f'^(?:{pattern})$')})"

    def delete(self, cur: Cursor, sql: str, params: Sequence[Any]) -> int:
        cur.execute(sql, params)
        return max(int(cur.raw.rowcount or 0), 0)

    def lock_for_maintenance(self, cur: Cursor, schema: str, table: str) -> None:
        # Conflicts with itself (a second expiry waits, then finds the partitions gone) and with
        # ATTACH PARTITION, not with SELECT or INSERT.
        cur.execute(f"LOCK TABLE {self.wh.table(schema, table)} IN SHARE UPDATE EXCLUSIVE MODE")

    def batch_partitions(self, cur: Cursor, schema: str, table: str) -> list[tuple[str, str]] | None:
        if not self.wh._is_partitioned(cur, schema, table):
            return None
        return sorted((tuple(p) for p in self.wh._partitions(cur, schema, table)), key=lambda p: p[1])

    def drop_partition(self, cur: Cursor, schema: str, table: str, part_schema: str, part: str) -> None:
        cur.execute(f"ALTER TABLE {self.wh.table(schema, table)} DETACH PARTITION {self.wh.table(part_schema, part)}")
        cur.execute(f"DROP TABLE {self.wh.table(part_schema, part)}")

    @classmethod
    def export_query_csv(cls, url: str, query: str, path: str, params: Sequence[Any] | None = None) -> None:
        import psycopg

        with psycopg.connect(url) as conn, conn.cursor() as cur, open(path, "wb") as out:
            conn.read_only = True
            cur.execute("SET TIME ZONE 'UTC'")  # timestamptz as text in UTC, whatever the server's zone
            # COPY takes no server-side parameters: psycopg binds them client-side, quoted by the driver.
            # Parameters given (even none): the query's % are doubled (registry.SourceSQL.text).
            with cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", _bound(params)) as copy:
                for chunk in copy:
                    out.write(chunk)

    @classmethod
    def source_rows(cls, url: str, query: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        import psycopg

        with psycopg.connect(url) as conn, conn.cursor() as cur:
            conn.read_only = True
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(query, _bound(params))
            return [d.name for d in cur.description or []], cur.fetchall()
