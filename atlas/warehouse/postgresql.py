"""The PostgreSQL warehouse.

Loads stream through ``COPY``: DuckDB parses the file (see ``filereader``) and
writes CSV into a FIFO while this process relays it to ``COPY ... FROM STDIN``,
so parsing and loading run side by side in bounded memory. Explore tables are
partitioned by batch: publishing a batch is ``ATTACH PARTITION`` — no second
pass over the rows, and readers never see half a batch.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import duckdb
import psycopg
from django.conf import settings
from psycopg import sql as pgsql

from .base import (
    META_SCHEMA,
    Cursor,
    FileFormat,
    LoadResult,
    StagedBatch,
    Warehouse,
    WarehouseError,
)
from .duckdb import duckdb_config
from .filereader import IngestError, plan_scan

_CHUNK = 1 << 20


def conninfo_from_django(db: dict[str, Any]) -> str:
    """A libpq URL for a Django PostgreSQL database settings dict."""
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    url = f"postgresql://{auth}{quote(host, safe='')}{port}/{quote(db['NAME'], safe='')}"
    return url


class PostgresWarehouse(Warehouse):
    vendor = "postgresql"
    dialect = "postgres"
    row_locator = "ctid"

    def regex_match(self, expr: str) -> str:
        return f"({expr} ~ %s)"

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._local = threading.local()  # one connection per thread
        self._all: list[psycopg.Connection] = []
        self._all_lock = threading.Lock()

    def _conn(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            try:
                conn = psycopg.connect(self.conninfo, autocommit=True)
            except psycopg.OperationalError as exc:
                raise WarehouseError(f"Cannot connect to the PostgreSQL warehouse: {exc}") from exc
            self._local.conn = conn
            with self._all_lock:
                self._all = [c for c in self._all if not c.closed] + [conn]
        return conn

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
            raise WarehouseError(str(exc).strip()) from exc

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        conn = self._conn()
        try:
            with conn.transaction(), conn.cursor() as raw:
                yield Cursor(raw)
        except psycopg.Error as exc:
            raise WarehouseError(str(exc).strip()) from exc

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
    ) -> LoadResult:
        duck = duckdb.connect(config={**duckdb_config(), "preserve_insertion_order": True})
        try:
            scan = plan_scan(
                path, fmt, options, tag="load", max_line_bytes=settings.ATLAS_INGEST_MAX_LINE_BYTES, duck=duck
            )
            self.ensure_explore_table(schema, target, scan.columns)
            seq = self.table(META_SCHEMA, f"seq_{staging}"[:63])
            stg, tgt = self.table(schema, staging), self.table(schema, target)
            with self.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {stg}")
                cur.execute(f"DROP SEQUENCE IF EXISTS {seq}")
                cur.execute(f"CREATE SEQUENCE {seq}")
                cur.execute(f"CREATE TABLE {stg} (LIKE {tgt})")
                cur.execute(
                    f"ALTER TABLE {stg} ALTER COLUMN _batch_id SET DEFAULT {self.literal(batch_id)},"
                    f" ALTER COLUMN _ingested_at SET DEFAULT now(),"
                    f" ALTER COLUMN _source SET DEFAULT {self.literal(source_label)},"
                    f" ALTER COLUMN _row_number SET DEFAULT nextval({self.literal(seq)}),"
                    f" ADD CONSTRAINT {self.quote('batch_' + batch_id)} CHECK (_batch_id = {self.literal(batch_id)})"
                )
            try:
                rows = self._copy_through_fifo(duck, scan.select_sql, stg, scan.columns, path)
                rejects = scan.collect_rejects(duck)
            finally:
                with self.cursor() as cur:
                    cur.execute(f"ALTER TABLE {stg} ALTER COLUMN _row_number DROP DEFAULT")
                    cur.execute(f"DROP SEQUENCE {seq}")
        finally:
            duck.close()
        return LoadResult(rows=rows, columns=scan.columns, rejects=rejects)

    def _copy_through_fifo(self, duck: Any, select_sql: str, stg: str, columns: list[str], path: str) -> int:
        tmpdir = tempfile.mkdtemp(prefix="atlas-load-")
        fifo = os.path.join(tmpdir, "rows.csv")
        os.mkfifo(fifo)
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                duck.execute(f"COPY ({select_sql}) TO {self.literal(fifo)} (FORMAT csv, HEADER false)")
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
        copy_sql = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            pgsql.SQL(stg), pgsql.SQL(", ").join(pgsql.Identifier(c) for c in columns)
        )
        conn = self._conn()
        try:
            with open(fifo, "rb") as reader:
                try:
                    with conn.cursor() as cur:
                        with cur.copy(copy_sql) as copy:
                            while chunk := reader.read(_CHUNK):
                                copy.write(chunk)
                            if failure:
                                raise IngestError(f"{path}: {failure[0]}")
                        rows = cur.rowcount
                except BaseException:
                    duck.interrupt()
                    while reader.read(_CHUNK):
                        pass
                    raise
        except psycopg.Error as exc:
            raise IngestError(f"{path}: loading into PostgreSQL failed: {str(exc).strip()}") from exc
        finally:
            producer.join()
            os.unlink(fifo)
            os.rmdir(tmpdir)
        if failure:
            raise IngestError(f"{path}: {failure[0]}")
        return int(rows)

    def _row_sample_sql(self, schema: str, table: str, rows: int, total: int) -> str:
        percent = min(100.0, 100.0 * rows * 1.2 / max(total, 1))
        return f"SELECT * FROM {self.table(schema, table)} TABLESAMPLE BERNOULLI ({percent:.6f})"

    def _create_pii_hmac_function(self) -> None:
        # Built-in sha256 (PostgreSQL 11+), no pgcrypto: a one-expression SQL function
        # that the planner inlines, so the pads' subqueries run once per statement.
        with self.cursor() as cur:
            cur.execute(
                f"CREATE OR REPLACE FUNCTION {self.quote(META_SCHEMA)}.{self.PII_HMAC_FUNCTION}"
                "(v text, ipad bytea, opad bytea) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS"
                " $$ SELECT encode(sha256(opad || sha256(ipad || convert_to(v, 'UTF8'))), 'hex') $$"
            )

    def publish_batches(self, *, schema: str, target: str, batches: list[StagedBatch], replace: bool) -> None:
        with self.transaction() as cur:
            if not self._is_partitioned(cur, schema, target):
                raise WarehouseError(f"{schema}.{target} is not a partitioned Explore table.")
            if replace:
                for part_schema, part in self._partitions(cur, schema, target):
                    cur.execute(f"DROP TABLE {self.table(part_schema, part)}")
            for i, batch in enumerate(batches):
                cur.execute(
                    f"ALTER TABLE {self.table(schema, target)} ATTACH PARTITION {self.table(schema, batch.staging)}"
                    f" FOR VALUES IN ({self.literal(batch.batch_id)})"
                )
                self._record_batch(cur, batch, replace=replace and i == 0)
