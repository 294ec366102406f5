"""Direct COPY on PostgreSQL: a CSV without quotes is parsed by COPY itself, in parts side by side.

Whatever takes this path must land exactly as the DuckDB reader would land it;
whatever COPY refuses must fall back to DuckDB (quarantine and all) and leave
nothing behind.
"""

import csv
import io
import logging
from datetime import UTC, datetime, timedelta

import pytest

from atlas.warehouse import pgcopy
from atlas.warehouse.base import FileLayout
from pipelines import sources
from pipelines.models import LoadedBatch, RunStatus
from pipelines.sources import ContentScan

from .conftest import explore_rows, quarantine_rows, run_now

ROWS = 300


def _csv(rows: int = ROWS, *, bad: dict[int, str] | None = None, newline: str = "\n", tail: bool = True) -> str:
    lines = ["id,name,city,amount"]
    for i in range(1, rows + 1):
        lines.append((bad or {}).get(i, f"{i},name {i},Città {i % 7},{i * 1.5}"))
    return newline.join(lines) + (newline if tail else "")


def _layout(text: bytes, chunk: int = 64, quote: bytes | None = b'"') -> FileLayout:
    scan = ContentScan(1 << 30, quote)
    for i in range(0, len(text), chunk):
        scan.feed(text[i : i + chunk])
    scan.finish()
    return scan.layout


# --- the plan: pure functions ----------------------------------------------------


def test_the_content_scan_notes_line_starts_quotes_and_the_last_newline():
    text = b'a,b\n1,2\n3,"x"\n4,5'
    layout = _layout(text, chunk=5)
    assert layout.size == len(text) and layout.newlines == 3
    assert layout.quoted and not layout.ends_with_newline
    for offset, before in layout.line_starts:
        assert text[offset - 1 : offset] == b"\n" and text[:offset].count(b"\n") == before
    assert _layout(b"a,b\n", quote=None).quoted is None and _layout(b"a,b\n").quoted is False


