"""Ingest on Spark through Spark's own parallel readers (issue 21), against the other engines.

The malformed corpus of the embedded/PostgreSQL differential test (``pipelines/tests/corpus.py``) is
loaded by the Spark warehouse and by the embedded DuckDB warehouse, each file through the same
hygiene, loader and quarantine as a run: the loaded rows (with their ``_row_number``) and the
quarantined records (line, class, byte offset, exact bytes, raw text) must be equal. The reason
text of a quarantined record is each engine's own and is not compared (its class is).
A subset of the corpus keeps the Spark pass short: one case of each kind Spark's readers take (line
ends, doubled quotes, a sniffed delimiter, compression, a transcoded encoding, invalid UTF-8, ragged
rows, broken JSON Lines) and one the DuckDB fallback takes. (All 21 such corpus files agreed when
this was written: 2026-12-04.)
"""

from __future__ import annotations

import re

import pytest

from atlas.warehouse import registry
from atlas.warehouse.base import FileFormat, FileLayout
from atlas.warehouse.sparkingest import reader_refusal, server_is_local, well_formed

pytestmark = pytest.mark.slow

SPARK_CASES = (
    "line_ends_crlf", "every_field_quoted", "delimiter_sniffed_TAB", "gzip", "utf16le_bom",
    "latin1_bytes_in_a_utf8_file", "ragged_rows_under_the_limit", "jsonl_trailing_commas_and_broken_lines",
)
FALLBACK_CASES = ("unclosed_quote_halfway_partial",)
# Cases where Spark's reader does not give the other engines' answer yet: name -> why (strict: must differ).
EXPECTED_DIFFERENCES: dict[str, str] = {}


def test_which_files_spark_reads_itself_is_an_allowlist():
    simple = FileLayout(size=10, newlines=2, quoted=True, quotes_simple=True)
    assert server_is_local("sc://127.0.0.1:15002") and server_is_local("sc://localhost:1/;token=x")
    assert not server_is_local("sc://spark-connect:15002") and not server_is_local("sc://10.0.0.5:15002")
    assert reader_refusal("sc://127.0.0.1:1", FileFormat.CSV, {}, simple) is None
    assert reader_refusal("sc://127.0.0.1:1", FileFormat.PARQUET, {}, None) is None
    assert "does not share" in reader_refusal("sc://spark:1", FileFormat.CSV, {}, simple)
    assert re.fullmatch(well_formed(",", '"'), '1,"a, ""b""",,""')
    assert not re.fullmatch(well_formed(",", '"'), '1,"two') and not re.fullmatch(well_formed(",", '"'), 'a"b,c')
    assert not re.fullmatch(well_formed(",", '"'), '"a" ,b')
    assert "longer" in reader_refusal("sc://127.0.0.1:1", FileFormat.JSONL, {}, FileLayout(size=9, newlines=1, long_lines=1))
    assert "not UTF-8" in reader_refusal("sc://127.0.0.1:1", FileFormat.CSV, {"encoding": "latin-1"}, simple)
    assert "one character" in reader_refusal("sc://127.0.0.1:1", FileFormat.CSV, {"delimiter": "||"}, simple)
    assert "not known" in reader_refusal("sc://127.0.0.1:1", FileFormat.CSV, {}, None)


def _without_reasons(out):
    if out[0] != "loaded":
        return out
    kind, rows, lines, loaded, quarantined, warnings = out
    return kind, rows, lines, loaded, [q[:5] for q in quarantined], warnings


def test_the_corpus_gives_the_same_rows_and_quarantine_on_spark_as_on_duckdb(spark_wh, make_csv, settings, tmp_path, monkeypatch):
    from pipelines.tests.corpus import CASES
    from pipelines.tests.test_ingest_corpus import loader_output

    readers: dict[str, str] = {}
    load = spark_wh.load_file

    def recording(*args, **kwargs):
        result = load(*args, **kwargs)
        readers[kwargs["staging"]] = result.reader
        return result

    monkeypatch.setattr(spark_wh, "load_file", recording)
    embedded = registry.connect(f"duckdb:///{tmp_path / 'embedded.duckdb'}")
    embedded.ensure_schemas()
    cases = {c.name: c for c in CASES}
    differ, agree = [], []
    try:
        for i, name in enumerate((*SPARK_CASES, *FALLBACK_CASES)):
            case = cases[name]
            path = str(make_csv(case.content, f"{i}/{case.filename}"))
            got = _without_reasons(loader_output(spark_wh, case, path, f"c{i}", settings))
            want = _without_reasons(loader_output(embedded, case, path, f"c{i}", settings))
            (differ if got != want else agree).append(name)
            if got[0] == "loaded" and name not in EXPECTED_DIFFERENCES:
                assert got == want, name
                reader = readers[f"c{i}_stg"]
                assert reader.startswith("Spark's own" if name in SPARK_CASES else "DuckDB's parser"), (name, reader)
    finally:
        embedded.close()
    assert sorted(set(differ)) == sorted(EXPECTED_DIFFERENCES), "a case that now agrees must leave EXPECTED_DIFFERENCES"
    assert len(agree) >= len(SPARK_CASES)


