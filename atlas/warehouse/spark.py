"""The Spark warehouse, reached through Spark Connect (``WAREHOUSE_URL=sc://host:15002``).

One backend serves a local Spark (``atlas.warehouse.sparklocal``), a cluster and a hosted Spark
that speaks Spark Connect. Tables live in the server's persistent catalog (Hive metastore) in
the databases ``explore``, ``chart``, ``navigate`` and ``atlas``, stored as Parquet.

**Publishing.** Spark has no transactions over Parquet tables, so a published dataset is a
*view* over immutable Parquet tables, its *parts* (``<table>__atlas_v<12 hex>``, named in the
view's ``atlas.parts`` property). A publish writes what is new into new parts first, then
replaces the view in one catalog operation (``CREATE OR REPLACE VIEW``: one metastore call):

* replace: the staged table becomes the one part; append: the view gains the staged part (a
  ``UNION ALL``, nothing copied; an Explore table is one part per loaded file, as PostgreSQL
  keeps one partition per file); merge: one new part holds the published rows whose key is not
  replaced (staged, or given by an incremental step before its checks dropped rows) plus the
  staged rows, so an incremental transform's keyed merge runs here as on the other engines.
* A reader sees the old view or the new one, never a half-written table: a query resolves the
  view once, when it is planned. Parts the new view no longer names are *retired*, dropped
  ``ATLAS_SPARK_RETIRE_SECONDS`` later (by a later publish, ``drop_retired``), so a query planned
  just before the swap still finds its files.
* A step killed before the swap leaves the published view as it was (its staging table or new
  part is a leftover: the janitor drops staging tables; an unnamed part is dropped by the next
  publish of that dataset). Killed after the swap and before the receipt is stored, the step is
  run again on resume (a replace gives the same table; an append could add its rows twice).

Atlas's own statements are written in PostgreSQL's dialect (``%s`` placeholders, ``"names"``)
and rendered for Spark by sqlglot; a ``DELETE`` (retention, erasure, the ledger) is run as a
rewrite of the table without those rows (Parquet tables have no ``DELETE``). Operator SQL is
transpiled with the column types (``atlas.sql.transpile.to_spark``) and run on its own.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlglot
from django.conf import settings
from sqlglot import exp
from sqlglot.errors import SqlglotError

from atlas.sql.transpile import ColumnTypes, postgres_to_spark, to_spark

from . import interrupts, privileges
from .base import (
    LAYER_SCHEMAS,
    LOAD_COLUMNS,
    META_SCHEMA,
    PLANNING_INSTANT,
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
    WriteMode,
    hide_values,
)
from .features import BaseFeatures
from .operations import BaseOperations
from .quality_ops import QualityOps
from .sparkfacts import SparkJobFacts
from .sparkingest import SparkIngest
from .sparkparts import SparkPartOperations, SparkPartRewrites
from .sparkrows import SparkRows

PART_RE = re.compile(r"__atlas_v[0-9a-f]{12}$")
PARTS_PROPERTY = "atlas.parts"
RETIRED_TABLE = "spark_retired_parts"
# Statements Spark Connect runs as soon as it receives them (SparkWarehouse._command).
_COMMAND_RE = re.compile(r"\s*(CREATE|DROP|ALTER|INSERT|TRUNCATE)\b", re.IGNORECASE)
# Queries: sent once, when their rows are read (SparkWarehouse._query). Not WITH: Spark's WITH may head an INSERT.
_QUERY_RE = re.compile(r"[\s(]*(SELECT|VALUES)\b", re.IGNORECASE)
# Spark's error classes about a value of the data: their messages quote it (``hide_values``).
_DATA_ERROR_CLASSES = ("CAST_", "ARITHMETIC", "DIVIDE_BY_ZERO", "NUMERIC_", "INVALID_FRACTION", "DATETIME_",
                       "INVALID_ARRAY_INDEX", "CANNOT_PARSE", "BINARY_ARITHMETIC")

# Spark's types as information_schema would name them on PostgreSQL (schema checks, type families).
_TYPE_NAMES = {
    "string": "text",
    "int": "integer",
    "integer": "integer",
    "bigint": "bigint",
    "smallint": "smallint",
    "tinyint": "smallint",
    "double": "double precision",
    "float": "real",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp with time zone",  # Spark's TIMESTAMP is an instant (WITH LOCAL TIME ZONE)
    "timestamp_ltz": "timestamp with time zone",
    "timestamp_ntz": "timestamp without time zone",
    "binary": "bytea",
    "void": "text",
}


def pg_type(spark_type: str) -> str:
    """A Spark type name as PostgreSQL's information_schema names it (``decimal(10,2)`` -> ``numeric(10,2)``)."""
    name = spark_type.strip().lower()
    if name.startswith("decimal"):
        return "numeric" + name[len("decimal"):]
    if name.startswith(("varchar", "char")):
        return "text"
    return _TYPE_NAMES.get(name, name)


@functools.lru_cache(maxsize=512)
def render(sql: str) -> str:
    """Atlas's own SQL (PostgreSQL's dialect, ``%s`` or ``?`` placeholders) as Spark SQL."""
    text = sql.replace("%s", "?")
    try:
        return postgres_to_spark(text)
    except SqlglotError as exc:
        raise WarehouseError(f"Statement not understood for Spark: {exc}") from exc