@pytest.mark.parametrize("streams", [1, 2, 3, 7])
@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("tail", [True, False])
def test_parts_cover_every_line_once_with_exact_row_numbers(tmp_path, streams, header, tail):
    text = _csv(tail=tail).encode()
    if not header:
        text = text.split(b"\n", 1)[1]
    path = tmp_path / "f.csv"
    path.write_bytes(text)
    plan = pgcopy.plan(
        str(path), {"header": header}, _layout(text), columns=list("abcd"), streams=streams, part_bytes=1000, max_line_bytes=10**6
    )
    assert plan is not None and len(plan.parts) == min(streams, max(1, len(text) // 1000))
    records = [line for line in text.split(b"\n") if line][1 if header else 0 :]
    seen = []
    for part in plan.parts:
        lines = [line for line in text[part.start : part.end].split(b"\n") if line]
        assert len(lines) == part.rows
        assert part.first_row == len(seen) + 1
        seen += lines
    assert seen == records and plan.rows == ROWS
    assert plan.parts[-1].end == len(text)


def test_a_header_only_file_plans_no_rows(tmp_path):
    for text in (b"id,name\n", b"id,name"):
        path = tmp_path / "h.csv"
        path.write_bytes(text)
        plan = pgcopy.plan(str(path), {}, _layout(text), columns=list("ab"), streams=2, part_bytes=1, max_line_bytes=100)
        assert plan is not None and plan.rows == 0


@pytest.mark.parametrize(
    "options, layout_change, columns",
    [
        ({}, {"quoted": True}, list("abc")),  # quoting: DuckDB and COPY may read it differently
        ({}, {"quoted": None}, list("abc")),  # not looked for
        ({}, {"long_lines": 1}, list("abc")),  # DuckDB quarantines it; COPY would load it
        ({}, {}, ["a"]),  # one column: a blank line is a NULL record to COPY
        ({"delimiter": "||"}, {}, list("abc")),
        ({"encoding": "utf-16"}, {}, list("abc")),
        ({"escape": "\\"}, {}, list("abc")),
        ({"quote": "'", "delimiter": "'"}, {}, list("abc")),
    ],
)
def test_what_copy_cannot_read_like_duckdb_takes_the_duckdb_path(tmp_path, options, layout_change, columns):
    text = b"a,b,c\n1,2,3\n"
    path = tmp_path / "f.csv"
    path.write_bytes(text)
    fields = {**_layout(text).__dict__, **layout_change}
    plan = pgcopy.plan(str(path), options, FileLayout(**fields), columns=columns, streams=2, part_bytes=1, max_line_bytes=100)
    assert plan is None


def test_copy_options_follow_the_source_options():
    assert pgcopy.copy_options({}) == "FORMAT csv, DELIMITER ',', QUOTE '\"', ENCODING 'UTF8', FREEZE"
    assert "DELIMITER ';'" in pgcopy.copy_options({"delimiter": ";", "encoding": "latin-1"})
    assert "ENCODING 'LATIN1'" in pgcopy.copy_options({"encoding": "ISO-8859-1"})


# --- loads on PostgreSQL -------------------------------------------------------------


@pytest.fixture
def pg(wh):
    if wh.vendor != "postgresql":
        pytest.skip("PostgreSQL only: direct COPY is the PostgreSQL warehouse's loader")
    return wh


@pytest.fixture
def split(settings, monkeypatch):
    """Small files split like big ones: a line start noted every 256 bytes, parts of 1 KB, 3 streams.

    The loader alone: no step hooks (a test that needs one sets it); the scan first, then COPY
    in parts (not the pipe, which loads a file in one part as it is read: ``piped``).
    """
    monkeypatch.setattr(sources, "CHUNK", 256)
    settings.ATLAS_STEP_HOOKS = []
    settings.ATLAS_INGEST_COPY_PART_BYTES = 1000
    settings.ATLAS_INGEST_COPY_SEGMENT_BYTES = 1000  # the pipe (when a test turns it on) in parts too
    settings.ATLAS_INGEST_COPY_STREAMS = 3
    settings.ATLAS_INGEST_COPY_PIPE = "off"
    return settings


def _partitions(wh, table="landing"):
    with wh.cursor() as cur:
        return cur.execute(
            "SELECT c.relname, c.relkind, (SELECT count(*) FROM pg_inherits i2 WHERE i2.inhparent = c.oid)"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [f'explore."{table}"'],
        ).fetchall()


def _leftovers(wh):
    with wh.cursor() as cur:
        return cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'explore' AND (c.relname ~ '_(p|rn)[0-9]+$' OR c.relkind = 'S')"
            " AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)"
        ).fetchall()


def _expected(text: str) -> list[tuple]:
    rows = list(csv.reader(io.StringIO(text)))[1:]
    return [(*r, n) for n, r in enumerate(rows, start=1)]


def test_a_clean_file_is_loaded_in_parts_exactly_as_written(pg, split, ingest_pipeline, make_csv):
    text = _csv()
    path = make_csv(text)
    run = run_now(ingest_pipeline(location=str(path)))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(pg, "landing", "id, name, city, amount, _row_number") == _expected(text)
    batch = LoadedBatch.objects.get().batch_id
    staged = f"landing__r{run.pk}a1_{batch}"  # named for the run attempt that staged it
    assert _partitions(pg) == [(staged, "p", 3)]  # the batch: three parts side by side
    with pg.cursor() as cur:
        per_file = cur.execute(
            'SELECT count(DISTINCT _batch_id), min(_batch_id), count(DISTINCT _ingested_at), min(_source)'
            ' FROM explore."landing"'
        ).fetchone()
        stored_once = cur.execute(
            "SELECT count(*) FROM pg_attribute a JOIN pg_inherits i ON i.inhrelid = a.attrelid"
            f" WHERE i.inhparent = 'explore.\"{staged}\"'::regclass AND a.attname = '_batch_id'"
            " AND a.atthasmissing"
        ).fetchone()[0]
    assert per_file == (1, batch, 1, str(path))
    assert stored_once == 3  # each part keeps its batch id once, in the catalogue
    assert run.step_runs.get().rows_out == ROWS
    assert _leftovers(pg) == []


AWKWARD = {
    # no quote: COPY reads it as DuckDB does
    "empty fields": ("150,,,", "direct"),
    "spaces and tabs": ("150, a ,\tb\t, ", "direct"),
    "backslashes": ("150,\\N,a\\,b\\t", "direct"),
    # quotes: DuckDB reads the file (COPY would read some of these differently)
    "quoted": ('150,"say ""hi""","a,b",""', "duckdb"),
    # simple quotes (each opens or closes a whole field): COPY reads them as DuckDB does (issue 16)
    "empty and quoted empty": ('150,"",,1', "direct"),
    "quoted end-of-data marker": ('150,"\\.",x,1', "direct"),
    "every field quoted": ('"150","a, b","x","1"', "direct"),
    "quote toggling": ('150,"a,"b",c",d', "duckdb"),
    "doubled quotes in a bare field": ('150,x""y,x"",1', "duckdb"),
    "text after a closing quote": ('150,"ab"c,x,1', "duckdb"),
    "space after a closing quote": ('150,"ab" ,x,1', "duckdb"),
    "quote inside a field": ('150,a"b,x,1', "duckdb"),
    "line break inside quotes": ('150,"two\nlines",x,1', "duckdb"),
    "unterminated quote": ('150,name,"unterminated,1', "duckdb"),
}


@pytest.mark.parametrize("piped", [False, True], ids=["parts", "piped"])
@pytest.mark.parametrize("case", [*AWKWARD, "crlf"])
def test_both_loaders_give_the_same_rows(pg, split, ingest_pipeline, make_csv, settings, case, piped):
    settings.ATLAS_INGEST_COPY_PIPE = "all" if piped else "off"
    if case == "crlf":  # CRLF, no newline at the end, an empty field
        text, path = _csv(newline="\r\n", tail=False).replace("name 5,", ","), "direct"
    else:
        line, path = AWKWARD[case]
        text = _csv(bad={150: line})
    # Partial policy: an unterminated quote swallows half the file, over the limit (issue 16); both
    # loaders must still agree on the good rows and the quarantine.
    step = {"load_policy": "partial"}
    direct = run_now(ingest_pipeline(location=str(make_csv(text, "a.csv")), table="direct", step=step))
    settings.ATLAS_INGEST_DIRECT_COPY = False
    parsed = run_now(ingest_pipeline(location=str(make_csv(text, "b.csv")), table="parsed", step=step))
    assert direct.status == parsed.status == RunStatus.SUCCEEDED, direct.error or parsed.error
    assert [p[1] for p in _partitions(pg, "parsed")] == ["r"]
    assert [p[1] for p in _partitions(pg, "direct")] == ["p" if path == "direct" else "r"]
    cols = "id, name, city, amount, _row_number"
    assert explore_rows(pg, "direct", cols) == explore_rows(pg, "parsed", cols)
    assert [q[:2] for q in quarantine_rows(pg, "direct")] == [q[:2] for q in quarantine_rows(pg, "parsed")]
    assert _leftovers(pg) == []


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("250,too,many,fields,here", "TOO MANY COLUMNS"),
        ("250,too few", "MISSING COLUMNS"),
        ("\\.", "MISSING COLUMNS"),  # COPY's end-of-data marker: COPY would stop there
    ],
)
@pytest.mark.parametrize("piped", [False, True], ids=["parts", "piped"])
def test_a_row_copy_refuses_sends_the_file_through_duckdb_and_its_quarantine(
    pg, split, ingest_pipeline, make_csv, bad, reason, caplog, settings, piped
):
    settings.ATLAS_INGEST_COPY_PIPE = "all" if piped else "off"
    caplog.set_level(logging.INFO, logger="atlas.warehouse.postgresql")
    text = _csv(bad={250: bad})
    run = run_now(ingest_pipeline(location=str(make_csv(text))))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert ("the load fed while it was read is refused" if piped else "parsing it with DuckDB instead") in caplog.text
    [(line, why, raw)] = quarantine_rows(pg, "landing")
    assert line == 251 and reason in why and raw.startswith(bad[:4])
    good = text.replace(bad + "\n", "")
    assert explore_rows(pg, "landing", "id, name, city, amount, _row_number") == _expected(good)
    assert _leftovers(pg) == []


