"""The malformed corpus (``corpus.py``), loaded as new sources: every file exactly as expected.

On each engine's pass every case must load exactly its expected rows and
quarantine exactly its expected records (line, class, byte offset and bytes), or
be refused whole with its class. On the PostgreSQL pass the whole corpus is also
loaded four ways — PostgreSQL by COPY fed while the file is read (the pipe), by
direct COPY after the scan, through DuckDB's parser, and the embedded DuckDB
warehouse — and the four must agree row for row.
"""

from __future__ import annotations

import pytest

from pipelines.models import LoadedBatch, RunStatus

from .conftest import run_now
from .corpus import CASES, Case

ENGINE_ONLY_PG = pytest.mark.skipif(
    __import__("os").environ.get("ATLAS_TEST_ENGINE", "embedded") != "postgres",
    reason="PostgreSQL pass only: compares PostgreSQL's two loaders with the embedded warehouse",
)


def test_the_corpus_covers_every_class_with_at_least_40_files():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    refused = {c.refused for c in CASES if c.refused}
    assert {"empty_file", "encoding", "schema", "corrupt_archive", "quoting"} <= refused
    rows = {b.klass for c in CASES for b in c.bad}
    assert {"schema", "encoding", "quoting", "json"} <= rows


def load(case: Case, make_csv, ingest_pipeline, table: str):
    path = make_csv(case.content, f"{table}/{case.filename}")
    run = run_now(ingest_pipeline(table=table, fmt=case.fmt, location=str(path), options=case.options, step=case.step))
    return run


def observed(wh, table: str, columns: tuple[str, ...]):
    """(batch status, reason class, loaded rows, quarantined records) of the one file loaded into ``table``."""
    batch = LoadedBatch.objects.get(dataset__table=table)
    loaded = []
    if batch.status != LoadedBatch.Status.REJECTED and wh.table_exists("explore", table):
        cols = ", ".join(wh.quote(c) for c in columns)
        with wh.cursor() as cur:
            loaded = cur.execute(f"SELECT {cols} FROM explore.{wh.quote(table)} ORDER BY _row_number").fetchall()
    quarantined = []
    if wh.table_exists("explore", f"{table}__quarantine"):
        with wh.cursor() as cur:
            quarantined = [
                (line, klass, offset, bytes(raw) if raw is not None else None, text, reason)
                for line, klass, offset, raw, text, reason in cur.execute(
                    "SELECT _line_number, _reason_class, _byte_offset, _raw_bytes, _raw_record, _reason"
                    f" FROM explore.{wh.quote(table + '__quarantine')} ORDER BY _line_number"
                ).fetchall()
            ]
    return batch.status, batch.reason_class, batch.warnings, [tuple(r) for r in loaded], quarantined


def check(case: Case, got, run) -> None:
    status, klass, warnings, loaded, quarantined = got
    assert status == case.status, (status, klass, run.error)
    if case.refused:
        assert run.status == RunStatus.FAILED
        assert klass == case.refused, run.error
    else:
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert loaded == [tuple(r) for r in case.loaded]
    if case.warning:
        assert case.warning in warnings
    assert [(q[0], q[1], q[2], q[3]) for q in quarantined] == [(b.line, b.klass, b.offset, b.raw) for b in case.bad]
    # Nothing lost: every data record of the file is loaded or quarantined (or the file refused whole).
    step = run.step_runs.get()
    assert step.rows_rejected == len(case.bad)
    if not case.refused:
        assert (step.rows_in, step.rows_out) == (len(case.loaded) + len(case.bad), len(case.loaded))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_file(case, wh, make_csv, ingest_pipeline):
    run = load(case, make_csv, ingest_pipeline, "corpus")
    check(case, observed(wh, "corpus", case.columns), run)