def _quiet_client_logs() -> None:
    # The Spark Connect client logs every failed query (with its SQL and the server's stack) at
    # ERROR; the backend raises a WarehouseError instead, with a message free of values.
    for name in ("SQLQueryContextLogger", "pyspark", "py4j"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


class SparkFeatures(BaseFeatures):
    transactions = False
    # The keyed merge writes one new part and swaps the view (``publish``): incremental steps run here
    incremental_transforms = True
    # An Explore view's parts are its batches (sparkparts): retention drops them whole
    partitioned_explore_tables = True


class SparkOperations(SparkPartOperations, BaseOperations):
    def use_utc(self, cur: Cursor) -> None:
        cur.execute("SET TIME ZONE 'UTC'")

    def try_cast_timestamptz(self, expr: str) -> str:
        return f"TRY_CAST({expr} AS timestamp with time zone)"

    def regex_full_match(self, expr: str, pattern: str) -> str:
        return f"({expr} ~ {self.wh.literal(f'^(?:{pattern})$')})"


class SparkQualityOps(QualityOps):
    """Quality's SQL goes to ``operator_query`` as written: Spark's dialect with ``"names"`` (see ``spark()``)."""

    def regex_match(self, expr: str) -> str:
        return f"({expr} RLIKE %s)"

    @staticmethod
    def cast_text(expr: str) -> str:
        return f"CAST({expr} AS STRING)"


class SparkCursor(Cursor):
    """``%s`` placeholders and PostgreSQL's dialect, run on Spark; ``DELETE`` as a rewrite."""

    def __init__(self, wh: SparkWarehouse) -> None:
        super().__init__(self, "qmark")
        self.wh = wh
        self._rows: list[tuple] | None = None
        self._columns: list[str] = []
        self.rowcount = -1

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> SparkCursor:
        spark_sql = render(sql)
        self._rows, self.rowcount = None, -1
        if spark_sql.lstrip()[:6].upper() == "DELETE":
            self.rowcount = self.wh._delete(spark_sql, list(params or ()))
            self._rows, self._columns = [], []
            return self
        df = self.wh._sql(spark_sql, params)
        self._df = df
        self._columns = []
        if _QUERY_RE.match(spark_sql):
            self._fetch()  # run now, as the other engines' cursors do (a query is only sent when collected)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One multi-row ``INSERT ... VALUES`` per 200 rows (a statement per row costs a job each)."""
        if not rows:
            return
        head, sep, values = render(sql).rpartition(" VALUES ")
        if not sep:
            for row in rows:
                self.execute(sql, row)
            return
        for start in range(0, len(rows), 200):
            chunk = rows[start:start + 200]
            text = head + " VALUES " + ", ".join([values] * len(chunk))
            self.wh._command(text, [v for row in chunk for v in row])

    def _fetch(self) -> list[tuple]:
        if self._rows is None:
            df = self._df
            rows = self.wh._collect(df)
            self._columns = self.wh._names(df, rows)
            self._rows = _instants([tuple(r) for r in rows], df)
        return self._rows

    def fetchall(self) -> list[tuple]:
        rows = self._fetch()
        self._rows = []
        return rows

    def fetchone(self) -> tuple | None:
        rows = self._fetch()
        return rows.pop(0) if rows else None

    @property
    def column_names(self) -> list[str]:
        if self._rows is None and getattr(self, "_df", None) is not None:
            return list(self._df.columns)
        return self._columns

    @property
    def description(self) -> list[tuple]:
        return [(c,) for c in self.column_names]


class SparkWarehouse(SparkIngest, SparkRows, SparkPartRewrites, SparkJobFacts, SparkQualityOps, Warehouse):
    vendor = "spark"
    dialect = "spark"
    operations_class = SparkOperations
    features_class = SparkFeatures

    def __init__(self, url: str) -> None:
        self.url = url
        self._session: Any = None
        self._lock = threading.Lock()

    # --- the session --------------------------------------------------------------------
    def spark(self) -> Any:
        with self._lock:
            if self._session is None:
                try:
                    from pyspark.sql import SparkSession
                except ImportError as exc:
                    raise WarehouseError(
                        "WAREHOUSE_URL names a Spark Connect server (sc://), but pyspark is not installed:"
                        " pip install 'atlas[spark]'."
                    ) from exc
                _quiet_client_logs()
                self._reachable()
                try:
                    session = SparkSession.builder.remote(self.url).create()
                    session.conf.set("spark.sql.session.timeZone", settings.TIME_ZONE)
                    session.conf.set("spark.sql.ansi.enabled", "true")
                    # "name" is a name, as in Atlas's own SQL for every engine (quality's scans); operator
                    # SQL transpiled for Spark writes `name` and 'text', so nothing else changes
                    session.conf.set("spark.sql.ansi.doubleQuotedIdentifiers", "true")
                    session.registerProgressHandler(self._on_progress)  # the steps' Spark facts (sparkfacts)
                except Exception as exc:  # noqa: BLE001 - grpc and pyspark raise many kinds
                    raise WarehouseError(f"Cannot reach the Spark Connect server {self._shown_url()}: {_first_line(exc)}") from exc
                self._session = session
            return self._session

    def _reachable(self) -> None:
        """Fail at once when nothing listens at the URL (the client would retry for minutes)."""
        hostport = re.sub(r"^sc://", "", self.url).split("/", 1)[0].split(";", 1)[0]
        host, _, port = hostport.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port or 15002)), timeout=10):
                pass
        except (OSError, ValueError) as exc:
            raise WarehouseError(f"Cannot reach the Spark Connect server {self._shown_url()}: {exc}") from exc

    def _shown_url(self) -> str:
        return re.sub(r";.*$", "", self.url)  # parameters (a token) never shown

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                with contextlib.suppress(Exception):  # a server already gone
                    self._session.stop()
                self._session = None

    def _failure(self, exc: BaseException, *, operator: bool = False) -> BaseException:
        watch = interrupts.current()
        if watch is not None and watch.reason is not None:
            return interrupts.Interrupted(watch.reason)
        if isinstance(exc, WarehouseError):
            return exc
        message = _first_line(exc)
        if operator or _condition(exc).startswith(_DATA_ERROR_CLASSES):
            message = hide_values(message)
        return WarehouseError(message)

    def _sql(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None, *, operator: bool = False) -> Any:
        """A DataFrame of ``sql`` (Spark's dialect); commands (DDL, INSERT) run at once, queries when collected."""
        watch = interrupts.current()
        if watch is not None:
            watch.check()
        args: Any = None
        if params:
            args = dict(params) if isinstance(params, Mapping) else [_arg(v) for v in params]
        try:
            if _QUERY_RE.match(sql):
                return self._query(sql, args)
            return self.spark().sql(sql, args=args) if args else self.spark().sql(sql)
        except Exception as exc:  # noqa: BLE001
            raise self._failure(exc, operator=operator) from exc

    def _query(self, sql: str, args: list[Any] | dict[str, Any] | None) -> Any:
        """A DataFrame of a query with nothing sent yet: the server receives it once, when it is collected.

        ``SparkSession.sql`` sends every statement as a command. For a query the server parses and
        analyses it only to answer with the same SQL as a relation, which ``collect`` sends again:
        two requests and two analyses (a Connect thread and metastore calls each) for one query,
        about a third of a pipeline step's requests. This is the relation pyspark's own ``sql``
        builds when a server answers a query without a result; errors come when it is collected
        (or its schema asked), where :meth:`_collect` and its callers catch them.
        """
        from pyspark.sql.connect.dataframe import DataFrame
        from pyspark.sql.connect.functions import builtin as F
        from pyspark.sql.connect.plan import SQL

        positional = [F.lit(v) for v in args] if isinstance(args, list) else []
        named = {k: F.lit(v) for k, v in args.items()} if isinstance(args, dict) else {}
        return DataFrame(SQL(sql, positional, named, []), self.spark())

    def _collect(self, df: Any, *, operator: bool = False) -> list:
        try:
            return collect_rows(df)
        except Exception as exc:  # noqa: BLE001
            raise self._failure(exc, operator=operator) from exc

    def _names(self, df: Any, rows: list, *, operator: bool = False) -> list[str]:
        """A result's column names: its rows carry them (asking the DataFrame is another request); when none came, asked."""
        if rows:
            return list(rows[0].__fields__)
        try:
            return list(df.columns)
        except Exception as exc:  # noqa: BLE001
            raise self._failure(exc, operator=operator) from exc

    def _run(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Run Atlas's own Spark SQL (already in Spark's dialect) and return its rows.

        A command's rows (DESCRIBE, SHOW ...) came with the server's answer: read there, not
        collected by a second request (see :func:`_rows_sent_with`).
        """
        df = self._sql(sql, params)
        rows = _rows_sent_with(df)
        return rows if rows is not None else [tuple(r) for r in self._collect(df)]

    def _command(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run a command of Atlas's own (DDL, INSERT) whose result is not read: one round trip, not two.

        Spark Connect runs a command when it receives it and answers with a relation of its result;
        :meth:`_run` then sends that relation back to be collected, a second request the server plans
        and executes for nothing. Errors are raised here as in :meth:`_run`.
        """
        if not _COMMAND_RE.match(sql):
            raise ValueError(f"not a command Spark runs when it receives it: {sql[:60]!r}")
        self._sql(sql, params)

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        yield SparkCursor(self)

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """Spark has no transactions: the statements run one by one.

        What must be all-or-nothing (publishing, a rewrite) is written by this backend as new
        tables and one catalog swap (see the module's docstring), not inside this block.
        """
        yield SparkCursor(self)

    # --- names --------------------------------------------------------------------------
    def sq(self, schema: str, name: str) -> str:
        """A table's name in Spark's dialect (backticks)."""
        return f"`{_ident(schema)}`.`{_ident(name)}`"

    def regex_problem(self, pattern: str) -> str | None:
        try:
            self._run("SELECT '' RLIKE ?", [pattern])
        except WarehouseError as exc:
            return f"The regex is not valid for Spark (Java regex): {exc}"
        return None

    # --- catalogue ----------------------------------------------------------------------
    # Atlas's own tables in META_SCHEMA, created by ensure_schemas where missing.
    _META_TABLES = {
        "loaded_batches": "(dataset STRING, checksum STRING, batch_id STRING, source STRING, rows_loaded BIGINT,"
                          " loaded_at TIMESTAMP)",
        "published_steps": "(receipt STRING, published_at TIMESTAMP)",
        RETIRED_TABLE: "(schema_name STRING, part STRING, retired_at TIMESTAMP)",
    }

    def ensure_schemas(self) -> None:
        """The layers' databases and Atlas's own tables, each created where missing (every step asks).

        Two catalog reads when all are there, not a ``CREATE ... IF NOT EXISTS`` each: every request
        costs the Connect server a thread and the Hive metastore a session of its own (about 30 ms).
        """
        have = {str(r[0]).lower() for r in self._run("SHOW DATABASES")}
        for schema in (*LAYER_SCHEMAS, META_SCHEMA):
            if schema.lower() not in have:
                self._command(f"CREATE DATABASE IF NOT EXISTS `{_ident(schema)}`")
        tables = {str(r[1]).lower() for r in self._run(f"SHOW TABLES IN `{_ident(META_SCHEMA)}`") if not r[2]}
        for name, columns in self._META_TABLES.items():
            if name.lower() not in tables:
                self._command(f"CREATE TABLE IF NOT EXISTS {self.sq(META_SCHEMA, name)} {columns} USING parquet")

    def _tables(self, schema: str) -> dict[str, str]:
        """name -> ``TABLE`` or ``VIEW`` of a database's relations (parts included); empty when it does not exist."""
        try:
            rows = self._run(f"SHOW TABLES IN `{_ident(schema)}`")
        except WarehouseError as exc:
            if "SCHEMA_NOT_FOUND" in str(exc) or "not found" in str(exc).lower():
                return {}
            raise
        names = [r[1] for r in rows if not r[2]]
        if not names:
            return {}
        views = {r[1] for r in self._run(f"SHOW VIEWS IN `{_ident(schema)}`") if not r[2]}
        return {n: ("VIEW" if n in views else "TABLE") for n in names}

    def _kind(self, schema: str, name: str) -> str | None:
        """``TABLE``, ``VIEW`` or None: one lookup of that name, not a listing of the database (two requests)."""
        watch = interrupts.current()
        if watch is not None:
            watch.check()
        try:
            table = self.spark().catalog.getTable(f"`{_ident(schema)}`.`{_ident(name)}`")
        except Exception as exc:  # noqa: BLE001
            if _condition(exc) in _NOT_FOUND or (not _condition(exc) and "cannot be found" in str(exc)):
                return None
            raise self._failure(exc) from exc
        return "VIEW" if str(table.tableType).upper() == "VIEW" else "TABLE"

    def table_exists(self, schema: str, name: str) -> bool:
        return self._kind(schema, name) is not None

    def columns(self, schema: str, name: str) -> list[Column]:
        rows = self._run(f"DESCRIBE TABLE {self.sq(schema, name)}")
        out = []
        for col, data_type, _comment in rows:
            if not col or col.startswith("#"):
                break  # partition information follows
            out.append(Column(col, pg_type(data_type), True))
        return out

    def catalogue(self, schemas: Sequence[str]) -> dict[tuple[str, str], dict[str, str]]:
        """Every table's columns and types: a schema's listing, then one analysed plan over its tables.

        A ``DESCRIBE`` of each was a request each (the privacy requests read the catalogue several
        times: 84 of the demo's 414 ``DESCRIBE``). Where the plan does not analyse (a view whose
        tables are gone), each table is described as before.
        """
        out: dict[tuple[str, str], dict[str, str]] = {}
        for schema in schemas:
            names = [name for name in sorted(self._tables(schema)) if not PART_RE.search(name)]
            try:
                fields = self._fields_of(schema, names)
            except WarehouseError:
                fields = None
            for name in names:
                out[(schema, name)] = (
                    {f.name: pg_type(f.dataType.simpleString()) for f in fields[name]} if fields is not None
                    else {c.name: c.type for c in self.columns(schema, name)}
                )
        return out

    def relations(self, schemas: Sequence[str]) -> list[tuple[str, str, str]]:
        """Tables and views of ``schemas``; a published view's parts are this backend's own, never listed."""
        return [(s, n, "table") for s in schemas for n in sorted(self._tables(s)) if not PART_RE.search(n)]

    def drop_relation(self, schema: str, name: str, kind: str) -> None:
        if kind == "sequence":
            return
        self.drop_table(schema, name)

    def drop_table(self, schema: str, name: str) -> None:
        """Drop a table, or a published view and its parts."""
        kind = self._kind(schema, name)
        if kind == "VIEW":
            parts = self._parts(schema, name)
            self._command(f"DROP VIEW IF EXISTS {self.sq(schema, name)}")
            for part in parts:
                self._command(f"DROP TABLE IF EXISTS {self.sq(schema, part)}")
        elif kind == "TABLE":
            self._command(f"DROP TABLE IF EXISTS {self.sq(schema, name)}")

    def row_count(self, schema: str, name: str) -> int:
        return int(self._run(f"SELECT count(*) FROM {self.sq(schema, name)}")[0][0])

    def has_receipt(self, receipt: str) -> bool:
        rows = self._run(f"SELECT 1 FROM {self.sq(META_SCHEMA, 'published_steps')} WHERE receipt = ? LIMIT 1", [receipt])
        return bool(rows)

    def create_table_as(self, schema: str, name: str, select_sql: str) -> int:
        self.drop_table(schema, name)
        self._command(f"CREATE TABLE {self.sq(schema, name)} USING parquet AS {select_sql}")
        return self.row_count(schema, name)

    # --- views over parts -----------------------------------------------------------------
    def _parts(self, schema: str, view: str) -> list[str]:
        rows = self._run(f"SHOW TBLPROPERTIES {self.sq(schema, view)} ('{PARTS_PROPERTY}')")
        value = rows[0][1] if rows and len(rows[0]) > 1 else (rows[0][0] if rows else "")
        if not value or "does not have property" in str(value):
            return []
        return [p for p in str(value).split(",") if p]

    def _new_part(self, target: str) -> str:
        return f"{target[:40]}__atlas_v{uuid.uuid4().hex[:12]}"

    def _columns_of_parts(self, schema: str, parts: Sequence[str]) -> dict[str, set[str]]:
        """Each part's column names, in one request (:meth:`_fields_of`).

        A view is rebuilt over every part it keeps, a column a part lacks filled with NULL, and an
        Explore view holds one part per loaded file: a ``DESCRIBE`` of each was a request each (the
        Connect server's thread and metastore session each), hundreds per load on a long-lived table.
        """
        return {part: {f.name for f in fields} for part, fields in self._fields_of(schema, parts).items()}

    def _fields_of(self, schema: str, names: Sequence[str]) -> dict[str, list[Any]]:
        """Each table's fields (pyspark's ``StructField``), in one request: a plan over them all, analysed and never run."""
        unique = list(dict.fromkeys(names))
        if not unique:
            return {}
        items = ", ".join(f"struct(p{i}.*) AS p{i}" for i in range(len(unique)))
        tables = " CROSS JOIN ".join(f"{self.sq(schema, name)} AS p{i}" for i, name in enumerate(unique))
        df = self._sql(f"SELECT {items} FROM {tables} LIMIT 0")
        try:
            fields = df.schema.fields
        except Exception as exc:  # noqa: BLE001
            raise self._failure(exc) from exc
        return {name: list(fields[i].dataType.fields) for i, name in enumerate(unique)}

    def _swap(self, schema: str, target: str, parts: Sequence[str], columns: Sequence[Column], *, receipt: str | None = None) -> None:
        """Point ``schema.target`` at ``parts`` (a UNION ALL of their ``columns``; NULL where a part lacks one): one catalog operation."""
        kind = self._kind(schema, target)
        old = self._parts(schema, target) if kind == "VIEW" else []
        if kind == "TABLE":
            # A plain table made outside a publish (a test, an older install): it becomes a part first.
            part = self._new_part(target)
            self._command(f"ALTER TABLE {self.sq(schema, target)} RENAME TO {self.sq(schema, part)}")
            old = [part]
        selects = []
        columns_of = self._columns_of_parts(schema, parts)
        for part in parts:
            have = columns_of[part]
            items = [
                f"`{_ident(c.name)}`" if c.name in have else f"CAST(NULL AS {_spark_type(c.type)}) AS `{_ident(c.name)}`"
                for c in columns
            ]
            selects.append(f"SELECT {', '.join(items)} FROM {self.sq(schema, part)}")
        body = " UNION ALL ".join(selects)
        props = f"'{PARTS_PROPERTY}' = {self._lit(','.join(parts))}"
        if receipt is not None:
            props += f", 'atlas.receipt' = {self._lit(receipt)}"
        self._command(f"CREATE OR REPLACE VIEW {self.sq(schema, target)} TBLPROPERTIES ({props}) AS {body}")
        retired = [p for p in old if p not in parts]
        if retired:
            self._retire(schema, retired)

    @staticmethod
    def _lit(value: str) -> str:
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    def _retire(self, schema: str, parts: Sequence[str]) -> None:
        """Keep retired parts for readers that planned before the swap; drop those retired long enough ago."""
        grace = float(settings.ATLAS_SPARK_RETIRE_SECONDS)
        if grace <= 0:
            for part in parts:
                self._command(f"DROP TABLE IF EXISTS {self.sq(schema, part)}")
            return
        retired = self.sq(META_SCHEMA, RETIRED_TABLE)
        values = ", ".join(f"({self._lit(schema)}, {self._lit(p)}, current_timestamp())" for p in parts)
        self._command(f"INSERT INTO {retired} VALUES {values}")
        self.drop_retired()

    def drop_retired(self) -> int:
        """Drop the parts retired more than ``ATLAS_SPARK_RETIRE_SECONDS`` ago; how many."""
        grace = float(settings.ATLAS_SPARK_RETIRE_SECONDS)
        retired = self.sq(META_SCHEMA, RETIRED_TABLE)
        due = self._run(
            f"SELECT schema_name, part FROM {retired}"
            f" WHERE retired_at < current_timestamp() - make_dt_interval(0, 0, 0, {grace:f})"
        )
        for schema, part in due:
            self._command(f"DROP TABLE IF EXISTS {self.sq(schema, part)}")
        if due:
            self._rewrite_without(
                META_SCHEMA, RETIRED_TABLE, f"retired_at < current_timestamp() - make_dt_interval(0, 0, 0, {grace:f})", []
            )
        return len(due)

    # --- DELETE as a rewrite ------------------------------------------------------------
    def _delete(self, spark_sql: str, params: list[Any]) -> int:
        """``DELETE FROM t [AS a] [WHERE cond]`` on Spark: ``t`` rewritten without the rows; how many went."""
        try:
            tree = sqlglot.parse_one(spark_sql, read="spark")
        except SqlglotError as exc:
            raise WarehouseError(f"Statement not understood for Spark: {exc}") from exc
        table = tree.this
        if not isinstance(tree, exp.Delete) or not isinstance(table, exp.Table):
            raise WarehouseError("Only DELETE FROM a table is supported on Spark.")
        schema, name = table.db, table.name
        alias = table.alias_or_name if table.alias else None
        where = tree.args.get("where")
        cond = where.this.sql(dialect="spark") if where is not None else "true"
        return self._rewrite_without(schema, name, cond, params, alias=alias)

    def _rewrite_without(self, schema: str, name: str, cond: str, params: list[Any], *, alias: str | None = None) -> int:
        if self._kind(schema, name) == "VIEW":  # a published dataset: only its parts holding such rows (sparkparts)
            return self._rewrite_view_without(schema, name, cond, params, alias=alias)
        src = f"{self.sq(schema, name)}" + (f" AS `{_ident(alias)}`" if alias else "")
        before = self.row_count(schema, name)
        keep = f"SELECT * FROM {src} WHERE NOT coalesce(({cond}), false)"
        # Atlas's metadata tables: a copy, then INSERT OVERWRITE (Spark cannot overwrite what it reads).
        tmp = f"{name[:40]}__atlas_rw{uuid.uuid4().hex[:8]}"
        self._command(f"CREATE TABLE {self.sq(schema, tmp)} USING parquet AS {keep}", params)
        try:
            self._command(f"INSERT OVERWRITE TABLE {self.sq(schema, name)} SELECT * FROM {self.sq(schema, tmp)}")
        finally:
            self._command(f"DROP TABLE IF EXISTS {self.sq(schema, tmp)}")
        return before - self.row_count(schema, name)

    # --- operator SQL -----------------------------------------------------------------
    def transpile(self, sql: str, types: ColumnTypes | None = None) -> str:
        return to_spark(sql, types)

    def bind_parameters(
        self, select_sql: str, values: Mapping[str, Any] | None, *, planning: bool = False
    ) -> tuple[str, dict[str, Any] | None]:
        """Spark binds ``:name`` itself (the transpiled text keeps the run parameters' names)."""
        from atlas.sql import params

        if ":" not in select_sql:
            return select_sql, None
        try:
            tree = sqlglot.parse_one(select_sql, read="spark")
        except SqlglotError:
            return select_sql, None
        names = sorted({str(n.name) for n in tree.find_all(exp.Placeholder) if n.name})
        if not names:
            return select_sql, None
        if planning:
            values = {n: (values or {}).get(n) or PLANNING_INSTANT for n in names}
        try:
            return select_sql, params.check_names(names, values)
        except params.SQLRefused as exc:
            raise WarehouseError(str(exc)) from exc

    @staticmethod
    def _one_statement(sql: str) -> None:
        """Refuse text that is not one statement (Spark's parser would reject it less clearly)."""
        try:
            statements = [s for s in sqlglot.parse(sql.replace("%s", "?"), read="spark") if s is not None]
        except SqlglotError as exc:
            raise WarehouseError(f"The SQL does not parse for Spark: {str(exc).splitlines()[0]}") from exc
        if len(statements) != 1:
            raise WarehouseError(f"Operator SQL must be one statement; this text holds {len(statements)}.")

    def _operator(self, sql: str, params: Any = None) -> Any:
        """Run one operator statement (Spark's dialect)."""
        if isinstance(params, Sequence) and not isinstance(params, str | bytes):
            sql = sql.replace("%s", "?")
        return self._sql(sql, params, operator=True)

    def _timed_collect(self, df: Any) -> list:
        timeout = privileges.statement_timeout_ms() / 1000
        tag = f"atlas-{uuid.uuid4().hex}"
        spark = self.spark()
        timer = threading.Timer(timeout, lambda: spark.interruptTag(tag)) if timeout else None
        spark.addTag(tag)
        started = time.monotonic()
        try:
            if timer:
                timer.start()
            with interrupts.enlisted(("spark", tag), (spark, tag)):
                return self._collect(df, operator=True)
        except WarehouseError as exc:
            if timeout and time.monotonic() - started >= timeout:
                raise WarehouseError(
                    f"The operator's SQL ran longer than {timeout:g} s and was stopped (ATLAS_SQL_STATEMENT_TIMEOUT_SECONDS)."
                ) from exc
            raise
        finally:
            if timer:
                timer.cancel()
            spark.removeTag(tag)

    def _interrupt_sessions(self, sessions: list[Any], *, terminate: bool) -> int:  # noqa: ARG002
        for spark, tag in sessions:
            spark.interruptTag(tag)
        return len(sessions)

    def stage_operator_select(
        self, schema: str, name: str, select_sql: str, *, readable: bool = True,  # noqa: ARG002
        params: Mapping[str, Any] | None = None, few_rows: bool = False,  # noqa: ARG002
    ) -> int:
        """See ``Warehouse.stage_operator_select``. Spark has no roles: the validator is the only guard."""
        privileges.check_layer(schema)
        select_sql, bound = self.bind_parameters(select_sql, params)
        self._one_statement(select_sql)
        self.drop_table(schema, name)
        df = self._operator(f"SELECT * FROM ({select_sql}) AS _atlas_q", bound)
        try:
            df.write.format("parquet").mode("error").saveAsTable(f"{_ident(schema)}.{_ident(name)}")
        except Exception as exc:  # noqa: BLE001
            raise self._failure(exc, operator=True) from exc
        return self.row_count(schema, name)

    def operator_query(
        self, select_sql: str, params: Sequence[Any] | None = None, *, layer: str, limit: int | None = None
    ) -> tuple[list[str], list[tuple]]:
        privileges.check_layer(layer)
        self._one_statement(select_sql)
        sql = f"SELECT * FROM ({select_sql}) AS _atlas_q" + (f" LIMIT {int(limit)}" if limit is not None else "")
        df = self._operator(sql, params)
        rows = self._timed_collect(df) if limit != 0 else []
        return self._names(df, rows, operator=True), [tuple(r) for r in rows]

    def preview(self, schema: str, name: str, limit: int = 20) -> tuple[list[str], list[tuple]]:
        return self.operator_query(f"SELECT * FROM {self.sq(schema, name)}", layer=schema, limit=limit)

    # --- publishing ---------------------------------------------------------------------
    def publish(
        self, *, schema: str, staging: str, target: str, mode: WriteMode | str, keys: Sequence[str] = (),
        receipt: str | None = None, delete_keys_from: str | None = None, key_index: bool = False,  # noqa: ARG002
        counts: dict[str, int] | None = None,
    ) -> int:
        """Move a staged table into place by one view swap (see the module's docstring); rows written.

        A merge writes one new part, the published rows whose key is not replaced plus the staged
        rows, and swaps the view to it alone: a reader sees the table before or after, and a step
        killed before the swap leaves it as it was (the part, unnamed, is a leftover). The keys
        replaced are the staged ones, or those ``delete_keys_from`` holds (an incremental step's keys
        before its checks dropped rows, ``pipelines.incremental``): a key whose new row a check
        dropped leaves the table, as the other engines' merge deletes it. ``counts``: the rows the
        merge removed under ``"deleted"``. ``key_index`` is accepted and ignored: Spark tables keep no
        indexes (the merge's anti join hashes the keys).
        """
        mode = WriteMode(mode)
        staged_cols, exists = self._publishable(schema, staging, target, mode, keys)
        names = [c.name for c in staged_cols]
        stg = self.sq(schema, staging)
        merge = mode is WriteMode.MERGE and exists
        if merge:
            key_list = ", ".join(f"`{_ident(k)}`" for k in keys)
            (dupes,) = self._run(
                f"SELECT count(*) FROM (SELECT {key_list} FROM {stg} GROUP BY {key_list} HAVING count(*) > 1) AS d"
            )[0]
            if dupes:
                raise WarehouseError(
                    f"Merge into {schema}.{target}: {dupes} key value(s) of ({', '.join(keys)}) appear more"
                    " than once in the result; a merge needs one row per key."
                )
        rows = self.row_count(schema, staging)
        part = self._new_part(target)
        try:
            if merge:
                before = self.row_count(schema, target) if counts is not None else 0
                replaced = self.sq(schema, delete_keys_from or staging)
                # null-safe (<=>), as every engine's merge delete: a NULL key replaces the row of that NULL key
                match = " AND ".join(f"s.`{_ident(k)}` <=> t.`{_ident(k)}`" for k in keys)
                cols = ", ".join(f"`{_ident(c)}`" for c in names)
                self._command(
                    f"CREATE TABLE {self.sq(schema, part)} USING parquet AS"
                    f" SELECT {cols} FROM {self.sq(schema, target)} AS t WHERE NOT EXISTS"
                    f" (SELECT 1 FROM {replaced} AS s WHERE {match}) UNION ALL SELECT {cols} FROM {stg}"
                )
                if counts is not None:  # parts never change: what the new part lacks of before + staged was removed
                    counts["deleted"] = before + rows - self.row_count(schema, part)
                parts = [part]
            else:
                self._command(f"ALTER TABLE {stg} RENAME TO {self.sq(schema, part)}")
                keep = self._parts(schema, target) if exists and mode is WriteMode.APPEND and self._kind(schema, target) == "VIEW" else []
                parts = [*keep, part]
            self._swap(schema, target, parts, staged_cols, receipt=receipt)
            if merge:
                self._command(f"DROP TABLE IF EXISTS {stg}")
        except WarehouseError as exc:
            raise WarehouseError(f"Publishing into {schema}.{target} ({mode.value}) failed: {exc}") from exc
        if receipt is not None:
            self._command(
                f"INSERT INTO {self.sq(META_SCHEMA, 'published_steps')} VALUES (?, current_timestamp())", [receipt]
            )
        return rows

    def rewrite_table(self, schema: str, name: str, select_list: str) -> None:
        self._rewrite_as(schema, name, f"SELECT {render('SELECT ' + select_list)[7:]} FROM {self.sq(schema, name)}")

    def replace_values(self, schema: str, table: str, column: str, mapping: Sequence[tuple[str, str]]) -> None:
        """The pairs shipped as one DataFrame (Arrow), the table rewritten through a join: Spark has no ``UPDATE``.

        Before, 200 pairs per ``INSERT`` cost a Spark job each (2,500 jobs at 500k notes); the olds are
        distinct, so the left join keeps every row once.
        """
        if not mapping:
            return
        view = f"atlas_pairs_{uuid.uuid4().hex[:12]}"
        pairs = self.spark().createDataFrame([tuple(p) for p in mapping], "old_value string, new_value string")
        pairs.createOrReplaceTempView(view)
        try:
            col = f"`{_ident(column)}`"
            items = ", ".join(
                f"coalesce(m.new_value, t.{col}) AS {col}" if c.name == column else f"t.`{_ident(c.name)}`"
                for c in self.columns(schema, table)
            )
            self._rewrite_as(
                schema, table, f"SELECT {items} FROM {self.sq(schema, table)} AS t LEFT JOIN `{view}` AS m ON t.{col} = m.old_value"
            )
        finally:
            self._command(f"DROP VIEW IF EXISTS `{view}`")

    def _rewrite_as(self, schema: str, name: str, select_sql: str) -> None:
        """``schema.name`` replaced by ``select_sql`` (Spark's dialect) in a new part."""
        part = self._new_part(name)
        self._command(f"CREATE TABLE {self.sq(schema, part)} USING parquet AS {select_sql}")
        if self._kind(schema, name) == "TABLE":
            # a staging table: replaced by its rewrite (no reader sees a staging table)
            self._command(f"DROP TABLE {self.sq(schema, name)}")
            self._command(f"ALTER TABLE {self.sq(schema, part)} RENAME TO {self.sq(schema, name)}")
            return
        self._swap(schema, name, [part], self.columns(schema, part))

    # --- Explore loads ------------------------------------------------------------------
    def _explore_columns(self, columns: Sequence[str]) -> list[Column]:
        return [
            *(Column(c, "text") for c in columns),
            Column("_batch_id", "text"),
            Column("_ingested_at", "timestamp with time zone"),
            Column("_source", "text"),
            Column("_row_number", "bigint"),
        ]

    def ensure_explore_table(self, schema: str, target: str, columns: Sequence[str]) -> None:
        """Create the Explore view (over an empty part), or add the source columns it lacks (the view is re-made)."""
        kind = self._kind(schema, target)
        if kind is None:
            part = self._new_part(target)
            cols = self._explore_columns(columns)
            defs = ", ".join(f"`{_ident(c.name)}` {_spark_type(c.type)}" for c in cols)
            self._command(f"CREATE TABLE {self.sq(schema, part)} ({defs}) USING parquet")
            self._swap(schema, target, [part], cols)
            return
        have = self.columns(schema, target)
        names = {c.name for c in have}
        new = [Column(c, "text") for c in columns if c not in names]
        if new:
            parts = self._parts(schema, target) if kind == "VIEW" else []
            self._swap(schema, target, parts or [target], [*have, *new])

    def load_file_parsed(
        self, path: str, *, fmt: FileFormat, options: dict[str, Any], schema: str, target: str, staging: str,
        batch_id: str, source_label: str, layout: FileLayout | None = None,  # noqa: ARG002
        stream: StreamedFile | None = None, pipe: Any = None,  # noqa: ARG002
    ) -> LoadResult:
        """Parse the file (DuckDB's reader, with Atlas's quarantine of unparseable records) and ship its rows to Spark as Arrow.

        The fallback of ``load_file`` (``atlas.warehouse.sparkingest``) where Spark's own readers cannot read the file:
        a server elsewhere (a cluster, a hosted Spark) never sees the worker's files, so an object fetched from object
        storage, or a file a local server cannot read exactly, is parsed here. The rows go in chunks of
        ``ATLAS_SPARK_ARROW_ROWS`` (each one Arrow message, appended to the staging table), so the worker holds
        one chunk, not the file, whatever its size.
        """
        import duckdb

        from .duckdb import parser_config
        from .filereader import IngestError, plan_scan

        if stream is not None:
            stream.materialise()
        con = duckdb.connect(config=parser_config())
        spark = self.spark()
        self.drop_table(schema, staging)
        name = f"{_ident(schema)}.{_ident(staging)}"
        rows = 0
        try:
            scan = plan_scan(path, fmt, options, tag=staging, max_line_bytes=settings.ATLAS_INGEST_MAX_LINE_BYTES, duck=con)
            self.ensure_explore_table(schema, target, scan.columns)
            names = [*scan.columns, *LOAD_COLUMNS]
            try:
                reader = con.sql(
                    f"SELECT *, {Warehouse.literal(batch_id)} AS _batch_id, current_timestamp AS _ingested_at,"
                    f" {Warehouse.literal(source_label)} AS _source, CAST(row_number() OVER () AS BIGINT) AS _row_number"
                    f" FROM ({scan.select_sql})"
                ).to_arrow_reader(max(1, int(settings.ATLAS_SPARK_ARROW_ROWS)))
                for chunk in _arrow_chunks(reader, names):
                    self._ship(spark, chunk, name, first=rows == 0)
                    rows += chunk.num_rows
                if rows == 0:  # no row: the staging table still has the file's columns
                    self._ship(spark, reader.schema.empty_table().rename_columns(names), name, first=True)
            except duckdb.Error as exc:
                raise IngestError(f"{path}: {exc}") from exc
            rejects = scan.collect_rejects(con)
        finally:  # a staging table shipped in part is a leftover the janitor drops, as every staging table
            con.close()
        return LoadResult(rows=rows, columns=scan.columns, rejects=rejects)

    def _ship(self, spark: Any, table: Any, name: str, *, first: bool) -> None:
        """One Arrow chunk written into the staging table ``name`` (created by the first)."""
        try:
            spark.createDataFrame(table).write.format("parquet").mode("error" if first else "append").saveAsTable(name)
        except Exception as exc:  # noqa: BLE001
            raise self._failure(exc) from exc

    def claim_batches(self, cur: Cursor, batches: Sequence[StagedBatch], *, replace: bool) -> list[StagedBatch]:
        """The ledger rows of ``batches`` (no transaction on Spark: a batch already in the ledger is not claimed)."""
        ledger = self.sq(META_SCHEMA, "loaded_batches")
        if replace and batches:
            self._rewrite_without(META_SCHEMA, "loaded_batches", "dataset = ?", [batches[0].dataset])
        mine = []
        for batch in batches:
            if self._run(f"SELECT 1 FROM {ledger} WHERE dataset = ? AND checksum = ? LIMIT 1", [batch.dataset, batch.checksum]):
                continue
            mine.append(batch)
        if not mine:
            raise NothingClaimed
        values = ", ".join("(?, ?, ?, ?, ?, current_timestamp())" for _ in mine)
        self._command(
            f"INSERT INTO {ledger} VALUES {values}",
            [v for b in mine for v in (b.dataset, b.checksum, b.batch_id, b.source, b.rows)],
        )
        return mine

    def _publish_claimed(
        self, cur: Cursor, tgt: str, schema: str, target: str, shape: list[Column], batches: list[StagedBatch],  # noqa: ARG002
        *, replace: bool,
    ) -> None:
        """Each batch becomes a part of the Explore view, in one swap (``replace``: only them)."""
        keep = [] if replace else (self._parts(schema, target) if self._kind(schema, target) == "VIEW" else [])
        keep = [p for p in keep if self.row_count(schema, p) > 0] if keep else keep  # the empty first part goes
        new = []
        for batch in batches:
            part = self._new_part(target)
            self._command(f"ALTER TABLE {self.sq(schema, batch.staging)} RENAME TO {self.sq(schema, part)}")
            new.append(part)
        self._swap(schema, target, [*keep, *new], self.columns(schema, target))

    # --- PII --------------------------------------------------------------------------
    def _row_sample_sql(self, schema: str, table: str, rows: int, total: int) -> str:
        cols = ", ".join(f'"{c.name}"' for c in self.columns(schema, table))
        return (
            f"SELECT * FROM {self.table(schema, table)}"
            f" WHERE pmod(hash({cols}), {max(int(total), 1)}) < {int(rows)}"
        )

    def ensure_pii_hmac(self, key_id: str, ipad: bytes, opad: bytes) -> None:
        """Store the key's HMAC pads in ``atlas.pii_keys`` (bound values, never SQL text) and define ``atlas.pii_hmac``.

        Written only when the stored pads differ (a step calls this before each hashing pass).
        """
        keys = self.sq(META_SCHEMA, self.PII_KEYS_TABLE)
        block_key = bytes(b ^ 0x36 for b in ipad)
        self._command(f"CREATE DATABASE IF NOT EXISTS `{META_SCHEMA}`")
        self._command(
            f"CREATE TABLE IF NOT EXISTS {keys} (key_id STRING, ipad BINARY, opad BINARY, block_key BINARY) USING parquet"
        )
        stored = [(bytes(i), bytes(o)) for i, o in self._run(f"SELECT ipad, opad FROM {keys} WHERE key_id = ?", [key_id])]
        if stored != [(bytes(ipad), bytes(opad))]:
            self._rewrite_without(META_SCHEMA, self.PII_KEYS_TABLE, "key_id = ?", [key_id])
            self._command(f"INSERT INTO {keys} VALUES (?, ?, ?, ?)", [key_id, bytes(ipad), bytes(opad), block_key])
        self._create_pii_hmac_function()

    def _create_pii_hmac_function(self) -> None:
        # A SQL function (Spark 4): HMAC-SHA256 from its definition over Spark's sha2, the same token
        # as Python's hmac and the other engines for the same key and text.
        self._command(
            f"CREATE OR REPLACE FUNCTION `{META_SCHEMA}`.`{self.PII_HMAC_FUNCTION}`(v STRING, ipad BINARY, opad BINARY)"
            " RETURNS STRING RETURN sha2(concat(opad, unhex(sha2(concat(ipad, encode(v, 'UTF-8')), 256))), 256)"
        )


