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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import duckdb
import psycopg
from django.conf import settings
from psycopg import sql as pgsql

from . import pgcopy
from .base import (
    BATCH_CONSTANT_COLUMNS,
    META_SCHEMA,
    Cursor,
    FileFormat,
    FileLayout,
    LoadResult,
    StagedBatch,
    Warehouse,
    WarehouseError,
)
from .duckdb import parser_config
from .filereader import IngestError, plan_scan

_CHUNK = 1 << 20


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
    row_locator = ("tableoid", "ctid")

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
        layout: FileLayout | None = None,
    ) -> LoadResult:
        """Stream the file into a staging table that is ready to attach as the batch's partition.

        A CSV file without quote characters (which COPY reads exactly as DuckDB
        does) goes straight to COPY, in parts loaded side by side (``pgcopy``);
        any other file, or one COPY refuses, is parsed by DuckDB and streamed to
        COPY as below.

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
        direct = self._direct_copy(path, fmt, options, layout, schema, target, staging, batch_id, source_label)
        if direct is not None:
            return direct
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
                raise IngestError(f"{path}: loading into PostgreSQL failed: {str(exc).strip()}") from exc
            rejects = scan.collect_rejects(duck)
        finally:
            duck.close()
        return LoadResult(rows=rows, columns=scan.columns, rejects=rejects)

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
    ) -> LoadResult | None:
        """The load by direct COPY (see ``pgcopy``), or None when the file must go through DuckDB."""
        if fmt is not FileFormat.CSV or layout is None or not settings.ATLAS_INGEST_DIRECT_COPY:
            return None
        max_line = settings.ATLAS_INGEST_MAX_LINE_BYTES
        columns = plan_scan(path, fmt, options, tag="load", max_line_bytes=max_line, duck=None).columns
        plan = pgcopy.plan(
            path,
            options,
            layout,
            columns=columns,
            streams=settings.ATLAS_INGEST_COPY_STREAMS,
            part_bytes=settings.ATLAS_INGEST_COPY_PART_BYTES,
            max_line_bytes=max_line,
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
        tmpdir = tempfile.mkdtemp(prefix="atlas-load-")
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
        return f"SELECT * FROM {self.table(schema, table)} TABLESAMPLE BERNOULLI ({percent:.6f})"

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

    def publish_batches(self, *, schema: str, target: str, batches: list[StagedBatch], replace: bool) -> None:
        shape = self.columns(schema, target)
        with self.transaction() as cur:
            if not self._is_partitioned(cur, schema, target):
                raise WarehouseError(f"{schema}.{target} is not a partitioned Explore table.")
            if replace:
                for part_schema, part in self._partitions(cur, schema, target):
                    cur.execute(f"DROP TABLE {self.table(part_schema, part)}")
            for i, batch in enumerate(batches):
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
                self._record_batch(cur, batch, replace=replace and i == 0)
