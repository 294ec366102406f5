"""The backend interface every warehouse engine implements.

Generic SQL that both engines speak (information_schema, CREATE TABLE AS,
INSERT ... SELECT, transactional rename) lives here; what differs (connections,
bulk loading, partitions) is overridden in the engine modules.
"""

from __future__ import annotations

import abc
import datetime
import enum
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from atlas.scrub import VALUE, scrub

from . import interrupts
from .errors import NotSupported, StatementTimeout, WarehouseError  # noqa: F401  (re-exported)
from .interrupts import Interrupted, Watch  # noqa: F401  (re-exported)
from .quality_ops import QualityOps

LAYER_SCHEMAS = ("explore", "chart", "navigate")
META_SCHEMA = "atlas"
# Columns every Explore table carries besides what the source sent.
LOAD_COLUMNS = ("_batch_id", "_ingested_at", "_source", "_row_number")
# The load columns that hold one value for a whole batch (file).
BATCH_CONSTANT_COLUMNS = ("_batch_id", "_ingested_at", "_source")
QUARANTINE_COLUMNS = (
    "_batch_id",
    "_run_id",
    "_source",
    "_line_number",
    "_reason",
    "_raw_record",
    "_quarantined_at",
    "_reason_class",
    "_byte_offset",
    "_raw_bytes",
    "_file_checksum",
)
# Added to the quarantine by issue 16; a quarantine table made before gets them on its next use.
QUARANTINE_EVIDENCE_COLUMNS = (
    ("_reason_class", "text"),
    ("_byte_offset", "bigint"),
    ("_raw_bytes", "bytea"),
    ("_file_checksum", "text"),
)


VALUE_HIDDEN = VALUE


def hide_values(message: str, *, keep: Iterable[str] = (), table: str | None = None) -> str:
    """An engine's error about a value, with every quoted value replaced (:func:`atlas.scrub.scrub`).

    Errors about data ("invalid input syntax for type integer: "ann@example.com"",
    "Could not convert string 'ann@example.com' to INT32", "Key (id)=(5) ...") quote the
    value that failed: the operator's SQL must not be able to read a row (or the PII in
    it) one error at a time, and step errors are read by roles without clear PII. The
    same holds for Atlas's own statements (a publish breaking a unique key).

    ``keep``: quoted names the engine reported as names (its error's table, column,
    constraint), which stay readable; ``table``: where it happened, added when given.
    """
    where = f" (table {table})" if table else ""
    return scrub(message, keep=keep) + where + " (the value is not shown: errors never carry data)"


