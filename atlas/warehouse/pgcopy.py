"""Direct COPY: a CSV file without quotes (or with simple quotes only), parsed by PostgreSQL itself, in parts.

When a CSV file holds no quote character, PostgreSQL's ``COPY`` and DuckDB's
reader read it the same way: fields end at the delimiter, records at a
newline, an empty field is NULL, and both refuse the same broken rows (too
many or too few fields, bytes that are not the encoding). So such a file needs
no DuckDB hop: its bytes go straight to ``COPY``, as in the hand-written floor.
And because the content scan already knows where lines start, the file is cut
at line starts into parts that separate connections load at the same time,
each numbering its rows from a sequence that starts where its part starts —
``_row_number`` stays the exact position of the record in the file.

A file whose every quote is *simple* (``pipelines.sources.simple_quotes``: each
quote opens or closes a whole field, in pairs on one line, no doubled quote
inside) is read alike too — records are lines, and an empty quoted field is
NULL to COPY with ``FORCE_NULL`` as to DuckDB — so it takes the direct path as
well: the every-field-quoted files many exporters write.

Other quotes stay with DuckDB. The two parsers differ on quoting that strict CSV
does not allow, and not only locally: PostgreSQL toggles quoting at every
quote byte, DuckDB only at a field's edge, so ``"a,"b",c",d`` is two fields to
PostgreSQL and a rejected line to DuckDB, and ``x""y`` is ``xy`` to one and
``x""y`` to the other. Telling those apart from legal escapes needs the
parser's state, which is what DuckDB's pass is for.

Each part is a table created and filled in its own transaction (``COPY ...
FREEZE``), then given its constant ``_batch_id`` (one value in the catalogue,
not one per row) and CHECK constraints on the batch and on its row-number
range, so that attaching the parts as range partitions of the batch's table,
and that table to the Explore table, needs no scan.

Anything ``COPY`` refuses (a malformed row, a byte not in the encoding, a blank
line), or a part whose record count differs from its line count (``\\.``
ends a COPY early), refuses the direct path as a whole: the parts are dropped
and the caller parses the file with DuckDB, which quarantines what it cannot
read. Nothing is ever half-loaded, and a file is loaded exactly as DuckDB
would load it (``pipelines/tests/test_ingest_direct_copy.py`` loads a corpus
of awkward files both ways and compares).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from . import interrupts
from .base import FileLayout, Warehouse
from .filereader import ENCODINGS

if TYPE_CHECKING:
    from .postgresql import PostgresWarehouse

CHUNK = 1 << 20
# A connection caches this many numbers of its part's sequence: nextval() then
# costs no buffer access or WAL record per row.
SEQUENCE_CACHE = 100_000
_PG_ENCODINGS = {"utf-8": "UTF8", "latin-1": "LATIN1"}


class DirectCopyRefused(Exception):
    """The file cannot take the direct path; the caller parses it with DuckDB instead."""


@dataclass(frozen=True)
class Part:
    start: int  # byte offset of its first line
    end: int  # byte offset after its last line
    first_row: int  # _row_number of its first record
    rows: int  # records it must hold: one per line


@dataclass(frozen=True)
class Plan:
    path: str
    copy_options: str
    parts: tuple[Part, ...]

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)


def copy_options(options: dict[str, Any]) -> str | None:
    """The COPY options that read like DuckDB's reader with ``options``; None when COPY cannot say them."""
    delimiter = options.get("delimiter") or ","
    quote = options.get("quote") if options.get("quote") is not None else '"'
    escape = options.get("escape") if options.get("escape") is not None else quote
    encoding = _PG_ENCODINGS.get(ENCODINGS.get(str(options.get("encoding") or "utf-8").lower(), ""))
    single = all(len(c) == 1 and c.isascii() and c not in "\r\n" for c in (delimiter, quote))
    if not (encoding and single and escape == quote and delimiter != quote):
        return None
    lit = Warehouse.literal
    return f"FORMAT csv, DELIMITER {lit(delimiter)}, QUOTE {lit(quote)}, ENCODING {lit(encoding)}, FREEZE"


def _data_start(path: str, header: bool, max_line_bytes: int) -> int:
    """Byte offset of the first record: after the header line, if there is one."""
    if not header:
        return 0
    with open(path, "rb") as fh:
        fh.readline(max_line_bytes + 1)
        return fh.tell()