def test_a_blank_line_is_skipped_as_duckdb_does(pg, split, ingest_pipeline, make_csv):
    text = _csv().replace("\n120,", "\n\n120,")
    run = run_now(ingest_pipeline(location=str(make_csv(text))))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(explore_rows(pg, "landing")) == ROWS and quarantine_rows(pg, "landing") == []
    assert _leftovers(pg) == []


@pytest.mark.parametrize("piped", [False, True], ids=["parts", "piped"])
def test_batches_in_parts_append_replace_and_expire_like_any_batch(pg, split, ingest_pipeline, make_csv, piped):
    from retention.expiry import expire

    split.ATLAS_INGEST_COPY_PIPE = "all" if piped else "off"  # contiguous parts, or segments dealt in turn

    make_csv(_csv(), "one.csv")
    pipeline = ingest_pipeline(location=str(make_csv(_csv(20), "two.csv").parent / "*.csv"))
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert len(explore_rows(pg, "landing")) == ROWS + 20
    assert sorted(p[2] for p in _partitions(pg)) == [0, 3]  # the small file is one part
    step = pipeline.steps.get()
    step.write_mode = "replace"
    step.save()
    make_csv(_csv(200), "three.csv")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert len(explore_rows(pg, "landing")) == 200
    done = expire(
        pg, "explore", "landing", "_ingested_at", "timestamp", datetime.now(UTC) + timedelta(days=1),
        dataset_key="explore.landing", explore=True,
    )
    assert (done.method, done.partitions_dropped, done.rows_removed) == ("partition drop", 1, 200)
    assert explore_rows(pg, "landing") == []