class FileFormat(enum.StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


class WriteMode(enum.StrEnum):
    REPLACE = "replace"
    APPEND = "append"
    MERGE = "merge"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True


@dataclass
class Reject:
    """A record that could not be parsed, kept with its reason."""

    line: int | None
    reason: str
    raw: str | None
    reason_class: str | None = None  # schema, quoting, encoding, json, line_too_long (pipelines/hygiene.py)
    offset: int | None = None  # byte offset of its first byte in the file as received (decompressed)
    raw_bytes: bytes | None = None  # its exact bytes, binary-safe


@dataclass
class LoadResult:
    rows: int
    columns: list[str]
    rejects: list[Reject] = field(default_factory=list)
    reader: str | None = None  # how an engine with a choice of readers read the file (stated on the run)


@dataclass(frozen=True)
class StreamedFile:
    """A file's content that can be loaded before, or instead of, being written to disk.

    A compressed source is decompressed once to learn its checksum and layout; a loader that
    can stream it (``features.streamed_files``: PostgreSQL's direct COPY) takes it straight
    from a second decompression, as ``gzip -dc file | COPY`` does, and the file the
    ``path`` of ``load_file`` names is never written. ``chunks()`` yields the content from
    its start (each call anew; it raises ``IngestError`` if the content is not what the
    first pass read); ``materialise()`` writes it to that path (once: the loader parses it
    from disk after all); ``head``: its first bytes (64 KiB, or all of it).
    """

    head: bytes
    chunks: Callable[[], Iterator[bytes]]
    materialise: Callable[[], None]


@dataclass(frozen=True)
class FileLayout:
    """What one pass over a file's bytes learnt about its lines (``pipelines.sources.ContentScan``).

    Enough for a loader to cut the file into parts at line starts and number
    every part's rows exactly, without reading it again.
    """

    size: int
    newlines: int
    ends_with_newline: bool = True
    # (byte offset of a line start, newlines before it), ascending: about one per MiB.
    line_starts: tuple[tuple[int, int], ...] = ()
    quoted: bool | None = None  # whether the file holds the CSV quote byte (None: not looked for)
    quotes_simple: bool = False  # every quote opens or closes a whole field on one line (``simple_quotes``)
    long_lines: int = 0  # lines longer than the parser's maximum

    def lines_before(self, offset: int) -> int:
        """Newlines before ``offset``, which must be 0 or one of ``line_starts``."""
        if offset == 0:
            return 0
        for start, before in self.line_starts:
            if start == offset:
                return before
        raise ValueError(f"{offset} is not a known line start")


@dataclass(frozen=True)
class StagedBatch:
    """A file staged for an Explore table, with what the batch ledger keeps of it."""

    staging: str
    batch_id: str
    dataset: str
    checksum: str
    source: str
    rows: int


class NothingClaimed(Exception):  # noqa: N818 - a signal, not a failure
    """A concurrent load claimed every batch of a publish: its transaction is rolled back."""
# A run parameter's value while only a query's shape is asked for (planning, LIMIT 0).
PLANNING_INSTANT = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class Cursor:
    """A small uniform cursor: ``%s`` placeholders on every engine."""

    def __init__(self, raw: Any, paramstyle: str = "format") -> None:
        self.raw = raw
        self._qmark = paramstyle == "qmark"

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Cursor:
        if params:
            if self._qmark:
                sql = sql.replace("%s", "?")
            self.raw.execute(sql, list(params))
        else:
            self.raw.execute(sql)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self._qmark:
            sql = sql.replace("%s", "?")
        self.raw.executemany(sql, [list(r) for r in rows])

    def fetchall(self) -> list[tuple]:
        return [tuple(r) for r in self.raw.fetchall()]

    def fetchone(self) -> tuple | None:
        row = self.raw.fetchone()
        return tuple(row) if row is not None else None

    @property
    def column_names(self) -> list[str]:
        return [d[0] for d in self.raw.description or []]


_IDENT_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a loaded batch's id (pipelines.ingest.new_batch_id)


class Warehouse(QualityOps, abc.ABC):
    """The interface: an engine must implement every abstract method (checked when it is built).

    What quality checks need (regex, casts, key-counting strategies) comes from
    :mod:`.quality_ops`; each engine mixes in its own.
    """

    vendor: str = ""
    dialect: str = ""  # sqlglot dialect
    # Django's split: ``ops`` writes this engine's SQL, ``features`` says what it can do
    # (each engine names its classes; see ``operations`` and ``features``).
    operations_class: type = None  # type: ignore[assignment]
    features_class: type = None  # type: ignore[assignment]

    @functools.cached_property
    def ops(self) -> Any:
        return self.operations_class(self)

    @functools.cached_property
    def features(self) -> Any:
        return self.features_class(self)

    @classmethod
    def from_url(cls, url: str) -> Warehouse:
        """The backend for a ``WAREHOUSE_URL`` of its scheme (see ``registry``)."""
        return cls(url)

    # --- connections ---------------------------------------------------------
    @abc.abstractmethod
    def cursor(self) -> Iterator[Cursor]:  # pragma: no cover - abstract
        ...

    @abc.abstractmethod
    def transaction(self) -> Iterator[Cursor]:  # pragma: no cover - abstract
        ...

    def close(self) -> None:
        """Release connections held by this backend (nothing to release by default)."""
        return None

    # --- stopping work from another thread (cancel, time limits; see ``interrupts``) ------
    @contextmanager
    def watch(self) -> Iterator[Watch]:
        """Collect the sessions this thread's work uses in the block, so that :meth:`interrupt` can stop them."""
        with interrupts.watching(Watch()) as watch:
            try:
                yield watch
            finally:
                if watch.terminated:
                    self.forget_thread_connection()

    def forget_thread_connection(self) -> None:
        """Drop this thread's connection (ended by ``interrupt(terminate=True)``): the next statement opens a new one."""
        return None

    def adopt(self, watch: Watch | None) -> Any:
        """A backend's helper thread joins the work of ``watch`` (a context manager)."""
        return interrupts.watching(watch)

    def interrupt(self, watch: Watch, reason: str, *, terminate: bool = False) -> int:
        """Stop the work of ``watch``: what its sessions run now is cancelled, what it starts later refused.

        ``terminate``: end its connections instead (PostgreSQL), for a statement that does
        not heed a cancel. Returns how many sessions were reached. Called from another thread.
        """
        watch.trip(reason)
        watch.terminated = watch.terminated or terminate
        sessions = watch.sessions()
        return self._interrupt_sessions(sessions, terminate=terminate) if sessions else 0

    def _interrupt_sessions(self, sessions: list[Any], *, terminate: bool) -> int:
        """Cancel what ``sessions`` run (each engine its own way); an engine that cannot stops at the next statement."""
        return 0

    @staticmethod
    def statement_timeout_seconds() -> float:
        """The longest one of Atlas's own warehouse statements may run (0: no limit)."""
        from django.conf import settings

        return float(getattr(settings, "ATLAS_WAREHOUSE_STATEMENT_TIMEOUT_SECONDS", 0) or 0)

    @staticmethod
    def statement_timeout_error(seconds: float) -> StatementTimeout:
        return StatementTimeout(
            f"A warehouse statement ran longer than {seconds:g} s and was stopped"
            " (ATLAS_WAREHOUSE_STATEMENT_TIMEOUT_SECONDS); the published tables are as they were."
        )

    # --- names ---------------------------------------------------------------
    @staticmethod
    def quote(name: str) -> str:
        if not name or "\x00" in name:
            raise WarehouseError(f"Invalid identifier {name!r}.")
        return '"' + name.replace('"', '""') + '"'

    def table(self, schema: str, name: str) -> str:
        return f"{self.quote(schema)}.{self.quote(name)}"

    @staticmethod
    def literal(value: str) -> str:
        return "'" + str(value).replace("'", "''") + "'"

    # Hidden columns that address one row of a table within a transaction (PostgreSQL:
    # the partition and the tuple, as a batch loaded in parts is a partitioned table whose
    # parts repeat ctids; DuckDB: rowid): quality moves failing rows by them.
    row_locator: tuple[str, ...] = ()

    def locator_columns(self, alias: str | None = None) -> str:
        """Select-list items that copy each row's locator into another table."""
        prefix = f"{alias}." if alias else ""
        return ", ".join(f"{prefix}{c} AS {self.quote(f'_atlas_loc{i}')}" for i, c in enumerate(self.row_locator))

    def locator_in(self, table: str) -> str:
        """A condition true for the rows whose locator ``table`` (filled by ``locator_columns``) holds."""
        locs = ", ".join(self.quote(f"_atlas_loc{i}") for i in range(len(self.row_locator)))
        return f"({', '.join(self.row_locator)}) IN (SELECT {locs} FROM {table})"

    def rows_not_in(self, table: str, locators: str) -> str:
        """A SELECT of ``table``'s rows whose locator ``locators`` (filled by ``locator_columns``) does not hold."""
        return f"SELECT * FROM {table} WHERE NOT {self.locator_in(locators)}"

    @abc.abstractmethod
    def regex_match(self, expr: str) -> str:
        """SQL that is true when ``expr`` matches the pattern bound to its one ``%s``."""
        ...

    def check_operator_sql(
        self, sql: str, types: Mapping[tuple[str, str], Mapping[str, str]] | None, *, types_known: bool  # noqa: ARG002
    ) -> None:
        """Refuse (``SQLRefused``) operator SQL this engine would not run with PostgreSQL's meaning, beyond ``check_same_meaning``."""
        return None

    def transpile(self, sql: str, types: Mapping[tuple[str, str], Mapping[str, str]] | None = None) -> str:
        """Operator SQL is written in the PostgreSQL dialect; render it for this engine.

        ``types`` are the column types of the datasets it reads ((layer, table) -> {column: type}):
        an engine other than PostgreSQL needs them to keep PostgreSQL's meaning (``atlas.sql.transpile``).
        """
        if self.dialect == "postgres":
            return sql
        import sqlglot  # about 0.2 s: loaded by the first statement, not by every process's start

        return sqlglot.transpile(sql, read="postgres", write=self.dialect)[0]

    # --- catalogue -----------------------------------------------------------
    def ensure_schemas(self) -> None:
        """The layers' schemas and Atlas's own tables, created where missing (every step calls it)."""
        if self._schemas_present():  # one read, instead of six statements that find everything there
            return
        with self.cursor() as cur:
            for schema in (*LAYER_SCHEMAS, META_SCHEMA):
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table(META_SCHEMA, 'loaded_batches')} ("
                " dataset text NOT NULL, checksum text NOT NULL, batch_id text NOT NULL,"
                " source text, rows_loaded bigint, loaded_at timestamp with time zone,"
                " PRIMARY KEY (dataset, checksum))"
            )
            # Receipts of published step outputs, written in the publishing transaction: a run
            # resumed after its worker died knows whether the step it lost had published.
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table(META_SCHEMA, 'published_steps')} ("
                " receipt text PRIMARY KEY, published_at timestamp with time zone)"
            )

    # Where ``_schemas_present`` counts this database's schemas (``schema_name``) and a schema's tables
    # (``table_name``); DuckDB reads its own catalogue functions instead (half the cost a look-up there).
    SCHEMATA_HERE = "information_schema.schemata WHERE catalog_name = current_database()"
    TABLES_HERE_IN_SCHEMA = "information_schema.tables WHERE table_catalog = current_database() AND table_schema"

    def _schemas_present(self) -> bool:
        schemas = (*LAYER_SCHEMAS, META_SCHEMA)
        tables = ("loaded_batches", "published_steps")
        with self.cursor() as cur:
            row = cur.execute(
                f"SELECT (SELECT count(DISTINCT schema_name) FROM {self.SCHEMATA_HERE}"
                f" AND schema_name IN ({', '.join(['%s'] * len(schemas))})),"
                f" (SELECT count(DISTINCT table_name) FROM {self.TABLES_HERE_IN_SCHEMA} = %s"
                f" AND table_name IN ({', '.join(['%s'] * len(tables))}))",
                [*schemas, META_SCHEMA, *tables],
            ).fetchone()
        return bool(row) and (row[0], row[1]) == (len(schemas), len(tables))

    def table_exists(self, schema: str, name: str) -> bool:
        with self.cursor() as cur:
            row = cur.execute(
                "SELECT count(*) FROM information_schema.tables"
                " WHERE table_schema = %s AND table_name = %s",
                [schema, name],
            ).fetchone()
        return bool(row and row[0])

    def columns(self, schema: str, name: str) -> list[Column]:
        with self.cursor() as cur:
            rows = cur.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                [schema, name],
            ).fetchall()
        return [Column(r[0], str(r[1]).lower(), r[2] == "YES") for r in rows]

    def catalogue(self, schemas: Sequence[str]) -> dict[tuple[str, str], dict[str, str]]:
        """Every table of ``schemas`` with its columns and their (lower-case) types, in one query."""
        if not schemas:
            return {}
        out: dict[tuple[str, str], dict[str, str]] = {}
        with self.cursor() as cur:
            rows = cur.execute(
                "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns"
                f" WHERE table_schema IN ({', '.join(['%s'] * len(schemas))})"
                " ORDER BY table_schema, table_name, ordinal_position",
                list(schemas),
            ).fetchall()
        for schema, table, column, data_type in rows:
            out.setdefault((schema, table), {})[column] = str(data_type).lower()
        return out

    def take_job_facts(self, schema: str | None = None, table: str | None = None) -> dict[str, Any]:
        """What the engine ran in this thread since the last call, and wrote to ``schema.table``: a step's
        engine facts for its lineage events. Empty where the engine tells none (Spark does: ``sparkfacts``)."""
        return {}

    def row_count(self, schema: str, name: str) -> int:
        with self.cursor() as cur:
            return int(cur.execute(f"SELECT count(*) FROM {self.table(schema, name)}").fetchone()[0])

    def preview(self, schema: str, name: str, limit: int = 20) -> tuple[list[str], list[tuple]]:
        """The first rows of a layer table, read as operator SQL of that layer (never the owner's rights)."""
        return self.operator_query(f"SELECT * FROM {self.table(schema, name)}", layer=schema, limit=limit)

    def browse(
        self, schema: str, name: str, columns: Sequence[str], *, order_by: str | None = None,
        descending: bool = False, limit: int = 50, offset: int = 0,
    ) -> list[tuple]:
        """A page of a layer table (the data browser), read as operator SQL of that layer.

        ``columns`` and ``order_by`` must be columns of the table (refused otherwise, never guessed);
        the rows are in a total order — the sort column, then every column chosen — so pages neither
        repeat nor skip a row (identical rows are interchangeable).
        """
        known = {c.name for c in self.columns(schema, name)}
        unknown = [c for c in [*columns, *([order_by] if order_by else [])] if c not in known]
        if unknown or not columns:
            raise WarehouseError(f"{schema}.{name} has no column {unknown[0]!r}." if unknown else "Choose a column.")
        chosen = ", ".join(self.quote(c) for c in columns)
        keys = [f"{self.quote(order_by)} {'DESC' if descending else 'ASC'} NULLS LAST"] if order_by else []
        keys += [str(i) for i in range(1, len(columns) + 1)]
        sql = (f"SELECT {chosen} FROM {self.table(schema, name)} ORDER BY {', '.join(keys)}"
               f" LIMIT {max(int(limit), 0)} OFFSET {max(int(offset), 0)}")
        rows = self.operator_query(sql, layer=schema)[1]
        if order_by is None:
            return rows
        # the wrapper operator_query adds may not keep the inner order on every engine: sort the page again
        at = list(columns).index(order_by) if order_by in columns else None
        if at is None:
            return rows
        filled = sorted((r for r in rows if r[at] is not None), key=lambda r: r[at], reverse=descending)
        return filled + [r for r in rows if r[at] is None]

    def drop_table(self, schema: str, name: str) -> None:
        with self.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.table(schema, name)}")

    def relations(self, schemas: Sequence[str]) -> list[tuple[str, str, str]]:
        """``(schema, name, kind)`` of every table (kind ``table``) and sequence (``sequence``) in ``schemas``."""
        if not schemas:
            return []
        marks = ", ".join(["%s"] * len(schemas))
        with self.cursor() as cur:
            rows = cur.execute(
                f"SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ({marks})",
                list(schemas),
            ).fetchall()
        return [(s, n, "table") for s, n in rows]

    def drop_relation(self, schema: str, name: str, kind: str) -> None:
        """Drop a table or sequence if it exists (the janitor's leftovers)."""
        what = {"table": "TABLE", "sequence": "SEQUENCE"}[kind]
        with self.cursor() as cur:
            cur.execute(f"DROP {what} IF EXISTS {self.table(schema, name)}")

    def has_receipt(self, receipt: str) -> bool:
        """Whether a ``publish`` with this receipt committed."""
        with self.cursor() as cur:
            row = cur.execute(
                f"SELECT 1 FROM {self.table(META_SCHEMA, 'published_steps')} WHERE receipt = %s", [receipt]
            ).fetchone()
        return row is not None

    # --- staging and publishing ---------------------------------------------
    def create_table_as(self, schema: str, name: str, select_sql: str) -> int:
        """Materialise ``select_sql`` (already in this engine's dialect); return its rows."""
        with self.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.table(schema, name)}")
            cur.execute(f"CREATE TABLE {self.table(schema, name)} AS {select_sql}")
        return self.row_count(schema, name)

    # --- operator SQL: least privilege (each engine runs it restricted) --------------
    # Every operator statement runs for a layer: the layer of the dataset it produces
    # (a step's SELECT: its staging table's schema) or checks or previews. On PostgreSQL
    # it runs as that layer's role, which reads only the layers that layer may read
    # (``privileges.LAYER_READS``); an engine without roles relies on the validator.
    def bind_parameters(
        self, select_sql: str, values: Mapping[str, Any] | None, *, planning: bool = False
    ) -> tuple[str, dict[str, Any] | None]:
        """An operator's SELECT (this engine's dialect) with its run parameters as this driver's placeholders.

        Returns the text and the values to pass beside it (None: the SELECT has no parameter and
        its text is unchanged). ``planning``: only its shape is wanted (a step's columns, found
        before the run has values); every parameter is bound as a placeholder instant.
        This default writes psycopg's ``%(name)s`` (``atlas.sql.params.render``).
        """
        from atlas.sql import params

        if planning:
            values = {**dict.fromkeys(params.RUN_PARAMETERS, PLANNING_INSTANT), **(values or {})}
        try:
            return params.render(select_sql, values)
        except params.SQLRefused as exc:
            raise WarehouseError(str(exc)) from exc

    @abc.abstractmethod
    def stage_operator_select(
        self, schema: str, name: str, select_sql: str, *, readable: bool = True,
        params: Mapping[str, Any] | None = None, few_rows: bool = False,
    ) -> int:
        """Materialise an operator's SELECT (this engine's dialect) as ``schema.name``; return its rows.

        ``params``: the run's parameters (``atlas.sql.params``), bound by the driver, never formatted.

        Unlike ``create_table_as`` (Atlas's own SQL), the SELECT runs restricted: one
        statement, a statement timeout, and on PostgreSQL as the operator-SQL role of the
        layer ``schema``, which reads only the layers that layer may read and cannot read
        Atlas's metadata or the PII key. ``readable=False``: no operator-SQL role may read
        the new table (it holds values a staged hook rewrites, e.g. columns to hash).
        """

    @abc.abstractmethod
    def operator_query(
        self, select_sql: str, params: Sequence[Any] | None = None, *, layer: str, limit: int | None = None
    ) -> tuple[list[str], list[tuple]]:
        """Columns and rows of an operator's SELECT for a dataset of ``layer``, run restricted and read-only."""

    def operator_columns(self, select_sql: str, *, layer: str) -> list[str]:
        """The column names an operator's SELECT for ``layer`` gives, without running it for rows."""
        select_sql, bound = self.bind_parameters(select_sql, None, planning=True)
        return self.operator_query(select_sql, bound, layer=layer, limit=0)[0]

    def rewrite_table(self, schema: str, name: str, select_list: str) -> None:
        """Replace ``schema.name`` by ``SELECT select_list FROM`` it, in one transaction (Atlas's SQL).

        The owner's pass after an operator's statement (the keyed hash): a new table
        and a rename, which is cheaper than an UPDATE of every row on both engines.
        """
        tbl, tmp = self.table(schema, name), self.table(schema, f"{name[:50]}__rw")
        with self.transaction() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {tmp}")
            cur.execute(f"CREATE TABLE {tmp} AS SELECT {select_list} FROM {tbl}")
            cur.execute(f"DROP TABLE {tbl}")
            cur.execute(f"ALTER TABLE {tmp} RENAME TO {self.quote(name)}")

    # Values per bound array in :meth:`replace_values` (two arrays of at most this many strings per statement).
    REPLACE_CHUNK = 50_000

    def replace_values(self, schema: str, table: str, column: str, mapping: Sequence[tuple[str, str]]) -> None:
        """Replace each value of ``column`` in ``schema.table`` that ``mapping`` lists (old, new; olds distinct).

        The in-text anonymisation's pass (``compliance.policies``). The pairs are Atlas's own values,
        bound, never SQL text: a side table is filled from two bound arrays, ``REPLACE_CHUNK`` pairs
        per statement (a statement per pair cost 87 µs a row on DuckDB, 44 s at 500k notes), then one
        ``UPDATE … FROM``, all in one transaction.
        """
        q, tbl = self.quote(column), self.table(schema, table)
        mt = self.table(schema, f"{table[:40]}__pii_map")
        with self.transaction() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {mt}")
            cur.execute(f"CREATE TABLE {mt} (old_value text, new_value text)")
            for start in range(0, len(mapping), self.REPLACE_CHUNK):
                chunk = mapping[start:start + self.REPLACE_CHUNK]
                cur.execute(self.ops.insert_pairs_sql(mt), [[o for o, _ in chunk], [n for _, n in chunk]])
            cur.execute(f"UPDATE {tbl} AS t SET {q} = m.new_value FROM {mt} AS m WHERE t.{q} = m.old_value")
            cur.execute(f"DROP TABLE {mt}")

    def _column_diff(self, staged: list[Column], published: list[Column]) -> str | None:
        s = {c.name for c in staged}
        p = {c.name for c in published}
        if s == p:
            return None
        parts = []
        if s - p:
            parts.append("added " + ", ".join(sorted(s - p)))
        if p - s:
            parts.append("removed " + ", ".join(sorted(p - s)))
        return "; ".join(parts)

    def _publishable(
        self, schema: str, staging: str, target: str, mode: WriteMode, keys: Sequence[str]
    ) -> tuple[list[Column], bool]:
        """The staged columns and whether the target exists, once the staged table may be published in ``mode``.

        Refused: an append or merge whose staged columns differ from the published table's, a
        merge without keys or with keys the result lacks. Every backend's ``publish`` asks first.
        """
        staged_cols = self.columns(schema, staging)
        exists = self.table_exists(schema, target)
        if exists and mode is not WriteMode.REPLACE:
            diff = self._column_diff(staged_cols, self.columns(schema, target))
            if diff:
                raise WarehouseError(
                    f"The staged columns of {schema}.{target} differ from the published table"
                    f" ({diff}); use write mode 'replace' to change its shape."
                )
        if mode is WriteMode.MERGE:
            missing = [k for k in keys if k not in {c.name for c in staged_cols}]
            if not keys or missing:
                raise WarehouseError(
                    f"Merge into {schema}.{target} needs key columns present in the result;"
                    f" missing: {', '.join(missing) or '(no keys set)'}."
                )
        return staged_cols, exists

    def publish(
        self,
        *,
        schema: str,
        staging: str,
        target: str,
        mode: WriteMode | str,
        keys: Sequence[str] = (),
        receipt: str | None = None,
        delete_keys_from: str | None = None,
        key_index: bool = False,
        counts: dict[str, int] | None = None,
    ) -> int:
        """Move a staged table into place in one transaction; return rows written.

        replace swaps the staged table in (readers see the old or the new table,
        never a half-written one); append inserts; merge deletes the published
        rows whose key is staged, then inserts. The staging table is gone after.
        ``receipt``: recorded in the same transaction (see :meth:`has_receipt`).
        ``delete_keys_from``: a merge deletes the published rows whose key this table of
        ``schema`` holds instead (an incremental step's keys before its checks dropped rows).
        ``key_index``: the table published by a replace is indexed on ``keys`` where the engine
        keeps indexes (built on the staged table before the swap), so the merges that follow
        look keys up instead of scanning it (:meth:`_index_staged_keys`). ``counts``: a merge
        puts the rows its delete removed under ``"deleted"`` (the table's rows after it, for a
        caller that knew them before, without counting the table).
        """
        mode = WriteMode(mode)
        stg, tgt = self.table(schema, staging), self.table(schema, target)
        staged_cols, exists = self._publishable(schema, staging, target, mode, keys)
        swap = mode is WriteMode.REPLACE or not exists
        index = self._index_staged_keys(schema, staging, keys) if swap and key_index and keys else None
        if mode is WriteMode.MERGE and exists:
            key_list = ", ".join(self.quote(k) for k in keys)
            with self.cursor() as cur:
                dupes = cur.execute(
                    f"SELECT count(*) FROM (SELECT {key_list} FROM {stg} GROUP BY {key_list}"
                    " HAVING count(*) > 1) AS d"
                ).fetchone()[0]
            if dupes:
                raise WarehouseError(
                    f"Merge into {schema}.{target}: {dupes} key value(s) of ({', '.join(keys)}) appear more"
                    " than once in the result; a merge needs one row per key."
                )
        rows = self.row_count(schema, staging)
        names = ", ".join(self.quote(c.name) for c in staged_cols)
        try:
            with self.transaction() as cur:
                if receipt is not None:
                    cur.execute(
                        f"INSERT INTO {self.table(META_SCHEMA, 'published_steps')} (receipt, published_at)"
                        " VALUES (%s, current_timestamp)",
                        [receipt],
                    )
                if swap:
                    cur.execute(f"DROP TABLE IF EXISTS {tgt}")
                    cur.execute(f"ALTER TABLE {stg} RENAME TO {self.quote(target)}")
                    if index:
                        self._name_key_index(cur, schema, index, target, keys)
                    return rows
                if mode is WriteMode.MERGE:
                    deleted = self._merge_delete(cur, schema, target, delete_keys_from or staging, keys)
                    if counts is not None:
                        counts["deleted"] = deleted
                cur.execute(f"INSERT INTO {tgt} ({names}) SELECT {names} FROM {stg}")
                cur.execute(f"DROP TABLE {stg}")
        except WarehouseError as exc:
            # The engine's message has no value in it (``hide_values``); say which table and how.
            raise WarehouseError(f"Publishing into {schema}.{target} ({mode.value}) failed: {exc}") from exc
        return rows

    def _index_staged_keys(self, schema: str, staging: str, keys: Sequence[str]) -> str | None:
        """Before a replace swaps ``staging`` in: an index on its ``keys``, its name; None: no index here."""
        return None

    def _name_key_index(self, cur: Cursor, schema: str, index: str, target: str, keys: Sequence[str]) -> None:
        """In the swap's transaction: the index :meth:`_index_staged_keys` built, renamed for ``target``."""

    def _merge_delete(self, cur: Cursor, schema: str, target: str, keys_table: str, keys: Sequence[str]) -> int:
        """A merge's delete: the published rows whose key ``keys_table`` holds (in the publish transaction); how many.

        Keys match as GROUP BY and DISTINCT ON group them: a NULL key replaces the published row of
        that NULL key (a second, null-safe statement, only when a key staged has a NULL: equality
        lets the engine look keys up).
        """
        tgt = self.table(schema, target)
        deleted = self.ops.delete(cur, f"DELETE FROM {tgt} AS t WHERE {self.key_match(schema, keys_table, keys)}", [])
        if self._keys_have_nulls(cur, schema, keys_table, keys):
            deleted += self.ops.delete(
                cur, f"DELETE FROM {tgt} AS t WHERE {self.key_match(schema, keys_table, keys, nulls=True)}", [])
        return deleted

    def key_match(self, schema: str, keys_table: str, keys: Sequence[str], *, nulls: bool = False) -> str:
        """A row ``t`` whose key ``keys_table`` holds: by equality; ``nulls``: the keys with a NULL, null-safe."""
        if not nulls:
            match = " AND ".join(f"s.{self.quote(k)} = t.{self.quote(k)}" for k in keys)
            return f"EXISTS (SELECT 1 FROM {self.table(schema, keys_table)} AS s WHERE {match})"
        some_null = " OR ".join(f"{{a}}.{self.quote(k)} IS NULL" for k in keys)
        same = " AND ".join(f"s.{self.quote(k)} IS NOT DISTINCT FROM t.{self.quote(k)}" for k in keys)
        return (f"({some_null.format(a='t')}) AND EXISTS (SELECT 1 FROM {self.table(schema, keys_table)} AS s"
                f" WHERE ({some_null.format(a='s')}) AND {same})")

    def analyze(self, schema: str, table: str) -> None:
        """Statistics for the planner on a table Atlas just made (an engine that keeps them)."""

    def keys_have_nulls(self, schema: str, table: str, keys: Sequence[str]) -> bool:
        """Whether a row of ``schema.table`` has a NULL in one of the ``keys`` columns."""
        with self.cursor() as cur:
            return self._keys_have_nulls(cur, schema, table, keys)

    def _keys_have_nulls(self, cur: Cursor, schema: str, keys_table: str, keys: Sequence[str]) -> bool:
        some_null = " OR ".join(f"{self.quote(k)} IS NULL" for k in keys)
        return cur.execute(f"SELECT 1 FROM {self.table(schema, keys_table)} WHERE {some_null} LIMIT 1").fetchone() is not None

    def keep_replaced_rows(self, schema: str, target: str, keys_table: str, keys: Sequence[str], into: str) -> int:
        """Before a merge: the published rows of ``target`` whose key ``keys_table`` holds, kept as table ``into``.

        What the merge will replace, for the steps after it (``atlas.sql.groups``: affected groups).
        """
        tgt = self.table(schema, target)
        with self.transaction() as cur:
            self._probe_keys(cur, schema, target, keys_table, keys)
            sql = f"SELECT t.* FROM {tgt} AS t WHERE {self.key_match(schema, keys_table, keys)}"
            if self._keys_have_nulls(cur, schema, keys_table, keys):
                sql += f" UNION ALL SELECT t.* FROM {tgt} AS t WHERE {self.key_match(schema, keys_table, keys, nulls=True)}"
            cur.execute(f"DROP TABLE IF EXISTS {self.table(schema, into)}")
            cur.execute(f"CREATE TABLE {self.table(schema, into)} AS {sql}")
        return self.row_count(schema, into)

    def _probe_keys(self, cur: Cursor, schema: str, target: str, keys_table: str, keys: Sequence[str]) -> bool:
        """In a transaction about to look ``keys_table``'s keys up in ``target``: an engine's index and hints for it."""
        return False

    # --- Explore loads -------------------------------------------------------
    @abc.abstractmethod
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
        pipe: Any = None,
    ) -> LoadResult:  # pragma: no cover - abstract
        """Stream one file into a new staging table shaped like ``target``.

        ``layout`` (from the content scan, when the caller has it) lets an engine
        split the file and load its parts side by side. ``stream``: ``path`` is not
        written yet; its content comes from ``stream`` (an engine without
        ``features.streamed_files`` calls ``stream.materialise()`` first). ``pipe``:
        what ``copy_pipe`` gave for this file, fed while it was read; the load it
        holds is kept if the engine finds it sound, else the file is loaded anew.
        """

    def copy_pipe(self, *, schema: str, target: str, staging: str, batch_id: str, source_label: str) -> Any:
        """A load fed while a file is read, into ``staging`` (see ``load_file``); None: this engine has none."""
        return None
        ...

    def publish_batches(
        self, *, schema: str, target: str, batches: Sequence[StagedBatch], replace: bool
    ) -> list[StagedBatch]:
        """Add staged batches to an Explore table in one transaction (``replace``: only them).

        The batch ledger rows are written first in the same transaction, so a file is
        either loaded and remembered, or neither; a file a concurrent load claimed first
        (its content is in the ledger by then) is left out, its staging table dropped.
        Returns those left out.
        """
        tgt = self.table(schema, target)
        shape = self.columns(schema, target)
        mine: list[StagedBatch] = []
        try:
            with self.transaction() as cur:
                mine = self.claim_batches(cur, batches, replace=replace)
                self._publish_claimed(cur, tgt, schema, target, shape, mine, replace=replace)
        except NothingClaimed:
            mine = []
        return self.drop_unclaimed(schema, batches, mine)

    def _publish_claimed(
        self, cur: Cursor, tgt: str, schema: str, target: str, shape: list[Column], batches: list[StagedBatch],
        *, replace: bool,
    ) -> None:
        # Replacing, or the first load: the first batch staged in the target's exact
        # shape becomes the table by a rename, without copying its rows.
        swap = replace or cur.execute(f"SELECT 1 FROM {tgt} LIMIT 1").fetchone() is None
        for i, batch in enumerate(batches):
            stg = self.table(schema, batch.staging)
            staged = self.columns(schema, batch.staging)
            if i == 0 and swap and staged == shape:
                cur.execute(f"DROP TABLE {tgt}")
                cur.execute(f"ALTER TABLE {stg} RENAME TO {self.quote(target)}")
            else:
                if i == 0 and replace:
                    cur.execute(f"DELETE FROM {tgt}")
                cols = ", ".join(self.quote(c.name) for c in staged)
                cur.execute(f"INSERT INTO {tgt} ({cols}) SELECT {cols} FROM {stg}")
                cur.execute(f"DROP TABLE {stg}")

    def claim_batches(self, cur: Cursor, batches: Sequence[StagedBatch], *, replace: bool) -> list[StagedBatch]:
        """In a publishing transaction, first of all: record each batch in the ledger; the batches claimed.

        A batch whose content a concurrent load recorded first (the ledger's key, dataset
        and checksum) is not claimed. When none is, :class:`NothingClaimed` rolls the
        transaction back (a replace leaves the table and its ledger as they were).
        """
        ledger = self.table(META_SCHEMA, "loaded_batches")
        if replace and batches:
            cur.execute(f"DELETE FROM {ledger} WHERE dataset = %s", [batches[0].dataset])
        mine = []
        for batch in batches:
            row = cur.execute(
                f"INSERT INTO {ledger} (dataset, checksum, batch_id, source, rows_loaded, loaded_at)"
                " VALUES (%s, %s, %s, %s, %s, current_timestamp)"
                " ON CONFLICT (dataset, checksum) DO NOTHING RETURNING batch_id",
                [batch.dataset, batch.checksum, batch.batch_id, batch.source, batch.rows],
            ).fetchone()
            if row:
                mine.append(batch)
        if not mine:
            raise NothingClaimed
        return mine

    def drop_unclaimed(self, schema: str, staged: Sequence[StagedBatch], published: Sequence[StagedBatch]) -> list[StagedBatch]:
        """Drop the staging tables of the batches a concurrent load claimed; return those batches."""
        done = {b.batch_id for b in published}
        theirs = [b for b in staged if b.batch_id not in done]
        for batch in theirs:
            self.drop_table(schema, batch.staging)
        return theirs

    def ensure_explore_table(self, schema: str, target: str, columns: Sequence[str]) -> None:
        """Create the Explore table, or add the source columns it does not have yet."""
        if not self.table_exists(schema, target):
            self._create_explore_table(schema, target, columns)
            return
        have = {c.name for c in self.columns(schema, target)}
        with self.cursor() as cur:
            for name in columns:
                if name not in have:
                    cur.execute(f"ALTER TABLE {self.table(schema, target)} ADD COLUMN {self.quote(name)} text")

    def column_defs(self, schema: str, table: str, *, exclude: Sequence[str] = ()) -> str:
        """``name type [NOT NULL]`` of a table's columns, in order: a staging table of the same shape.

        Types as information_schema names them (enough for Explore tables: text and load columns).
        """
        return ", ".join(
            f"{self.quote(c.name)} {c.type}{'' if c.nullable else ' NOT NULL'}"
            for c in self.columns(schema, table)
            if c.name not in exclude
        )

    def _explore_column_defs(self, columns: Sequence[str]) -> str:
        defs = [f"{self.quote(c)} text" for c in columns]
        defs += [
            '"_batch_id" text NOT NULL',
            '"_ingested_at" timestamp with time zone NOT NULL',
            '"_source" text',
            '"_row_number" bigint',
        ]
        return ", ".join(defs)

    def _create_explore_table(self, schema: str, target: str, columns: Sequence[str]) -> None:
        with self.cursor() as cur:
            cur.execute(f"CREATE TABLE {self.table(schema, target)} ({self._explore_column_defs(columns)})")

    def ensure_quarantine_table(self, schema: str, table: str) -> str:
        name = f"{table}__quarantine"
        with self.cursor() as cur:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table(schema, name)} ("
                '"_batch_id" text, "_run_id" bigint, "_source" text, "_line_number" bigint,'
                ' "_reason" text NOT NULL, "_raw_record" text,'
                ' "_quarantined_at" timestamp with time zone NOT NULL,'
                ' "_reason_class" text, "_byte_offset" bigint, "_raw_bytes" bytea, "_file_checksum" text)'
            )
            have = {c.name for c in self.columns(schema, name)}
            for col, kind in QUARANTINE_EVIDENCE_COLUMNS:
                if col not in have:
                    cur.execute(f"ALTER TABLE {self.table(schema, name)} ADD COLUMN {self.quote(col)} {kind}")
        return name

    def quarantine_rejects(
        self,
        schema: str,
        table: str,
        rejects: Sequence[Reject],
        *,
        batch_id: str,
        run_id: int | None,
        source: str,
        raw_chars: int,
        checksum: str | None = None,
    ) -> int:
        """Keep ``rejects`` in the quarantine; with ``checksum``, first drop what an earlier try of the same file left.

        A retry of a refused file parses it again: its rejects replace the earlier ones, never add to them.
        """
        if not rejects and (checksum is None or not self.table_exists(schema, f"{table}__quarantine")):
            return 0
        name = self.ensure_quarantine_table(schema, table)
        cols = ", ".join(self.quote(c) for c in QUARANTINE_COLUMNS)
        with self.transaction() as cur:
            if checksum is not None:
                cur.execute(f"DELETE FROM {self.table(schema, name)} WHERE {self.quote('_file_checksum')} = %s", [checksum])
            if rejects:
                cur.executemany(
                    f"INSERT INTO {self.table(schema, name)} ({cols})"
                    " VALUES (%s, %s, %s, %s, %s, %s, current_timestamp, %s, %s, %s, %s)",
                    [
                        (
                            batch_id,
                            run_id,
                            source,
                            r.line,
                            r.reason,
                            r.raw[:raw_chars].replace("\x00", "\ufffd") if r.raw is not None else None,
                            r.reason_class,
                            r.offset,
                            r.raw_bytes,
                            checksum,
                        )
                        for r in rejects
                    ],
                )
        return len(rejects)

    def quarantine_batches(
        self, schema: str, name: str, dataset: str, run_ids: Sequence[int]
    ) -> tuple[set[tuple[int, str]], set[str]]:
        """The janitor's view of a quarantine: its (run, batch) pairs of ``run_ids``, and which the ledger has."""
        q, ledger = self.table(schema, name), self.table(META_SCHEMA, "loaded_batches")
        runs = ", ".join(str(int(r)) for r in run_ids)
        with self.cursor() as cur:
            pairs = cur.execute(
                f'SELECT DISTINCT "_run_id", "_batch_id" FROM {q} WHERE "_run_id" IN ({runs}) AND "_batch_id" IS NOT NULL'
            ).fetchall()
            published = cur.execute(
                f'SELECT DISTINCT l.batch_id FROM {ledger} l JOIN {q} r ON r."_batch_id" = l.batch_id'
                f' WHERE l.dataset = %s AND r."_run_id" IN ({runs})',
                [dataset],
            ).fetchall()
        return {(int(r), str(b)) for r, b in pairs}, {b for (b,) in published}

    def delete_quarantine_batches(self, schema: str, name: str, batch_ids: Sequence[str]) -> int:
        """Delete the quarantine rows of ``batch_ids``; how many."""
        q, marks = self.table(schema, name), ", ".join(["%s"] * len(batch_ids))
        with self.transaction() as cur:
            (n,) = cur.execute(f'SELECT count(*) FROM {q} WHERE "_batch_id" IN ({marks})', list(batch_ids)).fetchone()
            cur.execute(f'DELETE FROM {q} WHERE "_batch_id" IN ({marks})', list(batch_ids))
        return int(n)

    # --- batch ledger (skip a file already loaded) ----------------------------
    def loaded_batch(self, dataset: str, checksum: str) -> str | None:
        with self.cursor() as cur:
            row = cur.execute(
                f"SELECT batch_id FROM {self.table(META_SCHEMA, 'loaded_batches')}"
                " WHERE dataset = %s AND checksum = %s",
                [dataset, checksum],
            ).fetchone()
        return row[0] if row else None

    def loaded_source(self, dataset: str, source: str) -> bool:
        """Whether the ledger holds a batch of ``dataset`` read from a file named ``source``."""
        with self.cursor() as cur:
            row = cur.execute(
                f"SELECT 1 FROM {self.table(META_SCHEMA, 'loaded_batches')} WHERE dataset = %s AND source = %s LIMIT 1",
                [dataset, source],
            ).fetchone()
        return row is not None

    def forget_batches(self, dataset: str) -> None:
        with self.cursor() as cur:
            cur.execute(f"DELETE FROM {self.table(META_SCHEMA, 'loaded_batches')} WHERE dataset = %s", [dataset])

    # --- PII (compliance): sampling and the keyed pseudonym ---------------------
    PII_KEYS_TABLE = "pii_keys"
    PII_HMAC_FUNCTION = "pii_hmac"

    @abc.abstractmethod
    def _row_sample_sql(self, schema: str, table: str, rows: int, total: int) -> str:  # pragma: no cover
        """A SELECT of about ``rows`` rows of the table, the same rows every time (seeded, engine-specific)."""
        ...

    def sample_distinct(
        self,
        schema: str,
        table: str,
        columns: Sequence[str],
        *,
        limit: int,
        scan_rows: int,
        max_chars: int | None = None,
        batches: Sequence[str] | None = None,
    ) -> dict[str, list[str]]:
        """Up to ``limit`` distinct non-null values (as text) per column, in one query.

        Above ``scan_rows`` rows the table is sampled first (in the warehouse, seeded), so
        a scan never reads or sorts the whole table; every column sees the same sample.
        The distinct values kept are those with the smallest MD5, so the same data gives
        the same sample every time. ``max_chars``: values are cut to that many characters
        plus one in the warehouse (the caller sees which were longer). ``batches``: only the
        rows of these loaded batches (``_batch_id``, an Explore table's), sampled the same way
        at the rate their own row count needs.
        """
        if not columns:
            return {}
        if batches:
            if not all(isinstance(b, str) and _BATCH_ID.fullmatch(b) for b in batches):
                raise WarehouseError("A batch id to sample is not one Atlas makes (letters, digits, _ and -).")
            keep = f"{self.quote('_batch_id')} IN ({', '.join(self.literal(b) for b in batches)})"
            with self.cursor() as cur:
                total = int(cur.execute(f"SELECT count(*) FROM {self.table(schema, table)} WHERE {keep}").fetchone()[0])
            whole = (
                self._row_sample_sql(schema, table, scan_rows, total)
                if total > scan_rows
                else f"SELECT * FROM {self.table(schema, table)}"
            )
            source = f"SELECT * FROM ({whole}) AS _atlas_rows WHERE {keep}"
        else:
            total = self.row_count(schema, table)
            source = (
                self._row_sample_sql(schema, table, scan_rows, total)
                if total > scan_rows
                else f"SELECT * FROM {self.table(schema, table)}"
            )
        parts = []
        for i, col in enumerate(columns):
            q = self.quote(col)
            text = f"CAST({q} AS text)" if max_chars is None else f"substr(CAST({q} AS text), 1, {int(max_chars) + 1})"
            parts.append(
                f"SELECT {i} AS i, v FROM (SELECT v FROM (SELECT DISTINCT {text} AS v"
                f" FROM _atlas_sample WHERE {q} IS NOT NULL) AS d{i} ORDER BY md5(v), v LIMIT {int(limit)}) AS s{i}"
            )
        sql = f"WITH _atlas_sample AS ({source}) " + " UNION ALL ".join(parts)
        found: dict[str, list[str]] = {c: [] for c in columns}
        with self.cursor() as cur:
            for i, value in cur.execute(sql).fetchall():
                found[columns[int(i)]].append(value)
        return found

    def ensure_pii_hmac(self, key_id: str, ipad: bytes, opad: bytes) -> None:
        """Store the key's HMAC pads in the meta schema and define ``atlas.pii_hmac``.

        The pads live in a table (never in the SQL text, which step runs keep), and
        the function is HMAC-SHA256 built from the engine's own SHA-256, so both
        engines give the same token as Python's ``hmac`` for the same key and text.
        """
        keys = self.table(META_SCHEMA, self.PII_KEYS_TABLE)
        # The block-sized key itself (what ``hmac(data, key, 'sha256')`` takes, e.g. pgcrypto's).
        block_key = bytes(b ^ 0x36 for b in ipad)
        with self.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quote(META_SCHEMA)}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {keys} (key_id text PRIMARY KEY, ipad bytea, opad bytea)")
            cur.execute(f"ALTER TABLE {keys} ADD COLUMN IF NOT EXISTS block_key bytea")
        with self.transaction() as cur:
            cur.execute(f"DELETE FROM {keys} WHERE key_id = %s", [key_id])
            cur.execute(
                f"INSERT INTO {keys} (key_id, ipad, opad, block_key) VALUES (%s, %s, %s, %s)",
                [key_id, ipad, opad, block_key],
            )
        self._create_pii_hmac_function()

    @abc.abstractmethod
    def _create_pii_hmac_function(self) -> None:  # pragma: no cover - abstract
        ...

    def pii_hmac_sql(self, expr_sql: str, key_id: str, *, implementation: str | None = None) -> str:
        """The keyed pseudonym of a PostgreSQL-dialect expression (``implementation``: engine variants)."""
        keys = self.table(META_SCHEMA, self.PII_KEYS_TABLE)
        kid = self.literal(key_id)
        return (
            f"{self.quote(META_SCHEMA)}.{self.PII_HMAC_FUNCTION}(CAST({expr_sql} AS text),"
            f" (SELECT ipad FROM {keys} WHERE key_id = {kid}), (SELECT opad FROM {keys} WHERE key_id = {kid}))"
        )

    @staticmethod
    def safe_suffix(text: str) -> str:
        """A suffix usable inside an identifier (for staging names)."""
        return re.sub(r"[^A-Za-z0-9_]", "_", text)