def _ident(name: str) -> str:
    if not name or "\x00" in name:
        raise WarehouseError(f"Invalid identifier {name!r}.")
    return str(name).replace("`", "``")


def _spark_type(pg: str) -> str:
    t = pg.lower()
    if t.startswith("numeric"):
        return "DECIMAL" + t[len("numeric"):]
    return {
        "text": "STRING", "integer": "INT", "bigint": "BIGINT", "smallint": "SMALLINT", "double precision": "DOUBLE",
        "real": "FLOAT", "boolean": "BOOLEAN", "date": "DATE", "timestamp with time zone": "TIMESTAMP",
        "timestamp without time zone": "TIMESTAMP_NTZ", "bytea": "BINARY",
    }.get(t, t.upper())


def _instants(rows: list[tuple], df: Any) -> list[tuple]:
    """Spark's TIMESTAMP values (instants) as aware datetimes: the client gives them naive, in this process's zone."""
    if not any(isinstance(v, datetime.datetime) and v.tzinfo is None for row in rows for v in row):
        return rows
    instant = [f.dataType.typeName() == "timestamp" for f in df.schema.fields]
    return [
        tuple(v.astimezone(datetime.UTC) if ok and isinstance(v, datetime.datetime) and v.tzinfo is None else v
              for v, ok in zip(row, instant, strict=False))
        for row in rows
    ]


