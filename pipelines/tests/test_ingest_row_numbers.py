"""Exact row numbers when the parser reads a file in pieces side by side (issue 16).

The embedded warehouse lets DuckDB's CSV reader parse a file's buffers on all its
threads and numbers the rows afterwards (``_row_number`` = the committed staging
table's row id + 1, ``duckdb.number_rows``); PostgreSQL's direct COPY numbers each
segment from where it starts. Either way ``_row_number`` must be the record's
position among the file's good records, and a quarantined record keeps its record
number, byte offset and exact bytes, wherever the pieces are cut.

The files here are several of DuckDB's read buffers long (the buffer is twice the
maximum line, made small here), with a record holding quoted line breaks across
every buffer boundary and bad rows in the later buffers; the expected rows and
rejects come from how each file was written, not from a parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from atlas.warehouse import newlines
from pipelines import sources
from pipelines.models import RunStatus

from .conftest import explore_rows, run_now

MAX_LINE = (1 << 20) + 1  # the smallest maximum line the content scan takes (> its 1 MiB chunk)
BUFFER = 2 * MAX_LINE  # DuckDB's read buffer (filereader._buffer_size)


@dataclass
class Written:
    content: bytes
    good: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, note), in file order
    bad: list[tuple[int, int, bytes]] = field(default_factory=list)  # (record number, byte offset, bytes)
    straddling: int = 0  # good records with a quoted line break that cross a buffer boundary


def _write(rows: int, *, newline: str = "\n", bom: bytes = b"", bad_every: int = 0, first_bad: int = 0) -> Written:
    """A CSV of ``rows`` records; a multi-line quoted record across every ``BUFFER`` boundary.

    Record numbers count the header as 1 (as the parser's rejects do); a bad record has a
    field too many. Offsets are those of the file's bytes (the BOM included).
    """
    nl = newline.encode()
    out = bytearray(bom + b"id,name,note" + nl)
    written = Written(b"")
    for i in range(1, rows + 1):
        record = i + 1
        start = len(out)
        boundary = (start // BUFFER + 1) * BUFFER
        if bad_every and i >= first_bad and i % bad_every == 0:
            raw = f"{i},bad {i},x,y".encode()
            written.bad.append((record, start, raw))
            out += raw + nl
            continue
        if boundary - start < 300 or i % 211 == 0:
            # A quoted name with doubled quotes, and a note of several lines, ~600 bytes long.
            note = newline.join(f"line {k} of record {i} " + "x" * 60 for k in range(8))
            name = f'name "{i}"'
            line = f'{i},"name ""{i}""","{note}"'.encode()
            if start < boundary < start + len(line):
                written.straddling += 1
        else:
            name, note = f"name {i}", f"note {i} of a plain record"
            line = f"{i},{name},{note}".encode()
        written.good.append((str(i), name, note))
        out += line + nl
    written.content = bytes(out)
    return written


@pytest.fixture
def small_buffers(settings):
    settings.ATLAS_INGEST_MAX_LINE_BYTES = MAX_LINE


def _quarantine(wh) -> list[tuple[int, int, bytes]]:
    with wh.cursor() as cur:
        return [
            (line, offset, bytes(raw))
            for line, offset, raw in cur.execute(
                'SELECT _line_number, _byte_offset, _raw_bytes FROM explore."landing__quarantine" ORDER BY _line_number'
            ).fetchall()
        ]


def _check(wh, written: Written, run) -> None:
    assert run.status == RunStatus.SUCCEEDED, run.error
    rows = explore_rows(wh, "landing", "id, name, note, _row_number")
    assert len(rows) == len(written.good)
    assert [r[3] for r in rows] == list(range(1, len(written.good) + 1))
    assert [r[:3] for r in rows] == written.good


@pytest.mark.parametrize(
    ("newline", "bom"),
    [("\n", b""), ("\r\n", b""), ("\r", b""), ("\n", b"\xef\xbb\xbf")],
    ids=["lf", "crlf", "cr-only", "utf8-bom"],
)
def test_quoted_line_breaks_across_read_buffers_keep_exact_row_numbers(
    wh, ingest_pipeline, make_csv, small_buffers, newline, bom
):
    written = _write(140_000, newline=newline, bom=bom)
    size = len(written.content)
    assert size > 3 * BUFFER and written.straddling == size // BUFFER  # several boundaries, each crossed
    run = run_now(ingest_pipeline(location=str(make_csv(written.content))))
    _check(wh, written, run)


def test_bad_rows_in_later_buffers_keep_their_record_numbers_and_offsets(wh, ingest_pipeline, make_csv, small_buffers):
    written = _write(140_000, bad_every=997, first_bad=90_000)
    assert len(written.bad) > 40 and written.bad[0][1] > 2 * BUFFER  # every bad row after the second buffer
    run = run_now(ingest_pipeline(location=str(make_csv(written.content))))
    _check(wh, written, run)
    assert _quarantine(wh) == written.bad
    assert run.step_runs.get().rows_rejected == len(written.bad)


def test_a_simple_quoted_file_over_many_segments_numbers_every_row(wh, ingest_pipeline, make_csv, small_buffers):
    # Every field quoted, no line break inside: PostgreSQL's direct COPY path (segments side by side).
    lines = ['"id","name","note"'] + [f'"{i}","name {i}","{"" if i % 5 == 0 else f"note {i}"}"' for i in range(1, 150_001)]
    run = run_now(ingest_pipeline(location=str(make_csv("\n".join(lines) + "\n"))))
    assert run.status == RunStatus.SUCCEEDED, run.error
    rows = explore_rows(wh, "landing", "id, note, _row_number")
    assert len(rows) == 150_000
    assert all(r[0] == str(r[2]) and r[1] == (None if r[2] % 5 == 0 else f"note {r[2]}") for r in rows)


# --- the content scan's shared newline offsets and its quote check (pure functions) -------------


def _simple_by_hand(block: bytes) -> bool:
    """``simple_quotes``'s rule, one byte at a time: quotes pair up on a line, opening and closing whole fields."""
    inside = False
    for i, byte in enumerate(block):
        if byte == ord('"'):
            if not inside and i > 0 and block[i - 1] not in b",\n":
                return False
            if inside and (i + 1 >= len(block) or block[i + 1] not in b",\n\r"):
                return False
            inside = not inside
        elif byte == ord("\n") and inside:
            return False
    return not inside


def test_the_quote_check_agrees_with_its_rule_on_random_lines():
    import random

    rnd = random.Random(16)
    for _ in range(3000):
        lines = ["".join(rnd.choice('ab,,""" \r') for _ in range(rnd.randint(0, 9))) for _ in range(rnd.randint(1, 4))]
        block = ("\n".join(lines) + "\n").encode()
        expected = _simple_by_hand(block)
        ends = newlines.positions(block)
        assert sources.simple_quotes(block, b'"', b",") is expected, block
        assert sources.simple_quotes(block, b'"', b",", ends) is expected, block


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_the_content_scan_checks_quotes_alike_whatever_the_chunks(chunk):
    simple = b'"id","name"\n' + b"".join(b'"%d","n, %d"\n' % (i, i) for i in range(500))
    broken = simple[:3000] + b'"a,"b",c"\n' + simple[3000:]
    for text, expected in ((simple, True), (broken, False), (simple + b'"x","y"', True)):
        scan = sources.ContentScan((1 << 20) + 1, b'"')
        for i in range(0, len(text), chunk):
            scan.feed(text[i : i + chunk])
        scan.finish()
        assert scan.layout.quotes_simple is expected
        assert scan.newlines == text.count(b"\n")


def test_newline_offsets_are_found_once_per_chunk_and_never_stale():
    chunk = b"a\nbb\n" * 3
    first = newlines.positions(chunk)
    assert list(first) == [1, 4, 6, 9, 11, 14]
    assert newlines.positions(chunk) is first  # the same chunk: not searched again
    assert newlines.count(chunk) == 6 and newlines.nth(chunk, 3) == 6
    other = b"x\n" + chunk
    assert newlines.count(other) == 7
    mutable = bytearray(b"a\nb\n")
    assert newlines.count(mutable) == 2
    mutable[0:1] = b"\n"
    assert newlines.count(mutable) == 3  # a bytearray can change: never remembered
