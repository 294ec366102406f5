"""The malformed corpus (``corpus.py``), loaded as new sources: every file exactly as expected.

On each engine's pass every case must load exactly its expected rows and
quarantine exactly its expected records (line, class, byte offset and bytes), or
be refused whole with its class. On the PostgreSQL pass the whole corpus is also
loaded three ways — PostgreSQL by direct COPY, PostgreSQL through DuckDB's parser,
and the embedded DuckDB warehouse — and the three must agree row for row.
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


@ENGINE_ONLY_PG
def test_the_same_file_gives_the_same_result_on_every_path(wh, make_csv, ingest_pipeline, settings, tmp_path):
    from atlas.warehouse import get_warehouse

    results: dict[str, list] = {"direct": [], "parsed": [], "embedded": []}
    for path_name in results:
        settings.ATLAS_INGEST_DIRECT_COPY = path_name == "direct"
        if path_name == "embedded":
            settings.WAREHOUSE_URL = f"duckdb:///{tmp_path / 'embedded.duckdb'}"
            get_warehouse().ensure_schemas()
        engine = get_warehouse()
        for i, case in enumerate(CASES):
            table = f"c{i}_{path_name}"
            run = load(case, make_csv, ingest_pipeline, table)
            status, klass, warnings, loaded, quarantined = observed(engine, table, case.columns)
            # The reason's words are the parser's on every path; the byte evidence is Atlas's own.
            results[path_name].append((case.name, status, klass, warnings, loaded, quarantined))
    assert results["direct"] == results["parsed"] == results["embedded"]