def loader_output(wh, case: Case, path: str, table: str, settings, *, piped: bool = False):
    """What one engine's loader makes of one file: refused class, or staged rows and quarantined evidence.

    The engine-specific part of an ingest (hygiene, the parser or COPY, the evidence, the
    quarantine's bytes) without the run around it, which is the same code on every engine.
    A compressed file is streamed to an engine that takes streams (never written first);
    ``piped``: the file is fed to the engine's pipe while hygiene reads it, as a run does.
    """
    from pipelines.ingest import with_evidence, with_long_lines
    from pipelines.models import Source
    from pipelines.sources import source_files

    source = Source(name="diff", kind=Source.Kind.PATH, location=path, format=case.fmt, options=case.options)

    def pipes(label):
        return wh.copy_pipe(schema="explore", target=table, staging=table + "_stg", batch_id="b" + table, source_label="diff")

    streamed = wh.features.streamed_files
    with source_files(source, streamed=streamed, pipes=pipes if piped else None) as files:
        [f] = files
        if f.refused is not None:
            return ("refused", f.refused.reason_class)
        options = f.reader_options(source.reader_options())
        try:
            result = wh.load_file(
                f.parse_path, fmt=f.format, options=options, schema="explore", target=table,
                staging=table + "_stg", batch_id="b" + table, source_label="diff", layout=f.layout,
                stream=f.stream, pipe=f.pipe,
            )
        except Exception as exc:  # a file refused by the loader: its class is what must agree
            return ("refused", getattr(exc, "reason_class", type(exc).__name__))
        finally:
            if f.pipe is not None:
                f.pipe.abort()
        rejects, lines = with_evidence(with_long_lines(result.rejects, f), f, options)
        wh.quarantine_rejects("explore", table, rejects, batch_id="b", run_id=None, source="diff",
                              raw_chars=settings.ATLAS_QUARANTINE_RAW_CHARS, checksum=f.checksum)
        cols = ", ".join(wh.quote(c) for c in result.columns)
        with wh.cursor() as cur:
            loaded = [tuple(r) for r in cur.execute(
                f"SELECT {cols}, _row_number FROM explore.{wh.quote(table + '_stg')} ORDER BY _row_number"
            ).fetchall()]
        _, _, _, _, quarantined = observed_quarantine(wh, table)
        wh.drop_table("explore", table + "_stg")
        return ("loaded", result.rows, lines, loaded, quarantined, f.prepared.warnings)


def observed_quarantine(wh, table):
    with wh.cursor() as cur:
        rows = cur.execute(
            "SELECT _line_number, _reason_class, _byte_offset, _raw_bytes, _raw_record, _reason"
            f" FROM explore.{wh.quote(table + '__quarantine')} ORDER BY _line_number"
        ).fetchall() if wh.table_exists("explore", table + "__quarantine") else []
    return None, None, None, None, [(a, b, c, bytes(d) if d is not None else None, e, f) for a, b, c, d, e, f in rows]


@ENGINE_ONLY_PG
def test_the_same_file_gives_the_same_result_on_every_path(wh, make_csv, settings, tmp_path):
    """PostgreSQL by direct COPY, PostgreSQL through DuckDB's parser, the embedded DuckDB: one result."""
    from atlas.warehouse import registry

    embedded = registry.connect(f"duckdb:///{tmp_path / 'embedded.duckdb'}")
    embedded.ensure_schemas()
    results: dict[str, list] = {"piped": [], "direct": [], "parsed": [], "embedded": []}
    try:
        for path_name, engine in (("piped", wh), ("direct", wh), ("parsed", wh), ("embedded", embedded)):
            settings.ATLAS_INGEST_DIRECT_COPY = path_name in ("piped", "direct")
            settings.ATLAS_INGEST_COPY_PIPE = "all" if path_name == "piped" else "off"
            for i, case in enumerate(CASES):
                path = make_csv(case.content, f"{i}/{case.filename}")
                out = loader_output(engine, case, str(path), f"c{i}_{path_name}", settings, piped=path_name == "piped")
                results[path_name].append((case.name, *out))
    finally:
        embedded.close()
    for piped, direct, parsed, local in zip(
        results["piped"], results["direct"], results["parsed"], results["embedded"], strict=True
    ):
        assert piped == direct == parsed == local, direct[0]
    # And the loaders' results are the corpus's expectations (the per-file test checks the run around them).
    for case, got in zip(CASES, results["embedded"], strict=True):
        if got[1] == "loaded" and not case.refused:
            assert [r[:-1] for r in got[4]] == [tuple(r) for r in case.loaded], case.name
