"""Incremental extraction by a watermark column (issue 14), from SQLite, DuckDB and PostgreSQL sources."""

import os
import sqlite3
import uuid

import duckdb
import psycopg
import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from atlas.warehouse import WarehouseError
from pipelines import watermarks
from pipelines.models import Dataset, Pipeline, RunStatus, Source, SourceWatermark, Step

from .conftest import explore_rows, run_now

ON_POSTGRES = os.environ.get("ATLAS_TEST_ENGINE") == "postgres"
KINDS = ["sqlite", "duckdb", pytest.param("postgres", marks=pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL pass"))]


class SourceDB:
    """A source database of one engine with an ``orders`` table: (id, updated_at, note)."""

    def __init__(self, kind: str, tmp_path):
        self.kind = kind
        if kind == "sqlite":
            self.path = tmp_path / "shop.sqlite3"
            self.url = f"sqlite://{self.path}"
        elif kind == "duckdb":
            self.path = tmp_path / "shop.duckdb"
            self.url = f"duckdb://{self.path}"
        else:
            s = connection.settings_dict
            self.schema = f"src_{uuid.uuid4().hex[:8]}"
            self.conninfo = f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} user={s['USER']} dbname={s['NAME']}"
            self.url = f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
        self.table = "orders" if kind != "postgres" else f"{self.schema}.orders"
        self.execute(f"CREATE TABLE {self.table} (id integer, updated_at timestamp, note text)", schema=True)

    def execute(self, sql: str, params=(), *, schema: bool = False) -> None:
        if self.kind == "sqlite":
            con = sqlite3.connect(self.path)
            con.execute(sql, params)
            con.commit()
            con.close()
        elif self.kind == "duckdb":
            con = duckdb.connect(str(self.path))
            con.execute(sql, list(params) or None)
            con.close()
        else:
            with psycopg.connect(self.conninfo, autocommit=True) as con:
                if schema:
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                con.execute(sql.replace("?", "%s"), list(params) or None)

    def insert(self, *rows) -> None:
        for row in rows:
            self.execute(f"INSERT INTO {self.table} VALUES (?, ?, ?)", row)

    def drop(self) -> None:
        if self.kind == "postgres":
            with psycopg.connect(self.conninfo, autocommit=True) as con:
                con.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")


@pytest.fixture(params=KINDS)
def shop(request, tmp_path, settings):
    source_db = SourceDB(request.param, tmp_path)
    settings.ATLAS_SOURCE_DATABASES = {"shop": source_db.url}
    yield source_db
    source_db.drop()


def ts(day: int, hour: int = 0) -> str:
    return f"2024-03-{day:02d} {hour:02d}:00:00"


def incremental_pipeline(shop, *, column: str = "updated_at", query: str | None = None) -> Pipeline:
    source = Source(name="orders_src", kind="sql", database="shop", options={"watermark": column},
                    query=query or f"SELECT id, updated_at, note FROM {shop.table}")
    source.full_clean()
    source.save()
    out = Dataset.objects.create(name="raw_orders", layer="explore", table="orders")
    pipeline = Pipeline.objects.create(name="orders")
    Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=source, output=out, write_mode="append")
    return pipeline


def ids(wh):
    return sorted(int(r[0]) for r in explore_rows(wh, "orders", "id"))  # row numbers restart per batch


def stored(pipeline):
    return watermarks.load(SourceWatermark.objects.get(source__name="orders_src").value)


# --- failure paths first -------------------------------------------------------------------------
def test_a_missing_watermark_column_fails_the_load_and_names_the_columns(wh, shop):
    shop.insert((1, ts(1), "a"))
    pipeline = incremental_pipeline(shop, column="changed_at")
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    assert "the watermark column 'changed_at' is not among the query's columns (id, updated_at, note)" in run.error
    assert SourceWatermark.objects.get().value is None


def test_null_watermarks_fail_the_load_with_what_to_do(wh, shop):
    shop.insert((1, ts(1), "a"), (2, None, "b"), (3, None, "c"))
    run = run_now(incremental_pipeline(shop))
    assert run.status == RunStatus.FAILED
    assert "2 row(s) have no value in the watermark column 'updated_at'" in run.error
    assert "WHERE updated_at IS NOT NULL" in run.error
    assert not wh.table_exists("explore", "orders")
    assert SourceWatermark.objects.get().value is None


def test_a_failed_publish_does_not_advance_the_watermark(wh, shop, monkeypatch):
    shop.insert((1, ts(1), "a"), (2, ts(2), "b"))
    pipeline = incremental_pipeline(shop)

    def broken(self, **kwargs):
        raise WarehouseError("disk full")

    monkeypatch.setattr(type(wh), "publish_batches", broken)
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED and "disk full" in run.error
    monkeypatch.undo()
    record = SourceWatermark.objects.get()
    assert record.value is None and record.pending_checksum  # read, never published
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert ids(wh) == [1, 2]  # everything read again, once
    assert str(stored(pipeline)).startswith("2024-03-02")


