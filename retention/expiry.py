"""Finding and removing expired rows in the warehouse (set-based SQL, one transaction).

Expired means strictly older than the cutoff (``ts < cutoff``); a row whose
timestamp equals the cutoff is kept — it reaches its retention at that very
instant and goes with the next run.

Timestamps are compared in UTC: the session time zone is set to UTC for the
statement, so a ``date`` or a ``timestamp`` without zone is read as UTC on both
engines. Text timestamps (Explore keeps every source column as text) are
parsed only when they look like ISO 8601 (``2024-05-01``, ``2024-05-01
10:00:00``, ``2024-05-01T10:00:00+02:00``, ``…Z``) *and* the engine accepts
them (DuckDB ``TRY_CAST``; PostgreSQL 15 has no ``pg_input_is_valid``, so a
small ``atlas.retention_try_timestamptz`` function catches the cast error).
Anything else — ``31/12/2024``, ``2024-02-30``, ``soon`` — is *unparseable*:
counted and reported on the run, never deleted. NULL timestamps are neither
expired nor unparseable (nothing says they are old).

On PostgreSQL, Explore tables are LIST-partitioned by ``_batch_id`` and every
row of a batch carries the same ``_ingested_at`` (one ``COPY`` statement whose
default is ``now()``, the transaction's timestamp). So when a policy runs on
``_ingested_at``, a batch is expired as a whole: its partition is detached and
dropped — no DELETE scan, no dead tuples, no vacuum — exactly the property
"partitioned by ingestion month" is asked for, at a finer grain (a batch
instead of a month; a month partition would hold rows of several ages and
would have to wait until its newest row expires, or be DELETEd into). A
partition whose rows straddle the cutoff (impossible for batches Atlas loads,
checked anyway) is DELETEd into. Other columns and the other layers are
DELETEd, on both engines; so is everything on DuckDB, which has no partitions.

The engine-specific SQL below (the try-cast, the catalogue of partitions,
``DETACH PARTITION``) is kept in one place, :class:`PostgresSQL` /
:class:`DuckSQL`, ready to move into ``atlas.warehouse`` backends.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from atlas.warehouse import Warehouse, WarehouseError
from atlas.warehouse.base import META_SCHEMA, Cursor

INGESTED_AT = "_ingested_at"
BATCH_ID = "_batch_id"
QUARANTINED_AT = "_quarantined_at"
ISO_TIMESTAMP_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?)?"
    r"( ?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?))?$"
)

# Column types (lower case, as information_schema spells them on either engine).
TIMESTAMP_TYPES = {
    "date",
    "timestamp",
    "timestamptz",
    "timestamp with time zone",
    "timestamp without time zone",
    "timestamp_s",
    "timestamp_ms",
    "timestamp_ns",
    "datetime",
}
TEXT_TYPES = {"text", "varchar", "character varying", "string", "character", "char", "bpchar"}


def type_kind(data_type: str) -> str | None:
    """``timestamp`` for date/time types, ``text`` for strings, None for anything else."""
    t = (data_type or "").strip().lower()
    base = t.split("(")[0].strip()
    if base in TIMESTAMP_TYPES or t in TIMESTAMP_TYPES or t.startswith("timestamp"):
        return "timestamp"
    if base in TEXT_TYPES:
        return "text"
    return None


@dataclass
class Inspection:
    """What a table holds relative to a cutoff."""

    exists: bool
    rows: int = 0
    oldest: datetime | None = None
    expired_rows: int = 0
    unparseable_rows: int = 0


@dataclass
class Expiry:
    """What one application removed."""

    method: str
    rows_expired: int = 0
    rows_removed: int = 0
    partitions_dropped: int = 0
    quarantine_rows_removed: int = 0
    unparseable_rows: int = 0
    batches_expired: list[str] = field(default_factory=list)
    straddling_partitions: list[str] = field(default_factory=list)


class EngineSQL(abc.ABC):
    """Engine-specific pieces; see :func:`engine_sql`. An engine missing one fails when built."""

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh

    @abc.abstractmethod
    def use_utc(self, cur: Cursor) -> None:
        """Compare and cast timestamps in UTC on this cursor."""

    @abc.abstractmethod
    def try_timestamp(self, expr: str) -> str:
        """SQL casting ``expr`` to a timestamp, NULL where it does not parse."""

    @abc.abstractmethod
    def iso_match(self, expr: str) -> str:
        """SQL true where ``expr`` looks like an ISO 8601 timestamp."""

    def prepare(self) -> None:  # noqa: B027 - optional: nothing to create by default
        """Create what the SQL needs (functions); idempotent."""

    def lock(self, cur: Cursor, schema: str, table: str) -> None:  # noqa: B027 - optional: no lock by default
        """Serialise expiries of one table (readers and loads go on)."""

    @abc.abstractmethod
    def delete(self, cur: Cursor, sql: str, params: list[Any]) -> int:
        """Run a DELETE; the rows it removed."""

    def partitions(self, cur: Cursor, schema: str, table: str) -> list[tuple[str, str]] | None:
        """(schema, name) of the table's partitions, or None when it is not partitioned."""
        return None


