"""Input hygiene and the quarantine's evidence: the faults issue 16 names, one by one.

The corpus (``test_ingest_corpus.py``) covers every class end to end; these pin the
rules themselves: what a retry does to the quarantine, what a run counts, what the
pure functions decide.
"""

import codecs
import gzip

import numpy as np
import pytest

from pipelines import hygiene
from pipelines.models import LoadedBatch, RunStatus, Source
from pipelines.sources import simple_quotes

from .conftest import quarantine_rows, run_now


def _rows(n, bad=None):
    lines = ["id,name"] + [(bad or {}).get(i, f"{i},n{i}") for i in range(1, n + 1)]
    return "\n".join(lines) + "\n"


# --- a refused file: counted, kept once, never duplicated by a retry ---------------------------


def test_a_refused_batch_counts_its_quarantined_rows_and_a_retry_never_duplicates_them(wh, ingest_pipeline, make_csv):
    path = make_csv(_rows(20, bad={3: "3", 7: "7,a,b", 9: "9"}))
    pipeline = ingest_pipeline(location=str(path))
    first = run_now(pipeline)
    assert first.status == RunStatus.FAILED
    step = first.step_runs.get()
    assert (step.rows_in, step.rows_out, step.rows_rejected) == (20, 0, 3)  # never "rejected 0"
    batch = LoadedBatch.objects.get()
    assert (batch.status, batch.reason_class, batch.rows_rejected, batch.rows_refused) == ("rejected", "schema", 3, 17)
    for _ in range(2):
        assert run_now(pipeline).status == RunStatus.FAILED
    assert [r[0] for r in quarantine_rows(wh, "landing")] == [4, 8, 10]  # each reject once, after three tries