def test_a_worker_lost_after_publishing_does_not_load_rows_twice(wh, shop, monkeypatch):
    """The publish committed, the watermark was not saved: the next load settles it from the batch ledger."""
    shop.insert((1, ts(1), "a"), (2, ts(2), "b"))
    pipeline = incremental_pipeline(shop)
    monkeypatch.setattr(watermarks, "published", lambda *a, **k: None)
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    monkeypatch.undo()
    assert SourceWatermark.objects.get().value is None  # as if the worker died right after the publish
    shop.insert((3, ts(3), "c"))
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert ids(wh) == [1, 2, 3]
    assert str(stored(pipeline)).startswith("2024-03-03")


# --- the incremental loads -----------------------------------------------------------------------
def test_each_load_reads_only_rows_past_the_watermark(wh, shop):
    shop.insert((1, ts(1), "a"), (2, ts(2), "b"), (3, ts(2, 5), "c"))
    pipeline = incremental_pipeline(shop)
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert ids(wh) == [1, 2, 3]
    assert str(stored(pipeline)).startswith("2024-03-02")

    again = run_now(pipeline)  # nothing new: skipped, the watermark stays
    assert again.status == RunStatus.SUCCEEDED
    assert again.step_runs.get().status == RunStatus.SKIPPED

    shop.insert((4, ts(3), "d"), (5, ts(4), "e"))
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED
    assert run.step_runs.get().rows_out == 2
    assert ids(wh) == [1, 2, 3, 4, 5]
    assert str(stored(pipeline)).startswith("2024-03-04")


def test_a_late_row_below_the_watermark_is_not_read(wh, shop):
    """The documented rule: watermarks must grow; a row arriving later with an older value is never read."""
    shop.insert((1, ts(5), "a"))
    pipeline = incremental_pipeline(shop)
    run_now(pipeline)
    shop.insert((2, ts(4), "late"), (3, ts(6), "new"))
    run_now(pipeline)
    assert ids(wh) == [1, 3]  # row 2 came late: never read


def test_a_text_watermark_with_quotes_is_bound_not_formatted(wh, shop):
    shop.insert((1, ts(1), "O'Brien'); DROP TABLE orders; --"), (2, ts(1), "a%b"))
    pipeline = incremental_pipeline(shop, column="note")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert stored(pipeline) == "a%b"  # the greater text
    shop.insert((3, ts(2), "zz'; --"))
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert ids(wh) == [1, 2, 3]


# --- refused at save -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "path", "location": "/tmp/x.csv"}, "watermark is for SQL sources only"),
        ({"kind": "sql", "database": "shop", "query": "SELECT 1 AS a"}, "watermark must be a column name"),
    ],
)
def test_a_bad_watermark_option_is_refused(db, settings, tmp_path, fields, message):
    settings.ATLAS_SOURCE_DATABASES = {"shop": f"sqlite://{tmp_path / 'x.sqlite3'}"}
    settings.ATLAS_DATA_ROOTS = ["/tmp"]
    column = "a; DROP TABLE x" if fields["kind"] == "sql" else "a"
    with pytest.raises(ValidationError, match=message):
        Source(name="s", options={"watermark": column}, **fields).full_clean()


def test_an_incremental_source_must_be_appended(db, settings, tmp_path):
    settings.ATLAS_SOURCE_DATABASES = {"shop": f"sqlite://{tmp_path / 'x.sqlite3'}"}
    source = Source.objects.create(name="s", kind="sql", database="shop", query="SELECT 1 AS a", options={"watermark": "a"})
    out = Dataset.objects.create(name="raw", layer="explore", table="raw")
    step = Step(pipeline=Pipeline.objects.create(name="p"), name="i", kind="ingest", source=source, output=out,
                write_mode="replace")
    with pytest.raises(ValidationError, match="must append them"):
        step.full_clean()


def test_a_full_refresh_reads_the_source_from_the_start_and_replaces_the_table(wh, shop):
    """What the rule above loses, a full refresh recovers: every row read again, none twice."""
    shop.insert((1, ts(5), "a"))
    pipeline = incremental_pipeline(shop)
    run_now(pipeline)
    shop.insert((2, ts(4), "late"), (3, ts(6), "new"))
    run_now(pipeline)
    refreshed = run_now(pipeline, full_refresh=True)
    assert refreshed.status == RunStatus.SUCCEEDED and refreshed.full_refresh
    assert ids(wh) == [1, 2, 3]
    assert str(stored(pipeline)).startswith("2024-03-06")
    shop.insert((4, ts(7), "after"))
    run_now(pipeline)  # incremental again, from the refreshed watermark
    assert ids(wh) == [1, 2, 3, 4]