class DuckSQL(EngineSQL):
    def use_utc(self, cur: Cursor) -> None:
        # A DuckDB cursor is its own connection: the setting stays on it.
        cur.execute("SET TimeZone = 'UTC'")

    def try_timestamp(self, expr: str) -> str:
        return f"TRY_CAST({expr} AS TIMESTAMPTZ)"

    def iso_match(self, expr: str) -> str:
        return f"regexp_full_match({expr}, {self.wh.literal(ISO_TIMESTAMP_RE)})"

    def delete(self, cur: Cursor, sql: str, params: list[Any]) -> int:
        row = cur.execute(sql, params).fetchone()
        return int(row[0]) if row else 0


TRY_FUNCTION = "retention_try_timestamptz"


class PostgresSQL(EngineSQL):
    def use_utc(self, cur: Cursor) -> None:
        cur.execute("SET LOCAL TimeZone = 'UTC'")

    def try_timestamp(self, expr: str) -> str:
        return f"{self.wh.quote(META_SCHEMA)}.{TRY_FUNCTION}({expr})"

    def iso_match(self, expr: str) -> str:
        return f"({expr} ~ {self.wh.literal(ISO_TIMESTAMP_RE)})"

    def prepare(self) -> None:  # noqa: B027 - optional: nothing to create by default
        with self.wh.cursor() as cur:
            exists = cur.execute(
                "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = %s AND p.proname = %s",
                [META_SCHEMA, TRY_FUNCTION],
            ).fetchone()
            if exists:
                return
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.wh.quote(META_SCHEMA)}")
            cur.execute(
                f"CREATE OR REPLACE FUNCTION {self.wh.quote(META_SCHEMA)}.{TRY_FUNCTION}(v text)"
                " RETURNS timestamptz LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$"
                " BEGIN RETURN v::timestamptz; EXCEPTION WHEN others THEN RETURN NULL; END $$"
            )

    def delete(self, cur: Cursor, sql: str, params: list[Any]) -> int:
        cur.execute(sql, params)
        return max(int(cur.raw.rowcount or 0), 0)

    def lock(self, cur: Cursor, schema: str, table: str) -> None:  # noqa: B027 - optional: no lock by default
        # Conflicts with itself (a second expiry waits, then finds the partitions gone) and with
        # ATTACH PARTITION, not with SELECT or INSERT.
        cur.execute(f"LOCK TABLE {self.wh.table(schema, table)} IN SHARE UPDATE EXCLUSIVE MODE")

    def partitions(self, cur: Cursor, schema: str, table: str) -> list[tuple[str, str]] | None:
        row = cur.execute(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s",
            [schema, table],
        ).fetchone()
        if not row or row[0] != "p":
            return None
        return cur.execute(
            "SELECT n.nspname, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            [self.wh.table(schema, table)],
        ).fetchall()


def engine_sql(wh: Warehouse) -> EngineSQL:
    if wh.vendor == "postgresql":
        return PostgresSQL(wh)
    if wh.vendor == "duckdb":
        return DuckSQL(wh)
    raise WarehouseError(f"Retention does not support the {wh.vendor!r} warehouse.")


class TimestampColumn:
    """SQL for a column's value as a UTC timestamp, and for "does not parse"."""

    def __init__(self, eng: EngineSQL, column: str, kind: str) -> None:
        self.eng, self.kind = eng, kind
        q = eng.wh.quote(column)
        if kind == "text":
            trimmed = f"trim({q})"
            self.value = (
                f"(CASE WHEN {eng.iso_match(trimmed)} THEN {eng.try_timestamp(trimmed)} END)"
            )
            self.unparseable = f"({q} IS NOT NULL AND {self.value} IS NULL)"
        else:
            self.value = f"CAST({q} AS TIMESTAMPTZ)"
            self.unparseable = "false"
        self.expired = f"({self.value} < %s)"


def inspect(
    wh: Warehouse,
    schema: str,
    table: str,
    column: str,
    kind: str,
    cutoff: datetime,
    *,
    explore: bool = False,
) -> Inspection:
    """Rows, oldest timestamp, rows past the cutoff and unparseable rows, in one scan.

    A PostgreSQL Explore table checked on ``_ingested_at`` is read per batch
    partition instead: one row per partition gives its batch's ingestion time,
    and only partitions older than the cutoff are counted — no full scan.
    """
    if not wh.table_exists(schema, table):
        return Inspection(exists=False)
    eng = engine_sql(wh)
    eng.prepare()
    ts = TimestampColumn(eng, column, kind)
    with wh.transaction() as cur:
        eng.use_utc(cur)
        parts = eng.partitions(cur, schema, table) if explore and column == INGESTED_AT else None
        if parts is not None:
            return _inspect_partitions(wh, cur, parts, cutoff)
        row = cur.execute(
            f"SELECT count(*), min({ts.value}), count(*) FILTER (WHERE {ts.expired}),"
            f" count(*) FILTER (WHERE {ts.unparseable}) FROM {wh.table(schema, table)}",
            [cutoff],
        ).fetchone()
    return Inspection(
        exists=True,
        rows=int(row[0]),
        oldest=row[1],
        expired_rows=int(row[2] or 0),
        unparseable_rows=int(row[3] or 0),
    )