def _arrow_chunks(reader: Any, names: list[str]) -> Iterator[Any]:
    """The non-empty record batches of a DuckDB result, each an Arrow table with the staging table's column names."""
    import pyarrow as pa

    for batch in reader:
        if batch.num_rows:
            yield pa.Table.from_batches([batch]).rename_columns(names)


def _arg(value: Any) -> Any:
    return value


def collect_rows(df: Any) -> list:
    """``df.collect()``, in one request instead of two.

    pyspark's ``collect`` asks the server for ``spark.sql.execution.pyspark.binaryAsBytes`` after
    every result (a config request of its own: 1,853 of the Spark test pass's 6,591 requests,
    2026-12-06). Atlas reads binary values as ``bytes`` whatever a server's setting says, so that is
    not asked; the rest is ``collect``'s own conversion (the schema the server sent, checked against
    Arrow's as there).
    """
    from pyspark.sql.conversion import ArrowTableToRowsConversion
    from pyspark.sql.pandas.types import from_arrow_schema

    table, schema = df._to_table()
    arrow_schema = from_arrow_schema(table.schema, prefer_timestamp_ntz=True)  # also refuses what Arrow cannot carry
    return ArrowTableToRowsConversion.convert(table, schema or arrow_schema, binary_as_bytes=True)


