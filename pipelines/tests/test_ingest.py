"""Ingest into Explore, on the engine of this pass (DuckDB or PostgreSQL)."""

import gzip  # noqa: F401  (kept for parity with real-world sources)
import http.server
import sqlite3
import threading

import duckdb
import pytest

from pipelines.models import LoadedBatch, RunStatus

from .conftest import explore_rows, quarantine_rows, run_now


def step_of(run):
    return run.step_runs.get()


def test_a_csv_lands_as_text_with_load_columns(wh, ingest_pipeline, make_csv):
    path = make_csv('id,name,note\n1,Ann,"a, quoted ""note"""\n2,Élodie,\n')
    run = run_now(ingest_pipeline(location=str(path)))
    assert run.status == RunStatus.SUCCEEDED, run.error
    rows = explore_rows(wh, "landing", "id, name, note, _row_number, _source, _batch_id")
    assert [r[:4] for r in rows] == [("1", "Ann", 'a, quoted "note"', 1), ("2", "Élodie", None, 2)]
    assert rows[0][4] == str(path)
    assert rows[0][5] == rows[1][5] == LoadedBatch.objects.get().batch_id
    assert [c.name for c in wh.columns("explore", "landing")][:3] == ["id", "name", "note"]
    assert all(c.type in ("text", "varchar") for c in wh.columns("explore", "landing")[:3])


def test_tabs_newlines_backslashes_and_empty_values_arrive_unchanged(wh, ingest_pipeline, make_csv):
    # On PostgreSQL the rows travel as CSV from DuckDB to COPY: nothing may change on the way.
    path = make_csv(
        'id,v\n1,"a\tb"\n2,"two\nlines"\n3,"cr\rx"\n4,back\\slash\n5,\\N\n6,\\t\n7,""\n8,\n9,"say ""hi"""\n'
    )
    run = run_now(ingest_pipeline(location=str(path)))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(wh, "landing", "id, v, _row_number") == [
        ("1", "a\tb", 1),
        ("2", "two\nlines", 2),
        ("3", "cr\rx", 3),
        ("4", "back\\slash", 4),
        ("5", "\\N", 5),
        ("6", "\\t", 6),
        ("7", None, 7),  # DuckDB's CSV reader reads "" as NULL, like an empty field
        ("8", None, 8),
        ("9", 'say "hi"', 9),
    ]


def test_on_postgresql_the_per_file_values_are_stored_once_not_in_every_row(wh, ingest_pipeline, make_csv):
    if wh.vendor != "postgresql":
        pytest.skip("PostgreSQL only: each file is a partition whose constant columns are catalogue defaults")
    path = make_csv("id\n1\n2\n")
    run_now(ingest_pipeline(location=str(path)))
    batch = LoadedBatch.objects.select_related("step_run").get()
    partition = f'explore."landing__r{batch.step_run.run_id}a1_{batch.batch_id}"'
    with wh.cursor() as cur:
        missing = cur.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND atthasmissing ORDER BY attname",
            [partition],
        ).fetchall()
        stamps = cur.execute('SELECT count(DISTINCT _ingested_at), min(_source) FROM explore."landing"').fetchone()
    assert missing == [("_ingested_at",), ("_source",)]
    assert stamps == (1, str(path))


def test_the_same_file_twice_is_skipped_not_duplicated(wh, ingest_pipeline, make_csv):
    pipeline = ingest_pipeline(location=str(make_csv("id\n1\n2\n")))
    run_now(pipeline)
    second = run_now(pipeline)
    assert second.status == RunStatus.SUCCEEDED
    assert step_of(second).status == RunStatus.SKIPPED
    assert len(explore_rows(wh, "landing")) == 2
    skipped = LoadedBatch.objects.get(status=LoadedBatch.Status.SKIPPED)
    assert "already loaded" in skipped.reason