def test_the_partial_policy_loads_the_good_rows_and_flags_the_batch(wh, ingest_pipeline, make_csv):
    path = make_csv(_rows(20, bad={2: "2", 5: "5"}))
    run = run_now(ingest_pipeline(location=str(path), step={"load_policy": "partial", "max_rejected_share": 0.05}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    batch = LoadedBatch.objects.get()
    assert (batch.status, batch.rows_loaded, batch.rows_rejected) == ("partial", 18, 2)
    assert "above this step's limit" in batch.reason and "Partial load policy" in batch.reason
    assert run.step_runs.get().rows_rejected == 2


def test_a_duplicate_file_is_skipped_with_its_class(wh, ingest_pipeline, make_csv):
    pipeline = ingest_pipeline(location=str(make_csv(_rows(3))))
    run_now(pipeline)
    assert run_now(pipeline).step_runs.get().status == RunStatus.SKIPPED
    assert LoadedBatch.objects.filter(reason_class="duplicate_file").count() == 1


def test_the_same_content_gzipped_is_the_same_file(wh, ingest_pipeline, make_csv):
    text = _rows(5).encode()
    first = make_csv(text, "a.csv")
    make_csv(gzip.compress(text), "b.csv.gz")
    run = run_now(ingest_pipeline(location=str(first.parent / "*")))
    assert run.status == RunStatus.SUCCEEDED, run.error
    batches = sorted(LoadedBatch.objects.values_list("file", "status", "reason_class"))
    assert [(f.rsplit("/", 1)[1], s, c) for f, s, c in batches] == [
        ("a.csv", "loaded", ""),
        ("b.csv.gz", "skipped", "duplicate_file"),  # the checksum is of the content, decompressed
    ]


def test_quarantined_bytes_are_exact_even_when_not_text(wh, ingest_pipeline, make_csv):
    bad = b"2,Zo\xeb\xff\x00e"
    content = b"id,name\n1,Ann\n" + bad + b"\n" + b"".join(f"{i},n{i}\n".encode() for i in range(3, 40))
    run = run_now(ingest_pipeline(location=str(make_csv(content))))
    assert run.status == RunStatus.SUCCEEDED, run.error
    with wh.cursor() as cur:
        line, offset, raw, text, klass = cur.execute(
            'SELECT _line_number, _byte_offset, _raw_bytes, _raw_record, _reason_class FROM explore."landing__quarantine"'
        ).fetchone()
    assert (line, offset, bytes(raw), klass) == (3, content.index(bad), bad, "encoding")
    assert "\x00" not in text and text.startswith("2,Zo")


def test_a_declared_encoding_is_honoured_even_against_a_bom(wh, ingest_pipeline, make_csv):
    # Declared latin-1 wins: the UTF-8 BOM's bytes are then data of the first column's name.
    content = "id,name\n1,Zoë\n".encode("utf-16-le")
    run = run_now(ingest_pipeline(location=str(make_csv(content)), options={"encoding": "utf-16"}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    with wh.cursor() as cur:
        assert cur.execute('SELECT name FROM explore."landing"').fetchall() == [("Zoë",)]


def test_the_quarantine_count_of_checks_ignores_a_table_holding_only_ingest_rejects(wh, ingest_pipeline, make_csv):
    from quality.quarantine import count_rows

    run_now(ingest_pipeline(location=str(make_csv(_rows(40, bad={3: "3"})))))
    assert len(quarantine_rows(wh, "landing")) == 1
    assert count_rows(wh, "explore", "landing") == 0  # was "Referenced column _check_run_id not found"


@pytest.mark.parametrize(
    ("options", "message"),
    [({"header_names": "rename"}, "header_names must be"), ({"encoding": "ebcdic"}, "encoding must be one of")],
)
def test_bad_hygiene_options_are_refused_on_save(db, options, message):
    source = Source(name="s", kind=Source.Kind.PATH, location="/tmp/x.csv", options=options)
    with pytest.raises(Exception, match=message):
        source.full_clean()


# --- the rules, as pure functions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "declared", "expected"),
    [
        (codecs.BOM_UTF8 + b"a,b\n", None, ("utf-8", 3, None)),
        (codecs.BOM_UTF16_LE + "a,b\n".encode("utf-16-le"), None, ("utf-16-le", 2, None)),
        (codecs.BOM_UTF16_BE + "a,b\n".encode("utf-16-be"), None, ("utf-16-be", 2, None)),
        (codecs.BOM_UTF32_LE + "a,b\n".encode("utf-32-le"), None, ("utf-32-le", 4, None)),
        ("a,b\n".encode("utf-16-le"), "utf-16", ("utf-16-le", 0, None)),
        (codecs.BOM_UTF16_BE + "a,b\n".encode("utf-16-be"), "utf-16", ("utf-16-be", 2, None)),
        (b"a,b\n\xe9\n", "latin-1", ("latin-1", 0, None)),
        (b"a,b\n\xe9\n", None, ("utf-8", 0, None)),  # latin-1 is never guessed
    ],
)
def test_the_declared_encoding_wins_then_the_bom_then_detection(head, declared, expected):
    assert hygiene.choose_encoding(head, declared, "f") == expected


def test_a_wide_encoding_without_bom_is_detected_and_reported():
    enc, bom, warning = hygiene.choose_encoding("id,name\n1,Ann\n".encode("utf-16-be"), None, "f.csv")
    assert (enc, bom) == ("utf-16-be", 0) and "detected utf-16-be" in warning


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b,c\n1,2,3\n", ","),
        ("a\tb\tc\n1\t2,5\t3\n", "\t"),
        ("a;b\n1;2\n3;4\n", ";"),
        ("a|b\n1|2\n", "|"),
        ('a,b\n"x;y",2\n', ","),
        ("just one column\nvalue\n", None),
    ],
)
def test_the_delimiter_is_sniffed_from_the_first_lines(text, expected):
    assert hygiene.sniff_delimiter(text, '"') == expected


@pytest.mark.parametrize(
    ("block", "simple"),
    [
        (b'"a","b, c",""\n1,"2",3\n', True),
        (b'a,b\n1,2\n', True),
        (b'"say ""hi""",x\n', False),
        (b'ab"c,x\n', False),
        (b'"two\nlines",x\n', False),
        (b'"a" ,x\n', False),
        (b'x, "a"\n', False),
        (b'"open,x\n', False),
        (b'"a","b"\r\n', True),
    ],
)
def test_simple_quotes_are_told_apart_from_the_ones_copy_reads_differently(block, simple):
    assert simple_quotes(block, b'"', b",") is simple


def test_simple_quotes_scale_as_numpy_not_as_python():
    block = b'"a","b"\n' * 100_000
    assert simple_quotes(block, b'"', b",")
    assert np.frombuffer(block, np.uint8).size == len(block)


def test_line_ends_are_rewritten_outside_quotes_only(tmp_path):
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b'a,b\r1,"x\ry"\r\n2,"p\r\nq"\n3,z\r')
    assert hygiene._normalise(str(src), str(dst), line_ends=True, header=True, quote=b'"') == ()
    assert dst.read_bytes() == b'a,b\n1,"x\ry"\n2,"p\r\nq"\n3,z\n'


def test_nul_lines_are_blanked_and_numbered(tmp_path):
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"a,b\n1,x\n2,\x00\n3,z\n4,\x00\x00")
    assert hygiene._normalise(str(src), str(dst), line_ends=False, header=True, quote=b'"') == (3, 5)
    assert dst.read_bytes() == b"a,b\n1,x\n\n3,z\n"


def test_a_nul_in_the_header_refuses_the_file(tmp_path):
    src = tmp_path / "a"
    src.write_bytes(b"a,\x00b\n1,2\n")
    with pytest.raises(hygiene.IngestError) as info:
        hygiene._normalise(str(src), str(tmp_path / "b"), line_ends=False, header=True, quote=b'"')
    assert info.value.reason_class == "encoding"