def _rows_sent_with(df: Any) -> list[tuple] | None:
    """A command's result rows when the server sent them with its answer; None otherwise (a query, other types).

    Spark Connect runs a command (DESCRIBE, SHOW ...) when it receives it and answers with its
    result as a local relation holding the rows (Arrow). Collecting that relation sends it back to
    be planned and executed again: a second round trip for rows already here (about a sixth of a
    step's requests: every DESCRIBE and SHOW). Only text,
    boolean and integer columns are read here (what catalogue commands answer); anything else is
    collected, so values convert exactly as ``collect`` converts them.
    """
    relation = getattr(getattr(df, "_plan", None), "_plan", None)
    if relation is None or not hasattr(relation, "WhichOneof") or relation.WhichOneof("rel_type") != "local_relation":
        return None
    if not relation.local_relation.HasField("data"):
        return None
    import pyarrow as pa

    table = pa.ipc.open_stream(relation.local_relation.data).read_all()
    if not all(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t)
               or pa.types.is_integer(t) for t in table.schema.types):
        return None
    return list(zip(*(column.to_pylist() for column in table.columns), strict=True)) if table.num_columns else []


# What the catalog answers for a name that is not there (or whose database is not).
_NOT_FOUND = ("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND")


def _condition(exc: BaseException) -> str:
    """Spark's error condition (``TABLE_OR_VIEW_NOT_FOUND``…) of an exception, or ""."""
    getter = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    if getter is None:
        return ""
    try:
        return getter() or ""
    except Exception:  # noqa: BLE001
        return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