def test_a_glob_loads_each_new_file_as_its_own_batch(wh, ingest_pipeline, make_csv):
    make_csv("id,v\n1,a\n", "part-1.csv")
    path = make_csv("id,v\n2,b\n3,c\n", "part-2.csv")
    pipeline = ingest_pipeline(location=str(path.parent / "part-*.csv"))
    run_now(pipeline)
    make_csv("id,v\n4,d\n", "part-3.csv")
    run = run_now(pipeline)
    assert step_of(run).rows_out == 1
    assert sorted(r[0] for r in explore_rows(wh, "landing", "id")) == ["1", "2", "3", "4"]
    assert LoadedBatch.objects.filter(status="loaded").count() == 3
    assert LoadedBatch.objects.filter(status="skipped").count() == 2


def test_a_new_column_in_a_later_file_is_added(wh, ingest_pipeline, make_csv):
    make_csv("id\n1\n", "a-1.csv")
    pipeline = ingest_pipeline(location=str(make_csv("id\n1\n", "a-1.csv").parent / "a-*.csv"))
    run_now(pipeline)
    make_csv("id,extra\n2,x\n", "a-2.csv")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert sorted(explore_rows(wh, "landing", "id, extra")) == [("1", None), ("2", "x")]


def test_replace_keeps_only_the_latest_file(wh, ingest_pipeline, make_csv):
    path = make_csv("id\n1\n2\n")
    pipeline = ingest_pipeline(location=str(path), step={"write_mode": "replace"})
    run_now(pipeline)
    path.write_text("id\n3\n")
    run_now(pipeline)
    assert explore_rows(wh, "landing", "id") == [("3",)]


def test_replace_with_several_files_keeps_them_all_even_when_a_later_one_adds_a_column(wh, ingest_pipeline, make_csv):
    make_csv("id\n1\n2\n", "r-1.csv")
    path = make_csv("id,extra\n3,x\n", "r-2.csv")
    pipeline = ingest_pipeline(location=str(path.parent / "r-*.csv"), step={"write_mode": "replace"})
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert sorted(explore_rows(wh, "landing", "id, extra, _row_number")) == [("1", None, 1), ("2", None, 2), ("3", "x", 1)]
    assert pipeline.steps.get().output.row_count == 3
    loaded = {f"landing__r{run.pk}a1_{b.batch_id}" for b in LoadedBatch.objects.filter(status=LoadedBatch.Status.LOADED)}
    assert len(loaded) == 2 and set(_tables(wh)) - {"landing"} <= loaded  # PostgreSQL: the batch partitions


def test_malformed_rows_go_to_quarantine_with_line_and_reason(wh, ingest_pipeline, make_csv):
    path = make_csv("id,name,amount\n1,Ann,10\n2,truncated\n3,Cy,5\n4,too,many,fields\n" + "5,Ed,1\n" * 36)
    run = run_now(ingest_pipeline(location=str(path), step={"max_rejected_share": 0.1}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    sr = step_of(run)
    assert (sr.rows_in, sr.rows_out, sr.rows_rejected) == (40, 38, 2)
    rejects = quarantine_rows(wh, "landing")
    assert [(r[0], r[2]) for r in rejects] == [(3, "2,truncated"), (5, "4,too,many,fields")]
    assert "MISSING COLUMNS" in rejects[0][1] and "TOO MANY COLUMNS" in rejects[1][1]


def test_too_many_rejects_fail_the_step_but_keep_the_rejects(wh, ingest_pipeline, make_csv):
    path = make_csv("id,name\n1,Ann\n2\n3\n")
    run = run_now(ingest_pipeline(location=str(path)))
    assert run.status == RunStatus.FAILED
    assert "2 of 3 records (66.7%) could not be parsed" in step_of(run).error
    assert not wh.table_exists("explore", "landing") or explore_rows(wh, "landing") == []
    assert len(quarantine_rows(wh, "landing")) == 2
    assert LoadedBatch.objects.get().status == LoadedBatch.Status.REJECTED


def test_a_failed_ingest_leaves_the_published_table_as_it_was(wh, ingest_pipeline, make_csv):
    path = make_csv("id,name\n1,Ann\n")
    pipeline = ingest_pipeline(location=str(path))
    run_now(pipeline)
    path.write_text("id,name\nbroken\nalso broken\n")
    assert run_now(pipeline).status == RunStatus.FAILED
    assert explore_rows(wh, "landing", "id, name") == [("1", "Ann")]
    failed = LoadedBatch.objects.get(status=LoadedBatch.Status.REJECTED).batch_id
    assert [t for t in _tables(wh) if failed in t] == []  # no staging left behind


def _tables(wh):
    with wh.cursor() as cur:
        return [r[0] for r in cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'explore'"
        ).fetchall() if "__quarantine" not in r[0]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty (0 bytes)"),
        (b"id,name\n", "has a header but no data rows"),
    ],
)
def test_empty_and_header_only_files_fail_with_a_clear_error(wh, ingest_pipeline, make_csv, content, message):
    run = run_now(ingest_pipeline(location=str(make_csv(content))))
    assert run.status == RunStatus.FAILED
    assert message in step_of(run).error
    assert LoadedBatch.objects.get().status == LoadedBatch.Status.REJECTED