@pytest.mark.parametrize("piped", [False, True], ids=["parts", "piped"])
def test_a_drop_check_moves_exactly_the_failing_rows_of_a_batch_in_parts(pg, split, ingest_pipeline, make_csv, piped):
    # The parts of a batch repeat ctids: rows must be addressed by partition and tuple.
    from quality.models import Check

    split.ATLAS_INGEST_COPY_PIPE = "all" if piped else "off"

    split.ATLAS_STEP_HOOKS = ["quality.hooks.QualityGate"]
    bad = {10: "10,x,Città 3,15.0", 120: "120,x,Città 1,180.0", 250: "250,x,Città 5,375.0"}
    pipeline = ingest_pipeline(location=str(make_csv(_csv(bad=bad))))
    Check.objects.create(
        dataset=pipeline.steps.get().output, name="named", kind="regex", columns=["name"],
        params={"pattern": "^name [0-9]+$"}, severity="drop",
    )
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert [p[2] for p in _partitions(pg)] == [3]
    ids = [int(r[0]) for r in explore_rows(pg, "landing", "id")]
    assert ids == [i for i in range(1, ROWS + 1) if i not in bad]
    with pg.cursor() as cur:
        moved = cur.execute('SELECT "id" FROM explore."landing__quarantine" ORDER BY CAST("id" AS int)').fetchall()
    assert [int(r[0]) for r in moved] == sorted(bad)


# --- the pipe: COPY fed while the file is read ---------------------------------------


@pytest.fixture
def piped(settings, monkeypatch):
    """Small chunks (many of them through the pipe's queues), the pipe on, no step hooks.

    Segments of about 1,500 bytes (about 50 lines of ``_csv``) dealt to 3 parts: a file of
    ``ROWS`` lines is loaded by all three, each taking several segments.
    """
    monkeypatch.setattr(sources, "CHUNK", 256)
    settings.ATLAS_STEP_HOOKS = []
    settings.ATLAS_INGEST_COPY_PIPE = "all"
    settings.ATLAS_INGEST_COPY_STREAMS = 3
    settings.ATLAS_INGEST_COPY_SEGMENT_BYTES = 1500
    return settings


def _spy(monkeypatch, owner, name):
    calls = []
    original = getattr(owner, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


@pytest.mark.parametrize("compress", [None, "gzip"])
@pytest.mark.parametrize("quoted", [False, True])
def test_a_file_is_loaded_while_it_is_read_never_written_decompressed(
    pg, piped, ingest_pipeline, make_csv, monkeypatch, compress, quoted
):
    import gzip

    from pipelines import hygiene

    text = _csv()
    if quoted:  # every field quoted: simple quotes, the direct path
        text = "".join(
            ",".join(f'"{v}"' for v in row) + "\n" for row in csv.reader(io.StringIO(text))
        )
    data = gzip.compress(text.encode()) if compress else text.encode()
    finished = _spy(monkeypatch, pgcopy.Pipe, "finish")
    written = _spy(monkeypatch, hygiene.Pending, "write")
    run = run_now(ingest_pipeline(location=str(make_csv(data, "f.csv.gz" if compress else "f.csv"))))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(pg, "landing", "id, name, city, amount, _row_number") == _expected(text)
    assert len(finished) == 1 and written == []  # the pipe's load kept; the content never written to disk
    assert [p[1:] for p in _partitions(pg)] == [("p", 3)]  # three parts side by side
    assert _leftovers(pg) == []


def test_a_copy_of_a_loaded_file_under_a_new_name_is_rolled_back_and_skipped(pg, piped, ingest_pipeline, make_csv):
    text = _csv()
    make_csv(text, "day-1.csv")
    pipeline = ingest_pipeline(location=str(make_csv(text, "day-2.csv").parent / "day-*.csv"))
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(explore_rows(pg, "landing")) == ROWS  # day-2 is day-1's content: skipped
    skipped = LoadedBatch.objects.get(status=LoadedBatch.Status.SKIPPED)
    assert skipped.file.endswith("day-2.csv") and skipped.reason_class == "duplicate_file"
    assert _leftovers(pg) == [] and len(_partitions(pg)) == 1
    loaded = LoadedBatch.objects.get(status=LoadedBatch.Status.LOADED).batch_id
    with pg.cursor() as cur:
        tables = cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'explore' AND tablename LIKE 'landing\\_\\_r%'"
        ).fetchall()
    assert tables and all(loaded in t for (t,) in tables)  # the batch's tables only: the rolled-back load left none


