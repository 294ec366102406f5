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

The engine-specific SQL (the UTC session, the try-cast, the catalogue of
partitions, ``DETACH PARTITION``, the lock) is the warehouse's: ``wh.ops`` says
it, ``wh.features`` says whether the engine partitions Explore tables. Nothing
here names an engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from atlas.warehouse import Warehouse
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


class TimestampColumn:
    """SQL for a column's value as a UTC timestamp, and for "does not parse"."""

    def __init__(self, wh: Warehouse, column: str, kind: str) -> None:
        self.kind = kind
        q = wh.quote(column)
        if kind == "text":
            trimmed = f"trim({q})"
            self.value = (
                f"(CASE WHEN {wh.ops.regex_full_match(trimmed, ISO_TIMESTAMP_RE)}"
                f" THEN {wh.ops.try_cast_timestamptz(trimmed)} END)"
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
    wh.ops.prepare_try_cast()
    ts = TimestampColumn(wh, column, kind)
    with wh.transaction() as cur:
        wh.ops.use_utc(cur)
        parts = _batch_partitions(wh, cur, schema, table, column, explore)
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
    wh.ops.prepare_try_cast()
    ts = TimestampColumn(wh, column, kind)
    tgt = wh.table(schema, table)
    with wh.transaction() as cur:
        wh.ops.use_utc(cur)
        wh.ops.lock_for_maintenance(cur, schema, table)
        parts = _batch_partitions(wh, cur, schema, table, column, explore)
        if parts is not None:
            result = _drop_expired_partitions(wh, cur, schema, table, parts, cutoff)
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
            result.rows_removed = wh.ops.delete(cur, f"DELETE FROM {tgt} WHERE {ts.expired}", [cutoff])
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
            if wh.table_exists(schema, quarantine):
                result.quarantine_rows_removed = wh.ops.delete(
                    cur,
                    f"DELETE FROM {wh.table(schema, quarantine)} WHERE {wh.quote(QUARANTINED_AT)} < %s",
                    [cutoff],
                )
    return result


def _batch_partitions(
    wh: Warehouse, cur: Cursor, schema: str, table: str, column: str, explore: bool
) -> list[tuple[str, str]] | None:
    """The batch partitions an expiry on ``_ingested_at`` can drop whole (None: rows are DELETEd)."""
    if not (explore and column == INGESTED_AT and wh.features.partitioned_explore_tables):
        return None
    return wh.ops.batch_partitions(cur, schema, table)


def _drop_expired_partitions(
    wh: Warehouse,
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
    result = Expiry(method="partition drop")
    ing, bid = wh.quote(INGESTED_AT), wh.quote(BATCH_ID)
    for part_schema, part in parts:
        name = wh.table(part_schema, part)
        head = cur.execute(f"SELECT {bid}, {ing} FROM {name} LIMIT 1").fetchone()
        if head is None or head[1] >= cutoff:
            continue
        count, newest = cur.execute(f"SELECT count(*), max({ing}) FROM {name}").fetchone()
        if newest < cutoff:
            wh.ops.drop_partition(cur, schema, table, part_schema, part)
            result.partitions_dropped += 1
            result.rows_removed += int(count)
            result.batches_expired.append(head[0])
        else:
            result.straddling_partitions.append(part)
            result.rows_removed += wh.ops.delete(cur, f"DELETE FROM {name} WHERE {ing} < %s", [cutoff])
    result.batches_expired.sort()
    return result