def test_a_missing_file_fails_with_a_clear_error(wh, ingest_pipeline, tmp_path):
    run = run_now(ingest_pipeline(location=str(tmp_path / "nope.csv")))
    assert run.status == RunStatus.FAILED
    assert "nope.csv: no such file" in step_of(run).error
    run = run_now(ingest_pipeline(table="globbed", location=str(tmp_path / "none-*.csv")))
    assert "No file matches" in step_of(run).error


def test_wrong_encoding_is_quarantined_per_row(wh, ingest_pipeline, make_csv):
    latin1 = "id,name\n1,Ann\n2,Zoë\n".encode("latin-1")
    run = run_now(ingest_pipeline(location=str(make_csv(latin1)), step={"max_rejected_share": 0.5}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(wh, "landing", "id, name") == [("1", "Ann")]
    assert "INVALID ENCODING" in quarantine_rows(wh, "landing")[0][1]


def test_a_declared_encoding_reads_latin1(wh, ingest_pipeline, make_csv):
    latin1 = "id,name\n2,Zoë\n".encode("latin-1")
    run = run_now(ingest_pipeline(location=str(make_csv(latin1)), options={"encoding": "latin-1"}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(wh, "landing", "name") == [("Zoë",)]


def test_a_truncated_last_row_is_quarantined(wh, ingest_pipeline, make_csv):
    body = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(30)) + '31,"unterminated'
    run = run_now(ingest_pipeline(location=str(make_csv(body)), step={"max_rejected_share": 0.1}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(explore_rows(wh, "landing")) == 30
    assert len(quarantine_rows(wh, "landing")) == 1


@pytest.mark.slow
def test_a_50_mb_single_line_is_quarantined_not_loaded(wh, ingest_pipeline, make_csv, settings):
    huge = "x" * (50 * 1024 * 1024)
    body = "id,payload\n" + "".join(f"{i},ok\n" for i in range(40)) + f"99,{huge}\n"
    run = run_now(ingest_pipeline(location=str(make_csv(body)), step={"max_rejected_share": 0.1}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(explore_rows(wh, "landing")) == 40
    [(line, reason, raw)] = quarantine_rows(wh, "landing")
    assert "LINE SIZE OVER MAXIMUM" in reason or "maximum" in reason.lower()
    assert raw is None or len(raw) <= settings.ATLAS_QUARANTINE_RAW_CHARS


def test_json_lines_with_broken_lines(wh, ingest_pipeline, make_csv):
    body = '{"id": 1, "name": "Ann", "tags": ["a"]}\n{"id": 2, "name": "Bob"\n[1, 2]\n\n{"id": 3, "extra": null}\n'
    run = run_now(ingest_pipeline(fmt="jsonl", location=str(make_csv(body, "d.jsonl")), step={"max_rejected_share": 0.9}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(wh, "landing", "id, name, tags") == [("1", "Ann", '["a"]'), ("3", None, None)]
    rejects = quarantine_rows(wh, "landing")
    assert [r[2] for r in rejects] == ['{"id": 2, "name": "Bob"', "[1, 2]"]
    assert all("INVALID JSON" in r[1] for r in rejects)


def test_parquet_is_read_as_text(wh, ingest_pipeline, tmp_path):
    path = tmp_path / "d.parquet"
    duckdb.sql(f"COPY (SELECT 1 AS id, DATE '2024-01-02' AS day, 2.5 AS amount) TO '{path}' (FORMAT parquet)")
    run = run_now(ingest_pipeline(fmt="parquet", location=str(path)))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(wh, "landing", "id, day, amount") == [("1", "2024-01-02", "2.5")]


def test_a_corrupt_parquet_file_fails_clearly(wh, ingest_pipeline, make_csv):
    run = run_now(ingest_pipeline(fmt="parquet", location=str(make_csv(b"PAR1 not really", "x.parquet"))))
    assert run.status == RunStatus.FAILED
    assert "not a readable Parquet file" in step_of(run).error


def test_declared_columns_and_options(wh, ingest_pipeline, make_csv):
    path = make_csv("1;'Ann; Lee'\n2;Bob\n")
    run = run_now(
        ingest_pipeline(location=str(path), options={"delimiter": ";", "quote": "'", "header": False}, schema=["id", "name"])
    )
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(wh, "landing", "id, name") == [("1", "Ann; Lee"), ("2", "Bob")]


@pytest.fixture
def http_server(tmp_path, settings):
    settings.ATLAS_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # URL sources refuse loopback unless allowed
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_url_source_is_downloaded_and_loaded(wh, ingest_pipeline, http_server):
    root, base = http_server
    (root / "d.csv").write_text("id\n1\n2\n")
    pipeline = ingest_pipeline(kind="url", location=f"{base}/d.csv")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert step_of(run_now(pipeline)).status == RunStatus.SKIPPED  # same content
    assert len(explore_rows(wh, "landing")) == 2


def test_a_url_that_answers_404_or_is_unreachable_fails_clearly(wh, ingest_pipeline, http_server):
    _, base = http_server
    run = run_now(ingest_pipeline(kind="url", location=f"{base}/missing.csv"))
    assert "answered HTTP 404" in step_of(run).error
    run = run_now(ingest_pipeline(table="other", kind="url", location="http://127.0.0.1:9/x.csv"))
    assert run.status == RunStatus.FAILED
    assert "Cannot fetch http://127.0.0.1:9/x.csv" in step_of(run).error


def test_a_sql_source_exports_its_query(wh, ingest_pipeline, tmp_path, settings):
    db = tmp_path / "shop.sqlite3"
    con = sqlite3.connect(db)
    con.executescript("CREATE TABLE c (id integer, email text); INSERT INTO c VALUES (1, 'a@x.org'), (2, NULL);")
    con.commit()
    con.close()
    settings.ATLAS_SOURCE_DATABASES = {"shop": f"sqlite://{db}"}
    run = run_now(ingest_pipeline(kind="sql", database="shop", query="SELECT id, email FROM c ORDER BY id"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(wh, "landing", "id, email") == [("1", "a@x.org"), ("2", None)]


def test_an_uploaded_file_is_loaded(wh, db, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from pipelines.models import Dataset, Pipeline, Source, Step

    settings.MEDIA_ROOT = tmp_path / "media"
    source = Source(name="upload", kind="upload", upload=SimpleUploadedFile("u.csv", b"id,v\n1,a\n"))
    source.full_clean()
    source.save()
    pipeline = Pipeline.objects.create(name="up")
    out = Dataset.objects.create(name="raw_up", layer="explore", table="up")
    Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=source, output=out)
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert explore_rows(wh, "up", "id, v") == [("1", "a")]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "path", "location": ""}, "needs a file path"),
        ({"kind": "url", "location": "ftp://x"}, "http:// or https://"),
        ({"kind": "upload"}, "needs a file"),
        ({"kind": "sql", "database": "nope", "query": "DELETE FROM x"}, "Unknown database"),
        ({"location": "/x", "options": {"delimiter": ";;"}}, "single character"),
        ({"location": "/x", "options": {"encoding": "ebcdic"}}, "encoding must be one of"),
        ({"location": "/x", "options": {"colour": "red"}}, "Unknown option"),
        ({"location": "/x", "schema": "id,name"}, "list of names"),
    ],
)
def test_a_bad_source_definition_is_refused_on_save(db, fields, message):
    from django.core.exceptions import ValidationError

    from pipelines.models import Source

    with pytest.raises(ValidationError, match=message):
        Source(name="bad", **fields).full_clean()