def test_a_file_the_ledger_names_is_checked_before_it_is_loaded(pg, piped, ingest_pipeline, make_csv, monkeypatch):
    pipeline = ingest_pipeline(location=str(make_csv(_csv())))
    started = _spy(monkeypatch, pgcopy.Pipe, "start")
    run_now(pipeline)
    assert len(started) == 1
    second = run_now(pipeline)  # the same file again: its checksum first, no load for nothing
    assert second.step_runs.get().status == RunStatus.SKIPPED
    assert len(started) == 1


@pytest.mark.parametrize(
    "change, why",
    [
        (lambda t: t.replace("\n150,", '\n150,"a\nb",'), "a quoted line break (records are not lines)"),
        (lambda t: t.replace("\n", "\r\n", 10), "mixed line ends (hygiene rewrites the file)"),
        (lambda t: t.replace("\n150,", "\n150,\x00"), "a NUL byte (its record is quarantined)"),
    ],
)
def test_what_the_scan_finds_late_rolls_the_pipe_back_and_loads_as_duckdb_does(
    pg, piped, ingest_pipeline, make_csv, settings, change, why
):
    text = change(_csv())
    piped_run = run_now(ingest_pipeline(location=str(make_csv(text, "a.csv")), table="piped"))
    settings.ATLAS_INGEST_DIRECT_COPY = False
    parsed_run = run_now(ingest_pipeline(location=str(make_csv(text, "b.csv")), table="parsed"))
    assert piped_run.status == parsed_run.status == RunStatus.SUCCEEDED, why
    cols = "id, name, city, amount, _row_number"
    assert explore_rows(pg, "piped", cols) == explore_rows(pg, "parsed", cols), why
    assert [q[:2] for q in quarantine_rows(pg, "piped")] == [q[:2] for q in quarantine_rows(pg, "parsed")], why
    assert _leftovers(pg) == []


def test_an_archive_that_changes_between_its_two_reads_is_refused(tmp_path):
    import gzip

    from atlas.warehouse.filereader import IngestError
    from pipelines import hygiene

    archive = tmp_path / "f.csv.gz"
    archive.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    first = hygiene.Pending(str(archive), "gzip", "f.csv.gz", str(tmp_path / "f.utf8"), "0" * 64, 8, b"a,b\n")
    with pytest.raises(IngestError) as info:
        list(first.chunks())
    assert info.value.reason_class == "source" and "changed while it was loaded" in str(info.value)


@pytest.mark.parametrize("streams", [1, 3])
def test_by_default_every_file_is_piped_in_as_many_parts_as_streams(
    pg, piped, ingest_pipeline, make_csv, monkeypatch, streams
):
    import gzip

    piped.ATLAS_INGEST_COPY_PIPE = "auto"
    piped.ATLAS_INGEST_COPY_STREAMS = streams
    text = _csv()
    make_csv(gzip.compress(text.encode()), "in/a.csv.gz")
    plain = make_csv(text.replace("\n1,", "\n0,", 1), "in/b.csv")
    finished = _spy(monkeypatch, pgcopy.Pipe, "finish")
    run = run_now(ingest_pipeline(location=str(plain.parent / "*")))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(finished) == 2  # compressed or not, each file loaded as it is read
    assert sorted(p[1:] for p in _partitions(pg)) == ([("r", 0)] * 2 if streams == 1 else [("p", 3)] * 2)
    assert len(explore_rows(pg, "landing")) == 2 * ROWS and _leftovers(pg) == []


