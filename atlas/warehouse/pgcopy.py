"""Direct COPY: a CSV file without quotes (or with simple quotes only), parsed by PostgreSQL itself, in parts.

When a CSV file holds no quote character, PostgreSQL's ``COPY`` and DuckDB's
reader read it the same way: fields end at the delimiter, records at a
newline, an empty field is NULL, and both refuse the same broken rows (too
many or too few fields, bytes that are not the encoding). So such a file needs
no DuckDB hop: its bytes go straight to ``COPY``, as in the hand-written floor.
And because the content scan already knows where lines start, the file is cut
at line starts into parts that separate connections load at the same time,
each numbering its rows from an identity column whose sequence starts where its part
starts — ``_row_number`` stays the exact position of the record in the file.

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

By default the content scan and the COPY are one pass (``Pipe``): the bytes go to
COPY while the scan reads them (a compressed file decompressed once, straight in),
cut into segments of a fixed number of lines dealt in turn to several connections
side by side (each row's part is a function of its row number, so the parts attach
as LIST partitions with no scan), and the load is kept only if the finished scan
gives the plan a file on disk would get — same options, records are lines, the
record count — and the file is not already loaded; else every part is rolled back
and the file loaded as below. Without the pipe (``ATLAS_INGEST_COPY_PIPE=off``, or a
file whose name the ledger holds) the file is scanned first, then cut at line starts
into contiguous parts (``plan``, ``load``).

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
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

from . import interrupts, newlines
from .base import FileLayout, StreamedFile, Warehouse, WarehouseError
from .filereader import ENCODINGS

if TYPE_CHECKING:
    from .postgresql import PostgresWarehouse

CHUNK = 1 << 20
# A connection caches this many numbers of its part's identity sequence: a row's number
# then costs no buffer access or WAL record.
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
    stream: StreamedFile | None = None  # the content comes from here, not from ``path`` (one part)

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
    stream: StreamedFile | None = None,
) -> Plan | None:
    """How to load ``path`` by direct COPY in up to ``streams`` parts; None when it cannot be.

    ``stream``: the content is read from it once, in order, so in one part.
    """
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
    if stream is not None:
        streams = 1
        start = (stream.head.find(b"\n") + 1 or layout.size) if header else 0
    else:
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
    return Plan(path, opts, tuple(parts), stream)


def _part_table(staging: str, batch_id: str, i: int, n: int) -> str:
    # Named after the staging table (which names the run attempt): the janitor finds a dead attempt's parts.
    return staging if n == 1 else f"{staging[:58]}_p{i}"


def _part_bytes(plan: Plan, part: Part) -> Iterator[bytes]:
    """The bytes of ``part``: read from the file, or taken from the plan's stream (its header skipped)."""
    if plan.stream is None:
        with open(plan.path, "rb") as fh:
            fh.seek(part.start)
            left = part.end - part.start
            while left > 0 and (chunk := fh.read(min(CHUNK, left))):
                left -= len(chunk)
                yield chunk
        return
    skip = part.start
    chunks = plan.stream.chunks()
    try:
        for chunk in chunks:
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
            if chunk:
                yield chunk
    finally:
        chunks.close()  # type: ignore[attr-defined]  # stops the decompressor when COPY fails first


def _numbered(seq: str, start: int) -> str:
    """The ``_row_number`` column of a part: an identity numbered from ``start`` by the sequence ``seq``.

    An identity, not ``DEFAULT nextval(seq)``: PostgreSQL evaluates it without the
    function call and the privilege check ``nextval`` makes per row (issue 16: about
    0.04 s of PostgreSQL CPU per 1M rows). ``seq`` is named as the janitor expects
    (``pipelines.attempts``), and is dropped with the identity when the part is sealed.
    """
    return (
        f"_row_number bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY"
        f" (SEQUENCE NAME {seq} START {int(start)} MINVALUE {int(start)} CACHE {SEQUENCE_CACHE})"
    )


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
            cur.execute(f"CREATE TABLE {tbl} ({defs}, {_numbered(seq, part.first_row)})")
            with cur.copy(f"COPY {tbl} ({cols}) FROM STDIN ({plan.copy_options})") as copy:
                for chunk in _part_bytes(plan, part):
                    copy.write(chunk)
            if cur.rowcount != part.rows:
                raise DirectCopyRefused(
                    f"COPY read {cur.rowcount} records from the {part.rows} lines starting at byte {part.start}"
                )
            cur.execute(
                f"ALTER TABLE {tbl} ALTER COLUMN _row_number DROP IDENTITY,"  # drops its sequence
                f" ADD COLUMN _batch_id text NOT NULL DEFAULT {batch},"
                f" ADD CONSTRAINT {wh.quote('batch_' + batch_id)} CHECK (_batch_id = {batch}),"
                f" ADD CONSTRAINT row_numbers CHECK (_row_number >= {part.first_row}"
                f" AND _row_number < {part.first_row + part.rows})"
            )


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


