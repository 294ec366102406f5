"""The embedded warehouse: one DuckDB file, shared by the threads of one process."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from django.conf import settings

from atlas.sql.transpile import ColumnTypes, to_duckdb

from . import interrupts, privileges
from .base import (
    BATCH_CONSTANT_COLUMNS,
    PLANNING_INSTANT,
    Column,
    Cursor,
    FileFormat,
    FileLayout,
    LoadResult,
    StreamedFile,
    Warehouse,
    WarehouseError,
    hide_values,
)
from .features import DuckDBFeatures
from .filereader import IngestError, plan_scan
from .operations import DuckDBOperations
from .quality_ops import DuckDBQualityOps

# Errors about a value of the data: their messages quote it (see ``hide_values``).
_DATA_ERRORS = (
    duckdb.ConversionException,
    duckdb.InvalidInputException,
    duckdb.OutOfRangeException,
    duckdb.ConstraintException,
)


def duckdb_config() -> dict[str, Any]:
    """Bounded memory: DuckDB spills to disk past the limit instead of growing.

    Insertion order kept (DuckDB's default, pinned: the configuration is locked after): an
    ``INSERT … SELECT`` writes rows in the order the SELECT yields them, even when its
    threads parse the file side by side, which ``load_file``'s row numbers rely on.
    """
    tmp = Path(settings.VAR_DIR) / "tmp" / "duckdb"
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        "memory_limit": settings.ATLAS_DUCKDB_MEMORY_LIMIT,
        "temp_directory": str(tmp),
        "preserve_insertion_order": True,
    }


def allowed_directories() -> list[str]:
    """The directories the embedded warehouse may read files in: what Atlas itself loads, no more.

    Path sources' roots (``ATLAS_DATA_ROOTS``), uploads (``MEDIA_ROOT``) and Atlas's own
    temporary files (``VAR_DIR/tmp``: downloads, query exports, DuckDB's spill). Never
    ``VAR_DIR`` itself: it holds the metadata database and the warehouse file.
    """
    var = Path(settings.VAR_DIR)
    roots = [
        *getattr(settings, "ATLAS_DATA_ROOTS", [var / "data", settings.ATLAS_DEMO_DIR]),
        settings.MEDIA_ROOT,
        var / "tmp",
    ]
    out: list[str] = []
    for root in roots:
        text = str(root).strip()
        if not text:
            continue
        for variant in (os.path.abspath(text), os.path.realpath(text)):
            entry = variant.rstrip(os.sep) + os.sep
            if entry not in out:
                out.append(entry)
    return out


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Close the embedded warehouse to everything but its own file and Atlas's directories.

    External access off except ``allowed_directories`` (no ``FROM '/etc/passwd'``, no
    ``read_csv`` of a secret, no ``ATTACH`` of another database, no ``COPY TO`` outside
    them), no extension installed or loaded on demand, no persistent secrets, no
    Python-object replacement scans; then the configuration is locked, so a statement
    cannot ``SET`` any of it back. The time zone is pinned first (Atlas's TIME_ZONE):
    once locked, ``SET TimeZone`` is only accepted when it changes nothing.
    """
    con.execute(f"SET TimeZone = {Warehouse.literal(settings.TIME_ZONE)}")
    con.execute("SET python_enable_replacements = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET allow_community_extensions = false")
    con.execute("SET allow_persistent_secrets = false")
    dirs = "[" + ", ".join(Warehouse.literal(d) for d in allowed_directories()) + "]"
    con.execute(f"SET allowed_directories = {dirs}")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


_SET = re.compile(r"^\s*SET\s+(?:SESSION\s+)?([A-Za-z_]+)\s*(?:=|TO)\s*'([^']*)'\s*;?\s*$", re.IGNORECASE)


# The same, for Atlas's own statements: constraint, conversion and range errors only (an
# invalid-input error of the owner's SQL is about the statement, e.g. the locked configuration,
# and its quoted option names must stay readable).
_OWNER_DATA_ERRORS = (duckdb.ConversionException, duckdb.OutOfRangeException, duckdb.ConstraintException)


def _error_message(exc: duckdb.Error, *, operator: bool = False) -> str:
    """The message of a DuckDB error for a WarehouseError (operator SQL, or Atlas's own).

    Errors about a value of the data (e.g. ``Duplicate key "email: ann@example.com"``,
    ``Could not convert string 'ann@example.com' to INT32``) keep what went wrong and lose
    the values.
    """
    data = _DATA_ERRORS if operator else _OWNER_DATA_ERRORS
    return hide_values(str(exc)) if isinstance(exc, data) else str(exc)


class LockedCursor(Cursor):
    """A cursor on the locked warehouse: a ``SET`` that changes nothing is a no-op, not an error.

    Code written before the lock (``SET TimeZone = 'UTC'`` in retention) keeps
    working where the locked value is already the one asked for; any real change
    is still refused by DuckDB.
    """

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Cursor:
        match = None if params else _SET.match(sql)
        if match:
            row = self.raw.execute("SELECT current_setting(?)", [match.group(1)]).fetchone()
            if row and _same_setting(match.group(1), str(row[0]), match.group(2)):
                return self
        return super().execute(sql, params)


def _same_setting(name: str, current: str, wanted: str) -> bool:
    if name.lower() == "timezone":
        utc = {"utc", "etc/utc", "gmt", "etc/gmt", "zulu", "etc/zulu"}
        return current.lower() == wanted.lower() or (current.lower() in utc and wanted.lower() in utc)
    return current == wanted


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


class StatementTimer:
    """One thread interrupting the cursors that run past the statement timeout (DuckDB has no ``statement_timeout``).

    Started when a timed cursor is open, gone when none is; ``expired`` tells a cursor it
    was interrupted for its time, not by a cancel.
    """

    TICK = 0.2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, tuple[float, Any]] = {}
        self._expired: set[int] = set()
        self._thread: threading.Thread | None = None

    @contextmanager
    def timed(self, raw: Any, seconds: float) -> Iterator[None]:
        if not seconds:
            yield
            return
        key = id(raw)
        with self._lock:
            self._running[key] = (time.monotonic() + seconds, raw)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="atlas-duckdb-timeouts", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(key, None)
                self._expired.discard(key)

    def expired(self, raw: Any) -> bool:
        with self._lock:
            return id(raw) in self._expired

    def _loop(self) -> None:
        while True:
            time.sleep(self.TICK)
            now = time.monotonic()
            with self._lock:
                if not self._running:
                    self._thread = None
                    return
                late = [(key, raw) for key, (deadline, raw) in self._running.items() if deadline <= now]
                self._expired.update(key for key, _raw in late)
            for _key, raw in late:
                raw.interrupt()


class DuckDBWarehouse(DuckDBQualityOps, Warehouse):
    vendor = "duckdb"
    dialect = "duckdb"
    row_locator = ("rowid",)
    operations_class = DuckDBOperations
    features_class = DuckDBFeatures

    @classmethod
    def from_url(cls, url: str) -> DuckDBWarehouse:
        return cls(DuckDBOperations.url_path(url))  # duckdb:///path/to/file.duckdb

    def __init__(self, path: str) -> None:
        self.path = path
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._timer = StatementTimer()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                try:
                    con = duckdb.connect(self.path, config=duckdb_config())
                    try:
                        lock_down(con)
                    except BaseException:
                        con.close()
                        raise
                    self._con = con
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
    def _own_cursor(self) -> Iterator[Any]:
        """A cursor for Atlas's own statements: enlisted in this thread's watch, under the statement timeout."""
        watch = interrupts.current()
        if watch is not None:
            watch.check()  # a stopped step starts nothing more
        raw = self._connection().cursor()
        try:
            with interrupts.enlisted(("duckdb", id(raw)), raw), self._timer.timed(raw, self.statement_timeout_seconds()):
                yield raw
        finally:
            raw.close()

    def _failure(self, exc: BaseException, raw: Any) -> BaseException:
        """The exception to raise for a DuckDB error: stopped on purpose, timed out, or the error."""
        watch = interrupts.current()
        if watch is not None and watch.reason is not None:
            return interrupts.Interrupted(watch.reason)
        if isinstance(exc, duckdb.InterruptException) and self._timer.expired(raw):
            return self.statement_timeout_error(self.statement_timeout_seconds())
        if isinstance(exc, duckdb.Error):
            return WarehouseError(_error_message(exc))
        return exc

    def _interrupt_sessions(self, sessions: list[Any], *, terminate: bool) -> int:  # noqa: ARG002
        """``interrupt()`` each cursor; DuckDB has nothing stronger than an interrupt (``terminate`` is the same)."""
        for raw in sessions:
            raw.interrupt()
        return len(sessions)

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        with self._own_cursor() as raw:
            try:
                yield LockedCursor(raw, "qmark")
            except duckdb.Error as exc:
                raise self._failure(exc, raw) from exc

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self._own_cursor() as raw:
            raw.execute("BEGIN TRANSACTION")
            try:
                yield LockedCursor(raw, "qmark")
            except BaseException as exc:
                raw.execute("ROLLBACK")
                if isinstance(exc, duckdb.Error):
                    raise self._failure(exc, raw) from exc
                raise
            else:
                raw.execute("COMMIT")

    # --- the catalogue, from DuckDB's own table functions ---
    # Every step and every SQL validation asks whether tables exist and what their columns are.
    # DuckDB's information_schema views are built over these same functions (``duckdb_columns()``,
    # ``duckdb_tables()``, ``duckdb_views()``, ``duckdb_schemas()``) and cost about twice as much a
    # lookup: 1.4 ms against 0.7 for a table's columns, 1.0 against 0.5 for "does it exist" (2 CPUs,
    # 2026-12-05). These answer exactly what the base class's information_schema queries answer
    # (atlas/tests/test_warehouse_backends.py compares them): views count as tables, every catalogue
    # is searched, as there.

    SCHEMATA_HERE = "duckdb_schemas() WHERE database_name = current_database()"
    TABLES_HERE_IN_SCHEMA = "duckdb_tables() WHERE database_name = current_database() AND schema_name"

    def table_exists(self, schema: str, name: str) -> bool:
        with self.cursor() as cur:
            row = cur.execute(
                "SELECT EXISTS (SELECT 1 FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?)"
                " OR EXISTS (SELECT 1 FROM duckdb_views() WHERE NOT internal AND schema_name = ? AND view_name = ?)",
                [schema, name, schema, name],
            ).fetchone()
        return bool(row and row[0])

    def columns(self, schema: str, name: str) -> list[Column]:
        with self.cursor() as cur:
            rows = cur.execute(
                "SELECT column_name, data_type, is_nullable FROM duckdb_columns()"
                " WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
                [schema, name],
            ).fetchall()
        return [Column(r[0], str(r[1]).lower(), bool(r[2])) for r in rows]

    # --- operator SQL: one statement, a timeout (DuckDB has no roles: see ``lock_down``) ---
    # The ``layer`` of an operator statement is checked (a layer schema) but grants nothing
    # here: the embedded warehouse has no roles, so what a layer's SQL may read is enforced
    # by the validator alone (``Step.INPUT_LAYERS``, the SQL allowlist); PostgreSQL enforces
    # it a second time with one role per layer (``privileges.LAYER_READS``).
    @contextmanager
    def _operator_statement(self, sql: str, params: Sequence[Any] | None = None) -> Iterator[Any]:
        """Run one operator statement on its own cursor, interrupted past the statement timeout.

        One statement: DuckDB's ``execute`` would run every statement of ``;``-joined
        text, so the text is split by DuckDB's own parser first and refused unless it
        is one. The timeout: DuckDB has no ``statement_timeout``; a timer interrupts it.
        The cursor is enlisted in this thread's watch: a cancelled step interrupts it too.
        """
        timeout = privileges.statement_timeout_ms() / 1000
        watch = interrupts.current()
        if watch is not None:
            watch.check()  # a stopped step starts nothing more
        raw = self._connection().cursor()
        timer = threading.Timer(timeout, raw.interrupt)
        try:
            try:
                statements = raw.extract_statements(sql)
            except duckdb.Error as exc:
                raise WarehouseError(str(exc)) from exc
            if len(statements) != 1:
                raise WarehouseError(f"Operator SQL must be one statement; this text holds {len(statements)}.")
            timer.start()
            with interrupts.enlisted(("duckdb", id(raw)), raw):
                try:
                    raw.execute(sql, (params if isinstance(params, Mapping) else list(params)) if params else None)
                except duckdb.InterruptException as exc:
                    if watch is not None:
                        watch.check()  # stopped by the watchdog, not by the statement timeout
                    raise WarehouseError(
                        f"The operator's SQL ran longer than {timeout:g} s and was stopped"
                        " (ATLAS_SQL_STATEMENT_TIMEOUT_SECONDS)."
                    ) from exc
                except duckdb.Error as exc:
                    raise WarehouseError(_error_message(exc, operator=True)) from exc
            yield raw
        finally:
            timer.cancel()
            raw.close()

    def transpile(self, sql: str, types: ColumnTypes | None = None) -> str:
        """Operator SQL (PostgreSQL dialect) rendered for DuckDB with PostgreSQL's meaning.

        With the column types of the datasets it reads, ``int / int`` stays integer division,
        ``round`` of a double rounds half to even, ``LIKE`` escapes with a backslash ...
        (``atlas.sql.transpile``); what cannot be made equal was refused when the step was saved.
        """
        return to_duckdb(sql, types)

    def bind_parameters(
        self, select_sql: str, values: Mapping[str, Any] | None, *, planning: bool = False
    ) -> tuple[str, dict[str, Any] | None]:
        """See ``Warehouse.bind_parameters``: DuckDB binds ``$name`` itself, and says which names a statement uses."""
        from atlas.sql import params

        if "$" not in select_sql:
            return select_sql, None
        try:
            statements = self._connection().extract_statements(select_sql)
        except duckdb.Error as exc:
            raise WarehouseError(str(exc)) from exc
        names = sorted({n for st in statements for n in st.named_parameters})
        if not names:
            return select_sql, None
        if planning:
            values = {n: (values or {}).get(n) or PLANNING_INSTANT for n in names}
        try:
            return select_sql, params.check_names(names, values)
        except params.SQLRefused as exc:
            raise WarehouseError(str(exc)) from exc

    def stage_operator_select(
        self, schema: str, name: str, select_sql: str, *, readable: bool = True,  # noqa: ARG002
        params: Mapping[str, Any] | None = None, few_rows: bool = False,  # noqa: ARG002
    ) -> int:
        """See ``Warehouse.stage_operator_select``; the layer (``schema``) is the validator's to enforce here."""
        privileges.check_layer(schema)
        select_sql, bound = self.bind_parameters(select_sql, params)
        tbl = self.table(schema, name)
        with self.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {tbl}")
        with self._operator_statement(f"CREATE TABLE {tbl} AS SELECT * FROM ({select_sql}) AS _atlas_q", bound):
            pass
        return self.row_count(schema, name)

    def operator_query(
        self, select_sql: str, params: Sequence[Any] | None = None, *, layer: str, limit: int | None = None
    ) -> tuple[list[str], list[tuple]]:
        """See ``Warehouse.operator_query``; ``layer`` is checked, the validator enforces what it may read."""
        privileges.check_layer(layer)
        sql = f"SELECT * FROM ({select_sql}) AS _atlas_q" + (f" LIMIT {int(limit)}" if limit is not None else "")
        if not isinstance(params, Mapping):  # positional: Atlas's own %s; named: run parameters ($name)
            sql = sql.replace("%s", "?")
        with self._operator_statement(sql, params) as raw:
            return [d[0] for d in raw.description or []], [tuple(r) for r in raw.fetchall()]

    def _row_sample_sql(self, schema: str, table: str, rows: int, total: int) -> str:
        # A hash of the row id, not DuckDB's sampler: its seeds repeat only on one thread.
        return f"SELECT * FROM {self.table(schema, table)} WHERE hash(rowid) % {max(int(total), 1)} < {int(rows)}"

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
        stream: StreamedFile | None = None,
        pipe: Any = None,  # noqa: ARG002 - DuckDB gives none (``copy_pipe``)
    ) -> LoadResult:
        """Parse the file into a staging table shaped exactly like ``target``.

        Same shape, so that a first or replacing load is published by renaming
        the staging table into place (see ``publish_batches``), not copied.

        ``_row_number`` is the record's position among the file's good records, in file
        order. It is not numbered while parsing (``row_number() OVER ()`` makes DuckDB's
        parallel CSV reader run on one thread): the rows are inserted by all of DuckDB's
        threads into the new, empty staging table, in file order (insertion order kept,
        ``duckdb_config``), and committed, so that the table's row ids are 0, 1, 2 ... in
        file order; then ``_row_number = rowid + 1`` (``number_rows``).
        """
        if stream is not None:  # DuckDB's reader reads files
            stream.materialise()
        stg = self.table(schema, staging)
        with self.cursor() as cur:
            scan = plan_scan(
                path, fmt, options, tag=staging, max_line_bytes=settings.ATLAS_INGEST_MAX_LINE_BYTES, duck=cur.raw
            )
            self.ensure_explore_table(schema, target, scan.columns)
            cur.execute(f"DROP TABLE IF EXISTS {stg}")
            cur.execute(f"CREATE TABLE {stg} ({self.column_defs(schema, target)})")
            names = ", ".join(self.quote(c) for c in [*scan.columns, *BATCH_CONSTANT_COLUMNS])
            try:
                rows = cur.raw.execute(
                    f"INSERT INTO {stg} ({names}) SELECT *, {self.literal(batch_id)},"
                    f" current_timestamp, {self.literal(source_label)}"
                    f" FROM ({scan.select_sql})"
                ).fetchone()[0]
            except duckdb.Error as exc:
                raise IngestError(f"{path}: {exc}") from exc
            number_rows(cur.raw, stg, int(rows))
            rejects = scan.collect_rejects(cur.raw)
        return LoadResult(rows=int(rows), columns=scan.columns, rejects=rejects)


def number_rows(raw: Any, table: str, rows: int) -> None:
    """``_row_number`` of a staging table just filled by one committed ``INSERT``: its row id + 1.

    Exact because the table was created empty and filled by one statement, committed,
    with insertion order kept: DuckDB gives committed rows the row ids 0 .. n-1 in the
    order they were inserted, the order of the file. (Inside the inserting transaction
    row ids are provisional, so this runs after it.) Every row is numbered once.
    """
    numbered = raw.execute(f"UPDATE {table} SET _row_number = rowid + 1").fetchone()[0]
    if int(numbered) != rows:
        raise WarehouseError(f"Numbering {table}: {numbered} rows numbered, {rows} inserted.")