def _inspect_partitions(
    wh: Warehouse, cur: Cursor, parts: list[tuple[str, str]], cutoff: datetime
) -> Inspection:
    ing = wh.quote(INGESTED_AT)
    found = Inspection(exists=True)
    for part_schema, part in parts:
        name = wh.table(part_schema, part)
        head = cur.execute(f"SELECT {ing} FROM {name} LIMIT 1").fetchone()
        if head is None:
            continue
        found.rows += 1  # at least one row: the table is not empty (not a count)
        found.oldest = head[0] if found.oldest is None else min(found.oldest, head[0])
        if head[0] < cutoff:
            row = cur.execute(
                f"SELECT count(*), min({ing}) FROM {name} WHERE {ing} < %s", [cutoff]
            ).fetchone()
            found.expired_rows += int(row[0])
            found.oldest = min(found.oldest, row[1]) if row[1] is not None else found.oldest
    return found


def expire(
    wh: Warehouse,
    schema: str,
    table: str,
    column: str,
    kind: str,
    cutoff: datetime,
    *,
    dataset_key: str,
    explore: bool,
) -> Expiry:
    """Remove the rows of ``schema.table`` older than ``cutoff``, in one transaction.

    ``dataset_key`` is the dataset's ``layer.table`` in the batch ledger: an
    Explore batch with no live row left is forgotten there, so loading the same
    file again is a new load, not a duplicate (its data is gone).
    """
    eng = engine_sql(wh)
    eng.prepare()
    ts = TimestampColumn(eng, column, kind)
    tgt = wh.table(schema, table)
    with wh.transaction() as cur:
        eng.use_utc(cur)
        eng.lock(cur, schema, table)
        parts = eng.partitions(cur, schema, table) if explore and column == INGESTED_AT else None
        if parts is not None:
            result = _drop_expired_partitions(eng, cur, schema, table, parts, cutoff)
        else:
            result = Expiry(method="delete")
            if explore:
                batches = cur.execute(
                    f"SELECT {wh.quote(BATCH_ID)}, count(*) FILTER (WHERE {ts.expired}), count(*) FROM {tgt}"
                    f" GROUP BY {wh.quote(BATCH_ID)} HAVING count(*) FILTER (WHERE {ts.expired}) > 0",
                    [cutoff, cutoff],
                ).fetchall()
                result.batches_expired = sorted(
                    b for b, expired, total in batches if expired == total
                )
            result.rows_removed = eng.delete(cur, f"DELETE FROM {tgt} WHERE {ts.expired}", [cutoff])
        result.rows_expired = result.rows_removed
        if kind == "text":
            row = cur.execute(f"SELECT count(*) FROM {tgt} WHERE {ts.unparseable}").fetchone()
            result.unparseable_rows = int(row[0])
        if explore:
            if result.batches_expired:
                ledger = wh.table(META_SCHEMA, "loaded_batches")
                marks = ", ".join(["%s"] * len(result.batches_expired))
                cur.execute(
                    f"DELETE FROM {ledger} WHERE dataset = %s AND batch_id IN ({marks})",
                    [dataset_key, *result.batches_expired],
                )
            quarantine = f"{table}__quarantine"
            exists = cur.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                [schema, quarantine],
            ).fetchone()[0]
            if exists:
                result.quarantine_rows_removed = eng.delete(
                    cur,
                    f"DELETE FROM {wh.table(schema, quarantine)} WHERE {wh.quote(QUARANTINED_AT)} < %s",
                    [cutoff],
                )
    return result


def _drop_expired_partitions(
    eng: EngineSQL,
    cur: Cursor,
    schema: str,
    table: str,
    parts: list[tuple[str, str]],
    cutoff: datetime,
) -> Expiry:
    """Detach and drop every batch partition whose rows are all older than the cutoff.

    Reading one row per partition tells its batch's ingestion time (all rows
    share it); only candidate partitions are counted, and a candidate whose
    newest row is not expired (a straddling partition) is DELETEd into instead.
    """
    wh = eng.wh
    result = Expiry(method="partition drop")
    parent = wh.table(schema, table)
    ing, bid = wh.quote(INGESTED_AT), wh.quote(BATCH_ID)
    for part_schema, part in parts:
        name = wh.table(part_schema, part)
        head = cur.execute(f"SELECT {bid}, {ing} FROM {name} LIMIT 1").fetchone()
        if head is None or head[1] >= cutoff:
            continue
        count, newest = cur.execute(f"SELECT count(*), max({ing}) FROM {name}").fetchone()
        if newest < cutoff:
            cur.execute(f"ALTER TABLE {parent} DETACH PARTITION {name}")
            cur.execute(f"DROP TABLE {name}")
            result.partitions_dropped += 1
            result.rows_removed += int(count)
            result.batches_expired.append(head[0])
        else:
            result.straddling_partitions.append(part)
            result.rows_removed += eng.delete(cur, f"DELETE FROM {name} WHERE {ing} < %s", [cutoff])
    result.batches_expired.sort()
    return result