def plan(
    path: str,
    options: dict[str, Any],
    layout: FileLayout | None,
    *,
    columns: Sequence[str],
    streams: int,
    part_bytes: int,
    max_line_bytes: int,
) -> Plan | None:
    """How to load ``path`` by direct COPY in up to ``streams`` parts; None when it cannot be."""
    if layout is None or layout.quoted is None or layout.long_lines:
        return None
    if layout.quoted and not layout.quotes_simple:
        return None
    opts = copy_options(options)
    # One column: a blank line is a NULL record to COPY, nothing to DuckDB.
    if opts is None or len(columns) < 2:
        return None
    if layout.quoted:
        # DuckDB reads an empty quoted field ("") as NULL: so must COPY.
        opts += ", FORCE_NULL (" + ", ".join('"' + c.replace('"', '""') + '"' for c in columns) + ")"
    header = bool(options.get("header", True))
    start = _data_start(path, header, max_line_bytes)
    skipped = 1 if header and layout.newlines > 0 else 0  # the header line and its newline
    records = layout.newlines - skipped + (0 if layout.ends_with_newline or start >= layout.size else 1)
    want = max(1, min(streams, (layout.size - start) // max(part_bytes, 1)))
    cuts = [start]
    for i in range(1, want):
        target = start + (layout.size - start) * i // want
        cut = next((off for off, _ in layout.line_starts if off >= target and off > cuts[-1]), None)
        if cut is None:
            break
        cuts.append(cut)
    cuts.append(layout.size)
    parts = []
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        first = layout.lines_before(lo) - skipped + 1 if lo > start else 1
        last = layout.lines_before(hi) - skipped if hi < layout.size else records
        parts.append(Part(lo, hi, first, last - first + 1))
    return Plan(path, opts, tuple(parts))


def _part_table(staging: str, batch_id: str, i: int, n: int) -> str:
    # Named after the staging table (which names the run attempt): the janitor finds a dead attempt's parts.
    return staging if n == 1 else f"{staging[:58]}_p{i}"


def _load_part(
    wh: PostgresWarehouse,
    plan: Plan,
    i: int,
    *,
    schema: str,
    table: str,
    defs: str,
    columns: Sequence[str],
    batch_id: str,
    live: list[psycopg.Connection],
) -> None:
    """Create, fill and seal one part's table in its own connection and transaction."""
    part = plan.parts[i]
    tbl = wh.table(schema, table)
    seq = wh.table(schema, f"{table[:58]}_n")
    cols = ", ".join(wh.quote(c) for c in columns)
    batch = wh.literal(batch_id)
    with wh.connect_own() as conn:
        live.append(conn)
        with interrupts.enlisted(("pg", id(conn)), conn.info.backend_pid), conn.transaction(), conn.cursor() as cur:
            cur.execute(f"CREATE SEQUENCE {seq} START {part.first_row} MINVALUE {part.first_row} CACHE {SEQUENCE_CACHE}")
            cur.execute(
                f"CREATE TABLE {tbl} ({defs}, _row_number bigint NOT NULL DEFAULT nextval({wh.literal(seq)}))"
            )
            with open(plan.path, "rb") as fh, cur.copy(f"COPY {tbl} ({cols}) FROM STDIN ({plan.copy_options})") as copy:
                fh.seek(part.start)
                left = part.end - part.start
                while left > 0 and (chunk := fh.read(min(CHUNK, left))):
                    left -= len(chunk)
                    copy.write(chunk)
            if cur.rowcount != part.rows:
                raise DirectCopyRefused(
                    f"COPY read {cur.rowcount} records from the {part.rows} lines starting at byte {part.start}"
                )
            cur.execute(
                f"ALTER TABLE {tbl} ALTER COLUMN _row_number DROP DEFAULT,"
                f" ADD COLUMN _batch_id text NOT NULL DEFAULT {batch},"
                f" ADD CONSTRAINT {wh.quote('batch_' + batch_id)} CHECK (_batch_id = {batch}),"
                f" ADD CONSTRAINT row_numbers CHECK (_row_number >= {part.first_row}"
                f" AND _row_number < {part.first_row + part.rows})"
            )
            cur.execute(f"DROP SEQUENCE {seq}")


def load(
    wh: PostgresWarehouse,
    plan: Plan,
    *,
    schema: str,
    staging: str,
    defs: str,
    columns: Sequence[str],
    batch_id: str,
    source_label: str,
) -> int:
    """Load the plan's parts side by side into ``schema.staging``, ready to attach as the batch.

    ``defs``: the column definitions of the source columns (text). Raises
    ``DirectCopyRefused`` — with nothing left behind — when the file cannot
    be loaded this way.
    """
    n = len(plan.parts)
    tables = [_part_table(staging, batch_id, i, n) for i in range(n)]
    live: list[psycopg.Connection] = []
    failures: list[BaseException] = []

    watch = interrupts.current()

    def run(i: int) -> None:
        try:
            with wh.adopt(watch):
                _load_part(
                    wh, plan, i, schema=schema, table=tables[i], defs=defs, columns=columns, batch_id=batch_id,
                    live=live,
                )
        except BaseException as exc:  # reported below; the other parts are stopped
            failures.append(exc)
            for conn in list(live):
                # Best effort: a part that cannot be cancelled fails or ends on its own.
                with contextlib.suppress(Exception):
                    conn.cancel_safe(timeout=5)

    threads = [threading.Thread(target=run, args=(i,), name=f"atlas-copy-{i}", daemon=True) for i in range(1, n)]
    for t in threads:
        t.start()
    run(0)
    for t in threads:
        t.join()
    try:
        if failures and watch is not None:
            watch.check()  # stopped on purpose: no fallback to the other loader
        if failures:
            first = next((f for f in failures if not isinstance(f, psycopg.errors.QueryCanceled)), failures[0])
            if isinstance(first, DirectCopyRefused | psycopg.Error):
                raise DirectCopyRefused(str(first).strip().splitlines()[0]) from first
            raise first
        stg = wh.table(schema, staging)
        ingested = (
            "ADD COLUMN _ingested_at timestamp with time zone NOT NULL DEFAULT now(),"
            f" ADD COLUMN _source text DEFAULT {wh.literal(source_label)}"
        )
        with wh.transaction() as cur:
            if n > 1:
                cur.execute(
                    f"CREATE TABLE {stg} ({defs}, _row_number bigint NOT NULL, _batch_id text NOT NULL)"
                    " PARTITION BY RANGE (_row_number)"
                )
                for table, part in zip(tables, plan.parts, strict=True):
                    cur.execute(
                        f"ALTER TABLE {stg} ATTACH PARTITION {wh.table(schema, table)}"
                        f" FOR VALUES FROM ({part.first_row}) TO ({part.first_row + part.rows})"
                    )
            cur.execute(f"ALTER TABLE {stg} {ingested}")
    except BaseException:
        with wh.adopt(None), wh.cursor() as cur:  # the clean-up runs even when the step was stopped
            for table in tables:
                cur.execute(f"DROP TABLE IF EXISTS {wh.table(schema, table)}")
        raise
    return plan.rows