def test_row_and_line_numbers_are_exact_over_many_splits(spark_wh, make_csv, settings):
    """A file read as many splits side by side: every line number and ``_row_number`` as in the file."""
    from atlas.warehouse.sparkingest import SparkIngest  # noqa: F401 - the reader under test
    from pipelines.ingest import with_evidence, with_long_lines
    from pipelines.models import Source
    from pipelines.sources import source_files

    lines = ["id,name"] + [f"{i},n{i}" if i % 37 else f"{i},ragged,row" for i in range(1, 401)]
    lines.insert(120, "")  # a blank line: skipped, and counted in the line numbers after it
    path = make_csv("\n".join(lines) + "\n", "many.csv")
    spark = spark_wh.spark()
    spark.conf.set("spark.sql.files.maxPartitionBytes", "512")
    spark.conf.set("spark.sql.files.openCostInBytes", "0")
    try:
        assert spark.read.text(str(path)).select("_metadata.file_block_start").distinct().count() > 4
        source = Source(name="many", kind=Source.Kind.PATH, location=str(path), format="csv")
        with source_files(source) as files:
            [f] = files
            result = spark_wh.load_file(f.parse_path, fmt=f.format, options=f.reader_options(source.reader_options()),
                                        schema="explore", target="many", staging="many_stg", batch_id="b1",
                                        source_label="many", layout=f.layout)
            rejects, _ = with_evidence(with_long_lines(result.rejects, f), f, {})
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        spark.conf.unset("spark.sql.files.openCostInBytes")
    assert result.reader.startswith("Spark's own CSV reader")
    expected = [(str(i), f"n{i}") for i in range(1, 401) if i % 37]
    with spark_wh.cursor() as cur:
        got = cur.execute("SELECT id, name, _row_number FROM explore.many_stg ORDER BY _row_number").fetchall()
    assert [r[:2] for r in got] == expected
    assert [r[2] for r in got] == list(range(1, len(expected) + 1))
    # line numbers as in the file (the header is line 1, the blank line counts)
    bad = [i for i in range(1, 401) if not i % 37]
    assert [(r.line, r.reason_class, r.raw) for r in rejects] == [
        (i + 1 + (i >= 120), "schema", f"{i},ragged,row") for i in bad]


def test_a_run_on_spark_says_which_reader_read_each_file(spark_wh, ingest_pipeline, make_csv):
    from atlas.tests.plugin import quarantine_rows, run_now

    simple = make_csv('id,name\n1,"Ann"\n2,Bob,extra\n3,Cy\n', "a/simple.csv")
    run = run_now(ingest_pipeline(table="simple", location=str(simple), step={"max_rejected_share": 0.5}))
    assert run.status == "succeeded", run.error
    step = run.step_runs.get()
    assert list(step.details["readers"].values()) == ["Spark's own CSV reader, in parallel on the Spark server"]
    assert (step.rows_out, step.rows_rejected) == (2, 1)
    (rejected,) = quarantine_rows(spark_wh, "simple")
    assert rejected[2] == "2,Bob,extra"
    with spark_wh.cursor() as cur:
        assert cur.execute("SELECT id, name, _row_number FROM explore.simple ORDER BY _row_number").fetchall() == [
            ("1", "Ann", 1), ("3", "Cy", 2)]

    multiline = make_csv('id,name\n1,"two\nlines"\n2,Bob\n', "b/multi.csv")
    run = run_now(ingest_pipeline(table="multi", location=str(multiline)))
    assert run.status == "succeeded", run.error
    (reader,) = run.step_runs.get().details["readers"].values()
    assert reader.startswith("DuckDB's parser in the Atlas process") and "spans lines" in reader
    with spark_wh.cursor() as cur:
        assert cur.execute("SELECT id, name FROM explore.multi ORDER BY _row_number").fetchall() == [
            ("1", "two\nlines"), ("2", "Bob")]


def test_parquet_is_read_by_spark_with_its_row_index(spark_wh, ingest_pipeline, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p" / "rows.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"id": [3, 1, 2], "name": ["c", None, "b"]}), path)
    run = __import__("atlas.tests.plugin", fromlist=["run_now"]).run_now(
        ingest_pipeline(table="pq", fmt="parquet", location=str(path)))
    assert run.status == "succeeded", run.error
    assert list(run.step_runs.get().details["readers"].values()) == ["Spark's own PARQUET reader, in parallel on the Spark server"]
    with spark_wh.cursor() as cur:
        assert cur.execute("SELECT id, name, _row_number FROM explore.pq ORDER BY _row_number").fetchall() == [
            ("3", "c", 1), ("1", None, 2), ("2", "b", 3)]
