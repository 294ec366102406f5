"""The embedded warehouse: one DuckDB file, shared by the threads of one process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from django.conf import settings

from .base import (
    LOAD_COLUMNS,
    Cursor,
    FileFormat,
    FileLayout,
    LoadResult,
    Warehouse,
    WarehouseError,
)
from .filereader import IngestError, plan_scan


def duckdb_config() -> dict[str, str]:
    """Bounded memory: DuckDB spills to disk past the limit instead of growing."""
    tmp = Path(settings.VAR_DIR) / "tmp" / "duckdb"
    tmp.mkdir(parents=True, exist_ok=True)
    return {"memory_limit": settings.ATLAS_DUCKDB_MEMORY_LIMIT, "temp_directory": str(tmp)}


def parser_config() -> dict[str, Any]:
    """The in-memory DuckDB that parses files for the PostgreSQL warehouse.

    File order is kept (``_row_number`` follows it); threads and memory are
    bounded so that parsing a bigger file does not take more memory, and the
    PostgreSQL backend that receives the rows keeps a CPU of its own.
    """
    return {
        **duckdb_config(),
        "preserve_insertion_order": True,
        "threads": settings.ATLAS_INGEST_PARSER_THREADS,
        "memory_limit": settings.ATLAS_INGEST_PARSER_MEMORY_LIMIT,
    }


class DuckDBWarehouse(Warehouse):
    vendor = "duckdb"
    dialect = "duckdb"
    row_locator = ("rowid",)

    def regex_match(self, expr: str) -> str:
        return f"regexp_matches({expr}, %s)"

    def __init__(self, path: str) -> None:
        self.path = path
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._con = duckdb.connect(self.path, config=duckdb_config())
                except duckdb.IOException as exc:
                    raise WarehouseError(
                        f"Cannot open the DuckDB warehouse {self.path}: {exc}. The embedded warehouse"
                        " serves one process at a time; stop the other Atlas process (for example the"
                        " demo server) or use PostgreSQL (WAREHOUSE_URL)."
                    ) from exc
            return self._con

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        raw = self._connection().cursor()
        try:
            yield Cursor(raw, "qmark")
        except duckdb.Error as exc:
            raise WarehouseError(str(exc)) from exc
        finally:
            raw.close()

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        raw = self._connection().cursor()
        raw.execute("BEGIN TRANSACTION")
        try:
            yield Cursor(raw, "qmark")
        except BaseException as exc:
            raw.execute("ROLLBACK")
            if isinstance(exc, duckdb.Error):
                raise WarehouseError(str(exc)) from exc
            raise
        else:
            raw.execute("COMMIT")
        finally:
            raw.close()

    def _row_sample_sql(self, schema: str, table: str, rows: int, total: int) -> str:
        return f"SELECT * FROM {self.table(schema, table)} USING SAMPLE {int(rows)} ROWS"

    def _create_pii_hmac_function(self) -> None:
        # DuckDB has sha256 (hex) but no hmac: HMAC-SHA256 from its definition, as a macro.
        with self.cursor() as cur:
            cur.execute(
                f"CREATE OR REPLACE MACRO {self.quote('atlas')}.{self.PII_HMAC_FUNCTION}(v, ipad, opad) AS"
                " sha256(opad || unhex(sha256(ipad || encode(CAST(v AS VARCHAR)))))"
            )

    def progress(self) -> float | None:
        """Share (0-100) of the running query done, if one runs."""
        con = self._con
        if con is None:
            return None
        try:
            value = con.query_progress()
        except duckdb.Error:
            return None
        return value if value >= 0 else None

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
        layout: FileLayout | None = None,  # noqa: ARG002 - DuckDB's reader parallelises on its own
    ) -> LoadResult:
        """Parse the file into a staging table shaped exactly like ``target``.

        Same shape, so that a first or replacing load is published by renaming
        the staging table into place (see ``publish_batches``), not copied.
        """
        stg = self.table(schema, staging)
        with self.cursor() as cur:
            scan = plan_scan(
                path, fmt, options, tag=staging, max_line_bytes=settings.ATLAS_INGEST_MAX_LINE_BYTES, duck=cur.raw
            )
            self.ensure_explore_table(schema, target, scan.columns)
            cur.execute(f"DROP TABLE IF EXISTS {stg}")
            cur.execute(f"CREATE TABLE {stg} ({self.column_defs(schema, target)})")
            names = ", ".join(self.quote(c) for c in [*scan.columns, *LOAD_COLUMNS])
            try:
                rows = cur.raw.execute(
                    f"INSERT INTO {stg} ({names}) SELECT *, {self.literal(batch_id)},"
                    f" current_timestamp, {self.literal(source_label)}, row_number() OVER ()"
                    f" FROM ({scan.select_sql})"
                ).fetchone()[0]
            except duckdb.Error as exc:
                raise IngestError(f"{path}: {exc}") from exc
            rejects = scan.collect_rejects(cur.raw)
        return LoadResult(rows=int(rows), columns=scan.columns, rejects=rejects)