# --- the pipe: a direct COPY fed while the file is first read, in parts side by side -----------

_END = object()


def segment_rows(sample: bytes, segment_bytes: int) -> int:
    """Records per segment: about ``segment_bytes`` of lines as long as those of ``sample`` (at least 2)."""
    lines = sample.count(b"\n")
    average = len(sample) / lines if lines else max(len(sample), 1)
    return max(2, int(segment_bytes // max(average, 1)))


def segment_first_row(segment: int, rows_per_segment: int) -> int:
    """The row number of the first record of segment ``segment`` (from 0): ``j * R``, and 1 for the first.

    Segment ``j`` holds the rows whose ``_row_number / R`` is ``j``: rows ``j*R`` to
    ``j*R + R - 1``, so the first segment (rows 1 to ``R - 1``) has one record fewer.
    """
    return max(1, segment * rows_per_segment)


def segment_size(segment: int, rows_per_segment: int) -> int:
    """The records of segment ``segment``, unless the file ends inside it."""
    return rows_per_segment - 1 if segment == 0 else rows_per_segment


def part_key(rows_per_segment: int, parts: int) -> str:
    """The part a row is loaded by, from its row number: segments of ``rows_per_segment`` records dealt in turn.

    ``_row_number / R`` rather than ``(_row_number - 1) / R`` (segments of exactly R rows
    from row 1): the CHECK of every part evaluates it per row as COPY writes, and one
    operation fewer there is about 0.03 s of PostgreSQL CPU per 1M rows (issue 16).
    """
    return f"((_row_number / {int(rows_per_segment)}) % {int(parts)})"


class Pipe:
    """A direct COPY of one file fed while its content scan reads it: one pass, in parts side by side.

    The scan (checksum, layout, hygiene) and the COPY used to run one after the other;
    here every chunk the scan reads is also handed on, through bounded queues (``AHEAD``
    chunks per part: bounded memory), to threads that stream it into ``COPY`` — as
    ``gzip -dc file | COPY`` or a plain COPY does, the COPY never waits for a pass of its
    own, and a compressed file is decompressed once, never written to disk.

    **Parts side by side.** One COPY is one PostgreSQL backend, one CPU; the scan reads
    faster than that. So the content is cut into *segments* of exactly ``R`` lines (``R``
    set from the first lines' length: about ``segment_bytes`` each), dealt in turn to up to
    ``streams`` parts: segment ``j`` goes to part ``j % streams``, each part a connection
    and a table of its own. A part starts when its first segment comes (a small file is
    one part). Segment ``j`` holds the rows whose ``_row_number / R`` is ``j`` (rows ``j*R``
    to ``j*R + R - 1``; the first, from row 1, one line fewer). Each segment is one ``COPY``
    statement whose row numbers start where the segment starts — ``setval`` of the part's
    identity sequence to ``max(1, j * R)`` — so ``_row_number`` is the exact position of the
    record in the file, and a part's rows are exactly those with ``part_key``
    (``(_row_number / R) % streams``) equal to its index: a CHECK declared when the table
    is made (checked per row as COPY writes,
    no pass of its own), by which the parts attach as LIST partitions of the batch's
    table with no scan. Cutting segments by lines, not bytes, is what makes that key a
    plain expression of the row number; the split point of a segment is found only in the
    chunk where it falls (one numpy pass), so dealing costs the scan little.

    Whether the load stands is decided only once the scan is complete (``finish``): the
    layout must allow the direct path exactly as ``plan`` decides it for a file on disk
    (records are lines), the delimiter be the one sniffed in the end, every segment's
    COPY count equal its lines, their sum the records the scan counted, and the file not
    already loaded. Otherwise (``abort``) every part's transaction rolls back: nothing is
    left, and the file is loaded as before (DuckDB reads it and quarantines what it must).

    What was weighed (issue 16, measured on 1M every-field-quoted rows, PostgreSQL CPU of
    one COPY: 0.68 s into a plain table): numbering rows costs 0.12 s with ``DEFAULT
    nextval(seq)`` and 0.08 s with an identity column (no function call or privilege check
    per row; storing the bigint itself is 0.04 s of that), so the rows are numbered by an
    identity; PostgreSQL has no per-statement row ordinal a default could add to the
    segment's start, and an expression that maps one counter to dealt segments needs the
    counter twice, so each segment restarts the part's identity sequence instead (one
    ``setval`` per segment). The part CHECK costs 0.06 s as ``((_row_number - 1) / R) %
    streams`` (evaluated twice: PostgreSQL proves the partition key's IS NOT NULL only
    from the same expression) and 0.03 s as ``(_row_number / R) % streams``, hence the
    first segment's missing line. The batch's CHECK is validated
    by one pass over the part's rows (about 0.08 s; PostgreSQL cannot prove it from the
    column's default), done by every part at once. Parts side by side win when a CPU is
    free; on a saturated machine they cost what one COPY costs, plus a connection each.

    ``plain``: fed uncompressed files too (else only compressed ones).
    """

    AHEAD = 6  # chunks of at most 1 MiB (hygiene's CHUNK) queued per part: bounded memory

    def __init__(
        self, wh: PostgresWarehouse, *, schema: str, target: str, staging: str, batch_id: str, source_label: str,
        max_line_bytes: int, plain: bool = True, streams: int = 1, segment_bytes: int = 2 << 20,
    ) -> None:
        self.plain = plain
        self.wh, self.schema, self.target, self.staging = wh, schema, target, staging
        self.batch_id, self.source_label, self.max_line_bytes = batch_id, source_label, max_line_bytes
        self.streams, self.segment_bytes = max(1, streams), max(1, segment_bytes)
        self.started = False
        self.closed = False
        self.options: dict[str, Any] = {}
        self.columns: list[str] = []
        self.copy_options = ""
        self.head = b""
        self.defs = ""
        self._watch: Any = None
        self._parts: list[_Part] = []
        self._error: BaseException | None = None
        # the dealer: where the content stands
        self._skip_header = False
        self._rows_per_segment = 0
        self._segment = 0  # index of the segment being dealt
        self._size = 0  # lines of the open segment (``segment_size``)
        self._left = 0  # lines the open segment still takes (0: none open)
        self._open = False
        self._partial = False  # the last byte dealt is not a newline (a last line without one)
        self._rows_dealt = 0

    def start(self, head: bytes, options: dict[str, Any]) -> bool:
        """Open the COPY for a file that begins with ``head`` read with ``options``; False: not this way."""
        from .filereader import csv_columns

        if b"\n" not in head:
            return False
        try:
            columns = csv_columns(self.staging, options, max_line_bytes=self.max_line_bytes, head=head)
        except Exception:  # the loader reports a bad header in its own words, later
            return False
        opts = copy_options(options)
        if opts is None or len(columns) < 2:
            return False
        # An empty quoted field is NULL to DuckDB: so to COPY (no effect on unquoted fields).
        opts += ", FORCE_NULL (" + ", ".join('"' + c.replace('"', '""') + '"' for c in columns) + ")"
        try:
            self.wh.ensure_explore_table(self.schema, self.target, columns)
            defs = self.wh.column_defs(self.schema, self.target, exclude=(*_batch_constant_columns(), "_row_number"))
            with self.wh.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {self.wh.table(self.schema, self.staging)}")
        except WarehouseError:  # e.g. a header unlike the table's: reported by the load, in its place
            return False
        self.options, self.columns, self.copy_options, self.head = dict(options), columns, opts, head
        self.defs = defs
        self._watch = interrupts.current()
        self._skip_header = bool(options.get("header", True))
        self.started = True
        self._start_part()  # part 0 opens its connection while the scan starts
        return True

    # --- dealing the content to the parts (the scan's thread) ---

    def feed(self, chunk: bytes) -> None:
        if not self.started or self.closed or not chunk:
            return
        if self._skip_header:
            cut = chunk.find(b"\n")
            if cut < 0:
                return
            chunk, self._skip_header = chunk[cut + 1 :], False
            if not chunk:
                return
        if not self._rows_per_segment:
            self._rows_per_segment = segment_rows(chunk, self.segment_bytes)
        ends = newlines.positions(chunk)  # the chunk's newlines, found once (the scan reuses them)
        pos = done = 0  # where the rest of the chunk starts; newlines before it
        while pos < len(chunk) and not self.closed:
            if not self._open:
                self._open_segment()
            if len(ends) - done < self._left:
                self._send(chunk[pos:] if pos else chunk)
                self._left -= len(ends) - done
                return
            done += self._left
            cut = int(ends[done - 1]) + 1  # the segment ends inside this chunk
            self._send(chunk[pos:cut])
            self._close_segment(self._size)
            pos = cut

    def _open_segment(self) -> None:
        k = self._segment % self.streams
        if k >= len(self._parts):
            self._start_part()
        self._put(k, ("segment", segment_first_row(self._segment, self._rows_per_segment)))
        self._size = segment_size(self._segment, self._rows_per_segment)
        self._open, self._left, self._partial = True, self._size, False

    def _close_segment(self, rows: int) -> None:
        self._put(self._segment % self.streams, ("end", rows))
        self._rows_dealt += rows
        self._segment += 1
        self._open, self._left, self._partial = False, 0, False

    def _send(self, piece: bytes) -> None:
        self._put(self._segment % self.streams, piece)
        self._partial = not piece.endswith(b"\n")

    def _start_part(self) -> None:
        part = _Part(len(self._parts), queue.Queue(maxsize=self.AHEAD))
        self._parts.append(part)
        part.thread = threading.Thread(target=self._run, args=(part,), name=f"atlas-copy-pipe-{part.index}", daemon=True)
        part.thread.start()

    def _put(self, k: int, item: Any) -> None:
        part = self._parts[k]
        while part.thread is not None and part.thread.is_alive():
            try:
                part.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        self.closed = True  # a part ended (refused): the rest of the file is not sent

    # --- one part (its own thread, connection and transaction) ---

    def _table(self, k: int) -> str:
        return f"{self.staging[:58]}_p{k}"

    def _run(self, part: _Part) -> None:
        wh = self.wh
        tbl = wh.table(self.schema, self._table(part.index))
        seq = wh.table(self.schema, f"{self.staging[:58]}_s{part.index}")
        cols = ", ".join(wh.quote(c) for c in self.columns)
        batch = wh.literal(self.batch_id)
        try:
            with wh.adopt(self._watch), wh.connect_own() as conn:
                part.conn = conn
                with (
                    interrupts.enlisted(("pg", id(conn)), conn.info.backend_pid),
                    conn.transaction(),
                    conn.cursor() as cur,
                ):
                    cur.execute(f"CREATE TABLE {tbl} ({self.defs}, {_numbered(seq, 1)})")
                    copy_sql = f"COPY {tbl} ({cols}) FROM STDIN ({self.copy_options})"
                    keyed = self.streams == 1  # one part only: no key needed
                    item = part.queue.get()
                    while item is not _END:
                        _, first = item  # a segment begins: its records are numbered from ``first``
                        if not keyed:
                            keyed = True
                            # Every row of this part, and only its rows: the key of its partition (see above).
                            key = part_key(self._rows_per_segment, self.streams)
                            cur.execute(
                                f"ALTER TABLE {tbl} ADD CONSTRAINT part_rows CHECK ({key} IS NOT NULL"
                                f" AND {key} = {part.index})"
                            )
                        cur.execute("SELECT setval(%s::regclass, %s, false)", [seq, first])
                        with cur.copy(copy_sql) as copy:
                            while not isinstance(item := part.queue.get(), tuple):
                                if item is _END:  # aborted inside a segment
                                    raise DirectCopyRefused("the load was stopped before the file's end")
                                copy.write(item)
                        _, rows = item  # ("end", lines of the segment)
                        if cur.rowcount != rows:
                            raise DirectCopyRefused(
                                f"COPY read {cur.rowcount} records from the {rows} lines from row {first}"
                            )
                        part.rows += rows
                        item = part.queue.get()
                    verdict = part.verdict.get()
                    if verdict is None:
                        raise DirectCopyRefused("the file cannot take the direct path")
                    alone = verdict == 1
                    sealed = (
                        f"ALTER TABLE {tbl} ALTER COLUMN _row_number DROP IDENTITY,"  # drops its sequence
                        f" ADD COLUMN _batch_id text NOT NULL DEFAULT {batch},"
                        f" ADD CONSTRAINT {wh.quote('batch_' + self.batch_id)} CHECK (_batch_id = {batch})"
                    )
                    if alone:  # the batch's table itself
                        sealed += (
                            ", ADD COLUMN _ingested_at timestamp with time zone NOT NULL DEFAULT now(),"
                            f" ADD COLUMN _source text DEFAULT {wh.literal(self.source_label)}"
                        )
                    cur.execute(sealed)
                    if alone:
                        cur.execute(f"ALTER TABLE {tbl} RENAME TO {wh.quote(self.staging)}")
        except BaseException as exc:  # reported by finish()
            part.error = exc
            while True:  # unblock a feeder waiting on a full queue
                try:
                    part.queue.get_nowait()
                except queue.Empty:
                    break

    # --- the end ---

    def end_of_data(self) -> None:
        """Every byte was fed: the last segment ends, every COPY completes and waits for ``finish`` or ``abort``."""
        if self.started and not self.closed and self._open:
            self._close_segment(self._size - self._left + (1 if self._partial else 0))
        self.closed = True
        self._end_parts()

    def _end_parts(self) -> None:
        """Tell every part the content ended (also those still running when another one failed)."""
        for part in self._parts:
            if not part.ended:
                part.ended = True
                while part.thread is not None and part.thread.is_alive():
                    try:
                        part.queue.put(_END, timeout=0.1)
                        break
                    except queue.Full:
                        continue

    def abort(self) -> None:
        """Roll every part back (nothing is left); idempotent."""
        if not self.started:
            return
        self.closed = True
        self._end_parts()
        self._decide(None)

    def _decide(self, parts: int | None) -> None:
        for part in self._parts:
            if part.thread is None:
                continue
            if part.thread.is_alive():
                with contextlib.suppress(queue.Full):
                    part.verdict.put_nowait(parts)
            part.thread.join()
            part.thread = None
            if part.error is not None and self._error is None:
                self._error = part.error

    def finish(self, path: str, options: dict[str, Any], layout: FileLayout) -> int:
        """Keep the load if the scan's verdict allows it: its rows; else ``DirectCopyRefused`` (rolled back)."""
        if not self.started:
            raise DirectCopyRefused("the file was not streamed to COPY")
        self.end_of_data()
        read = StreamedFile(head=self.head, chunks=lambda: iter(()), materialise=lambda: None)
        found = None
        if options == self.options:  # the delimiter sniffed in the end is the one COPY used
            found = plan(
                path, options, layout, columns=self.columns, streams=1, part_bytes=1,
                max_line_bytes=self.max_line_bytes, stream=read,
            )
        rows = found.parts[0].rows if found is not None and len(found.parts) == 1 else None
        if rows is not None and rows != self._rows_dealt:
            rows = None  # the scan counted other records than the lines dealt
        used = list(self._parts)  # a part starts when it is dealt its first segment (part 0: at once)
        self._decide(len(used) if rows is not None else None)
        loaded = sum(p.rows for p in used)
        if self._error is None and rows is not None and loaded != rows:
            self._error = DirectCopyRefused(f"the parts loaded {loaded} records of the file's {rows}")
        if self._error is None and rows is not None and len(used) > 1:
            self._attach(used)
        if self._error is not None:
            self._drop_parts()
            if (watch := interrupts.current()) is not None:
                watch.check()  # stopped on purpose: no fallback to the other loader
            error = self._error
            if isinstance(error, DirectCopyRefused | psycopg.Error):
                raise DirectCopyRefused(str(error).strip().splitlines()[0]) from error
            raise error
        if rows is None:
            raise DirectCopyRefused("the file's layout does not allow the direct path")
        return rows

    def _attach(self, used: list[_Part]) -> None:
        """The parts (committed) as LIST partitions of the batch's table, by ``part_key``: no scan."""
        wh = self.wh
        stg = wh.table(self.schema, self.staging)
        try:
            with wh.transaction() as cur:
                cur.execute(
                    f"CREATE TABLE {stg} ({self.defs}, _row_number bigint NOT NULL, _batch_id text NOT NULL)"
                    f" PARTITION BY LIST ({part_key(self._rows_per_segment, self.streams)})"
                )
                for part in used:
                    cur.execute(
                        f"ALTER TABLE {stg} ATTACH PARTITION {wh.table(self.schema, self._table(part.index))}"
                        f" FOR VALUES IN ({part.index})"
                    )
                cur.execute(
                    f"ALTER TABLE {stg} ADD COLUMN _ingested_at timestamp with time zone NOT NULL DEFAULT now(),"
                    f" ADD COLUMN _source text DEFAULT {wh.literal(self.source_label)}"
                )
        except BaseException as exc:
            self._error = exc

    def _drop_parts(self) -> None:
        """What parts committed before another failed: dropped (the clean-up runs even when the step was stopped)."""
        with self.wh.adopt(None), self.wh.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.wh.table(self.schema, self.staging)}")
            for part in self._parts:
                cur.execute(f"DROP TABLE IF EXISTS {self.wh.table(self.schema, self._table(part.index))}")


@dataclass(eq=False)
class _Part:
    """One part of a pipe: its queue of segments, its thread and what it loaded."""

    index: int
    queue: queue.Queue
    verdict: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=1))
    thread: threading.Thread | None = None
    conn: Any = None
    rows: int = 0
    ended: bool = False  # told the content ended
    error: BaseException | None = None


def _batch_constant_columns() -> tuple[str, ...]:
    from .base import BATCH_CONSTANT_COLUMNS

    return tuple(BATCH_CONSTANT_COLUMNS)