# --- the pipe in parts: segments of lines dealt in turn -----------------------------------


def test_segments_hold_about_the_bytes_asked_and_the_key_names_the_part():
    assert pgcopy.segment_rows(b"abcdefghi\n" * 10, 1000) == 100
    assert pgcopy.segment_rows(b"no newline yet", 5) == 2  # never < 2: a line longer than a segment
    assert pgcopy.segment_rows(b"", 5) == 5
    assert pgcopy.part_key(50, 3) == "((_row_number / 50) % 3)"
    # Segment j holds the rows whose number / R is j: the first one a row fewer (rows start at 1).
    firsts = [pgcopy.segment_first_row(j, 50) for j in range(4)]
    sizes = [pgcopy.segment_size(j, 50) for j in range(4)]
    assert firsts == [1, 50, 100, 150] and sizes == [49, 50, 50, 50]
    assert all(first + size == nxt for first, size, nxt in zip(firsts, sizes, firsts[1:], strict=False))
    assert all(
        {n // 50 for n in range(first, first + size)} == {j}
        for j, (first, size) in enumerate(zip(firsts, sizes, strict=True))
    )


def _pinned_segments(monkeypatch, rows: int) -> None:
    """Segments of exactly ``rows`` lines, whatever the lines' length (a test places a boundary)."""
    monkeypatch.setattr(pgcopy, "segment_rows", lambda sample, segment_bytes: rows)


def _part_of_each_row(wh, table="landing"):
    """{row number: the part (partition) holding it}."""
    with wh.cursor() as cur:
        return dict(cur.execute(f'SELECT _row_number, tableoid::regclass::text FROM explore."{table}"').fetchall())


@pytest.mark.parametrize("compress", [None, "gzip"])
@pytest.mark.parametrize("tail", [True, False])
@pytest.mark.parametrize("header", [True, False])
def test_segments_dealt_to_parts_keep_every_row_number_exact(
    pg, piped, ingest_pipeline, make_csv, monkeypatch, settings, compress, tail, header
):
    import gzip

    _pinned_segments(monkeypatch, 40)  # 300 rows: 8 segments (1-39, 40-79, ...), the last of 20 (its last line without newline if not tail)
    text = _csv(tail=tail)
    body = text if header else text.split("\n", 1)[1]
    data = gzip.compress(body.encode()) if compress else body.encode()
    options = {} if header else {"options": {"header": False}}
    name = "f.csv.gz" if compress else "f.csv"
    finished = _spy(monkeypatch, pgcopy.Pipe, "finish")
    run = run_now(ingest_pipeline(location=str(make_csv(data, "piped/" + name)), table="piped", **options))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(finished) == 1 and run.step_runs.get().rows_out == ROWS
    parts = _part_of_each_row(pg, "piped")
    assert sorted(parts) == list(range(1, ROWS + 1))
    for n, table in parts.items():  # segment j (rows n with n // 40 == j) in part j % 3
        assert table.endswith(f"_p{(n // 40) % 3}"), (n, table)
    settings.ATLAS_INGEST_DIRECT_COPY = False  # DuckDB reads the same file: the same rows, the same numbers
    parsed = run_now(ingest_pipeline(location=str(make_csv(data, "parsed/" + name)), table="parsed", **options))
    assert parsed.status == RunStatus.SUCCEEDED, parsed.error
    cols = ", ".join(f'"{c.name}"' for c in pg.columns("explore", "piped") if c.name not in ("_batch_id", "_ingested_at", "_source"))
    rows = explore_rows(pg, "piped", cols)
    assert rows == explore_rows(pg, "parsed", cols) and [r[-1] for r in rows] == list(range(1, ROWS + 1))
    if header:
        assert explore_rows(pg, "piped", "id, name, city, amount, _row_number") == _expected(text)
    assert _leftovers(pg) == []


def test_the_smallest_segments_one_row_then_two_number_every_row_as_duckdb_does(
    pg, piped, ingest_pipeline, make_csv, monkeypatch, settings
):
    # R = 2 (the least segment_rows gives): segment 0 is row 1 alone, then rows 2-3, 4-5, ...
    # dealt to 3 parts; every field quoted, as the issue-16 files are.
    _pinned_segments(monkeypatch, 2)
    text = "".join(",".join(f'"{v}"' for v in line.split(",")) + "\n" for line in _csv(40).splitlines())
    finished = _spy(monkeypatch, pgcopy.Pipe, "finish")
    run = run_now(ingest_pipeline(location=str(make_csv(text, "piped/f.csv")), table="piped"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(finished) == 1
    parts = _part_of_each_row(pg, "piped")
    assert sorted(parts) == list(range(1, 41))
    assert all(table.endswith(f"_p{(n // 2) % 3}") for n, table in parts.items()), parts
    settings.ATLAS_INGEST_DIRECT_COPY = False
    parsed = run_now(ingest_pipeline(location=str(make_csv(text, "parsed/f.csv")), table="parsed"))
    assert parsed.status == RunStatus.SUCCEEDED, parsed.error
    cols = "id, name, city, amount, _row_number"
    assert explore_rows(pg, "piped", cols) == explore_rows(pg, "parsed", cols) == _expected(_csv(40))
    assert _leftovers(pg) == []


def test_a_part_boundary_inside_a_quoted_field_with_a_line_break_loads_as_duckdb_does(
    pg, piped, ingest_pipeline, make_csv, monkeypatch, settings
):
    # Row 49 is the last line of segment 0 (rows 1-49): its quoted field breaks the line, so its
    # second physical line is the first line of segment 1 (another part, another connection).
    _pinned_segments(monkeypatch, 50)
    text = _csv().replace("\n49,name 49,", '\n49,"name\n49",')
    finished = _spy(monkeypatch, pgcopy.Pipe, "finish")
    piped_run = run_now(ingest_pipeline(location=str(make_csv(text, "a.csv")), table="piped"))
    settings.ATLAS_INGEST_DIRECT_COPY = False
    parsed_run = run_now(ingest_pipeline(location=str(make_csv(text, "b.csv")), table="parsed"))
    assert piped_run.status == parsed_run.status == RunStatus.SUCCEEDED, piped_run.error or parsed_run.error
    assert len(finished) == 1  # it was fed to the parts, then refused and parsed by DuckDB
    cols = "id, name, city, amount, _row_number"
    rows = explore_rows(pg, "piped", cols)
    assert rows == explore_rows(pg, "parsed", cols)
    assert len(rows) == ROWS and rows[48] == ("49", "name\n49", "Città 0", "73.5", 49)
    assert quarantine_rows(pg, "piped") == [] and _leftovers(pg) == []
    assert [p[1] for p in _partitions(pg, "piped")] == ["r"]  # DuckDB's load: one table


@pytest.mark.parametrize("bad", ["120,too,many,fields,here", "120,too few", "120,\x00nul"])
def test_a_bad_row_in_the_second_part_rolls_every_part_back_and_is_quarantined_once(
    pg, piped, ingest_pipeline, make_csv, monkeypatch, bad
):
    from pipelines.models import StepRun

    _pinned_segments(monkeypatch, 100)  # row 120: segment 1 (rows 100-199), the second part
    text = _csv(bad={120: bad})
    run = run_now(ingest_pipeline(location=str(make_csv(text))))
    assert run.status == RunStatus.SUCCEEDED, run.error
    [(line, _why, raw)] = quarantine_rows(pg, "landing")
    assert line == 121 and raw.replace("\x00", "").startswith("120,")  # the file's line (after the header)
    good = _expected(text.replace(bad + "\n", ""))  # numbered as the other loader numbers them (as the parts test above)
    assert explore_rows(pg, "landing", "id, name, city, amount, _row_number") == good
    batch = LoadedBatch.objects.get()
    step = StepRun.objects.get(run=run)
    assert (batch.rows_loaded, batch.rows_rejected) == (ROWS - 1, 1)
    assert (step.rows_in, step.rows_out, step.rows_rejected) == (ROWS, ROWS - 1, 1)
    assert batch.rows_loaded + batch.rows_rejected == ROWS  # nothing lost, nothing twice
    assert _leftovers(pg) == []
    with pg.cursor() as cur:  # the parts the pipe made were rolled back, none committed
        tables = cur.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'explore' AND tablename ~ '_p[0-9]+$'"
        ).fetchone()[0]
    assert tables == 0
