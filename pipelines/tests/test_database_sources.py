"""Database sources (issue 16, item 5): MySQL/MariaDB and PostgreSQL, full and incremental, types as text.

Real servers: MariaDB on 127.0.0.1:3306 (root, no password; each test makes its own database
``atlas_<tag>_src`` and drops it) and PostgreSQL on 127.0.0.1:5432 (a schema of its own in the
``postgres`` database). Each skips with its reason when its server is down, and fails in CI.
The warehouse is the pass's engine: the embedded default, or PostgreSQL (ATLAS_TEST_ENGINE=postgres).
"""

from __future__ import annotations

import csv
import tracemalloc
import uuid

import psycopg
import pymysql
import pytest
from django.core.exceptions import ValidationError

from atlas.tests.plugin import service_or_skip
from atlas.warehouse import mysqlsource
from demo.generator import generate
from pipelines.models import Dataset, Pipeline, RunStatus, Source, SourceWatermark, Step
from pipelines.watermarks import load

from .conftest import explore_rows, run_now

ENGINES = ["mariadb", "postgresql"]  # not "postgres": that keyword marks tests of the PostgreSQL pass only


class SourceServer:
    """A private database on a real server; SQL is sent with %s parameters (both drivers' style)."""

    def __init__(self, engine: str):
        self.engine = engine
        tag = uuid.uuid4().hex[:8]
        if engine == "mariadb":
            service_or_skip("MariaDB", "127.0.0.1", 3306)
            self.name = f"atlas_{tag}_src"
            self.admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
            with self.admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE {self.name} CHARACTER SET utf8mb4")
                cur.execute(f"USE {self.name}")
                cur.execute("SET SESSION time_zone = '+00:00', sql_mode = ''")  # zero dates accepted, as old apps wrote
            self.url = f"mysql://root@127.0.0.1:3306/{self.name}"
            self.table_prefix = ""
        else:
            service_or_skip("PostgreSQL", "127.0.0.1", 5432)
            self.name = f"src_{tag}"
            self.admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True)
            self.admin.execute(f"CREATE SCHEMA {self.name}")
            self.admin.execute("SET TIME ZONE 'UTC'")
            self.url = "postgres://postgres@127.0.0.1:5432/postgres"
            self.table_prefix = f"{self.name}."

    def table(self, name: str) -> str:
        return self.table_prefix + name

    def execute(self, sql: str, params=None) -> None:
        if self.engine == "mariadb":
            with self.admin.cursor() as cur:
                cur.execute(sql, params)
        else:
            self.admin.execute(sql, params)

    def insert(self, table: str, rows: list[tuple]) -> None:
        if not rows:
            return
        marks = ", ".join(["%s"] * len(rows[0]))
        with self.admin.cursor() as cur:
            cur.executemany(f"INSERT INTO {self.table(table)} VALUES ({marks})", rows)

    def drop(self) -> None:
        if self.engine == "mariadb":
            self.execute(f"DROP DATABASE IF EXISTS {self.name}")
        else:
            self.execute(f"DROP SCHEMA IF EXISTS {self.name} CASCADE")
        self.admin.close()


@pytest.fixture(params=ENGINES)
def server(request, settings):
    srv = SourceServer(request.param)
    settings.ATLAS_SOURCE_DATABASES = {"shop": srv.url}
    yield srv
    srv.drop()


@pytest.fixture
def mariadb(settings):
    srv = SourceServer("mariadb")
    settings.ATLAS_SOURCE_DATABASES = {"shop": srv.url}
    yield srv
    srv.drop()


def sql_pipeline(name: str, query: str, *, table: str, watermark: str | None = None) -> Pipeline:
    source = Source(name=f"{name}_src", kind="sql", database="shop", query=query,
                    options={"watermark": watermark} if watermark else {})
    source.full_clean()
    source.save()
    out = Dataset.objects.create(name=f"raw_{name}", layer="explore", table=table)
    pipeline = Pipeline.objects.create(name=name)
    Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=source, output=out,
                        write_mode="append" if watermark else "replace")
    return pipeline


# --- the failure the issue names: no MySQL/MariaDB source ------------------------------------------
def test_a_mariadb_table_loads_into_explore(wh, mariadb):
    mariadb.execute("CREATE TABLE orders (id int, status varchar(20))")
    mariadb.insert("orders", [(1, "paid"), (2, "shipped")])
    run = run_now(sql_pipeline("orders", "SELECT `id`, status FROM orders", table="orders"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(wh, "orders", "id, status") == [("1", "paid"), ("2", "shipped")]


# --- types: the same text from either engine ------------------------------------------------------
TYPES_DDL = {
    "mariadb": (
        "CREATE TABLE typed (id int, big bigint, amount decimal(10,2), ok tinyint(1), day date,"
        " at_local datetime(3), at_utc timestamp NULL, note text, payload blob, doc json, nothing int)"
    ),
    "postgresql": (
        "CREATE TABLE {t} (id int, big bigint, amount numeric(10,2), ok boolean, day date,"
        " at_local timestamp(3), at_utc timestamptz, note text, payload bytea, doc json, nothing int)"
    ),
}
TYPED_ROWS = {
    "mariadb": [
        (1, 9007199254740993, "12.50", 1, "2024-03-01", "2024-03-01 10:00:00.125", "2024-03-01 10:00:00",
         'a,"b"\nc', b"\x00\xff", '{"a": [1, 2]}', None),
        (2, -5, "-0.10", 0, "1999-12-31", "2024-03-02 00:00:00", "2024-03-02 23:59:59", "", b"", "[]", None),
    ],
    "postgresql": [
        (1, 9007199254740993, "12.50", True, "2024-03-01", "2024-03-01 10:00:00.125", "2024-03-01 10:00:00+00",
         'a,"b"\nc', b"\x00\xff", '{"a": [1, 2]}', None),
        (2, -5, "-0.10", False, "1999-12-31", "2024-03-02 00:00:00", "2024-03-02 23:59:59+00", "", b"", "[]", None),
    ],
}
# What Explore holds, whichever engine the rows came from (an empty text is NULL in Explore, as an empty
# quoted CSV field is, on both warehouse engines; an empty binary is ``\x``, as PostgreSQL writes it).
TYPED_TEXT = [
    ("1", "9007199254740993", "12.50", "t", "2024-03-01", "2024-03-01 10:00:00.125", "2024-03-01 10:00:00+00",
     'a,"b"\nc', "\\x00ff", '{"a": [1, 2]}', None),
    ("2", "-5", "-0.10", "f", "1999-12-31", "2024-03-02 00:00:00", "2024-03-02 23:59:59+00", None, "\\x", "[]", None),
]
COLUMNS = "id, big, amount, ok, day, at_local, at_utc, note, payload, doc, nothing"


def test_types_are_written_as_the_same_text_from_either_engine(wh, server):
    server.execute(TYPES_DDL[server.engine].format(t=server.table("typed")))
    server.insert("typed", TYPED_ROWS[server.engine])
    run = run_now(sql_pipeline("typed", f"SELECT * FROM {server.table('typed')} ORDER BY id", table="typed"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(wh, "typed", COLUMNS) == TYPED_TEXT


def test_mariadb_zero_dates_tinyint_and_bits_follow_the_stated_rules(wh, mariadb):
    """Zero dates name no day: NULL. TINYINT(1) other than 0/1 keeps its number. BIT(n): n binary digits."""
    mariadb.execute("CREATE TABLE odd (id int, d date, dt datetime, ts timestamp NULL, flag tinyint(1), bits bit(4),"
                    " small tinyint, bin varbinary(4))")
    mariadb.execute("INSERT INTO odd VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', 2, b'0101',"
                    " 1, x'0a0b'), (2, '2024-00-10', '2024-02-00 10:00:00', NULL, NULL, b'0000', 0, 'AB')")
    run = run_now(sql_pipeline("odd", "SELECT * FROM odd ORDER BY id", table="odd"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(wh, "odd", "id, d, dt, ts, flag, bits, small, bin") == [
        ("1", None, None, None, "2", "0101", "1", "\\x0a0b"),
        ("2", None, None, None, None, "0000", "0", "\\x4142"),
    ]


# --- incremental by a watermark column, on both engines -------------------------------------------
def test_full_then_incremental_reads_only_the_new_rows(wh, server):
    t = server.table("events")
    server.execute(f"CREATE TABLE {t} (id int, changed_at timestamp NULL, label varchar(40))"
                   if server.engine == "mariadb" else f"CREATE TABLE {t} (id int, changed_at timestamp, label text)")
    server.insert("events", [(1, "2024-03-01 10:00:00", "10% off"), (2, "2024-03-02 10:00:00", "plain"),
                             (3, "2024-03-02 10:00:00", "another 5%")])
    # A % in the operator's query, beside the watermark's bound parameters.
    query = f"SELECT id, changed_at, label FROM {t} WHERE label LIKE '%' OR label IS NULL"
    pipeline = sql_pipeline("events", query, table="events", watermark="changed_at")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert sorted(explore_rows(wh, "events", "id, label")) == [("1", "10% off"), ("2", "plain"), ("3", "another 5%")]
    assert str(load(SourceWatermark.objects.get().value)) == "2024-03-02 10:00:00"

    run = run_now(pipeline)  # nothing new: no batch, the watermark stays
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(explore_rows(wh, "events", "id")) == 3

    server.insert("events", [(4, "2024-03-03 08:00:00", "new"), (5, "2024-03-04 09:30:00", None)])
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert sorted(int(r[0]) for r in explore_rows(wh, "events", "id")) == [1, 2, 3, 4, 5]
    assert str(load(SourceWatermark.objects.get().value)) == "2024-03-04 09:30:00"


# --- the demo's tables, from either engine, full then incremental ---------------------------------
def demo_rows(path, columns: int) -> list[tuple[str, ...]]:
    """The demo file's well-formed rows (the generator adds a few truncated lines on purpose)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    return [tuple(r) for r in rows if len(r) == columns]


def as_loaded(rows: list[tuple[str, ...]]) -> list[tuple[str | None, ...]]:
    """An empty field is NULL in Explore (whichever source: an empty text is written as an empty quoted field)."""
    return sorted(tuple(v if v != "" else None for v in r) for r in rows)


def test_the_demo_orders_and_customers_load_full_then_incremental(wh, server, tmp_path):
    files = generate(tmp_path / "demo", rows=60)
    tables = {
        "customers": ("customer_id", demo_rows(files.customers, 12), files.manifest["files"]["customers"]["columns"]),
        "orders": ("order_id", demo_rows(files.orders, 6), files.manifest["files"]["orders"]["columns"]),
    }
    pipelines = {}
    for name, (key, rows, columns) in tables.items():
        cols = ", ".join(f"{c} {'int' if c == key else 'varchar(200)'}" for c in columns)
        server.execute(f"CREATE TABLE {server.table(name)} ({cols})")
        server.insert(name, [r for r in rows if int(r[0]) <= 15])  # the first extract
        pipelines[name] = sql_pipeline(name, f"SELECT * FROM {server.table(name)}", table=name, watermark=key)
        assert run_now(pipelines[name]).status == RunStatus.SUCCEEDED
        assert sorted(explore_rows(wh, name, ", ".join(columns))) == as_loaded([r for r in rows if int(r[0]) <= 15])

    for name, (_key, rows, columns) in tables.items():
        server.insert(name, [r for r in rows if int(r[0]) > 15])  # new rows since
        run = run_now(pipelines[name])
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert sorted(explore_rows(wh, name, ", ".join(columns))) == as_loaded(rows)  # every row once
        record = SourceWatermark.objects.get(source__name=f"{name}_src")
        assert load(record.value) == max(int(r[0]) for r in rows)


# --- rights, credentials, bad input ---------------------------------------------------------------
def test_the_mariadb_session_is_read_only(mariadb):
    mariadb.execute("CREATE TABLE t (id int)")
    con = mysqlsource._connect(mariadb.url, typed=True)
    try:
        with con.cursor() as cur, pytest.raises(pymysql.err.OperationalError, match="READ ONLY"):
            cur.execute("INSERT INTO t VALUES (1)")
    finally:
        con.close()


@pytest.mark.parametrize(
    "query, refused",
    [
        ("SELECT SLEEP(100)", "sleep() is not allowed"),
        ("SELECT LOAD_FILE('/etc/passwd')", "load_file() is not allowed"),
        ("DELETE FROM orders", "Only a SELECT"),
        ("SELECT id FROM orders FOR UPDATE", "Locking clauses"),
        ("SELECT id FROM orders LOCK IN SHARE MODE", "Locking clauses"),
        ("SELECT 1; DROP TABLE orders", "exactly one statement"),
    ],
)
def test_a_mariadb_query_is_one_plain_select(db, mariadb, query, refused):
    with pytest.raises(ValidationError) as info:
        Source(name="s", kind="sql", database="shop", query=query).full_clean()
    assert refused in str(info.value)


def test_a_select_into_outfile_is_refused(db, mariadb):
    with pytest.raises(ValidationError):
        Source(name="s", kind="sql", database="shop", query="SELECT id FROM orders INTO OUTFILE '/tmp/x'").full_clean()


def test_backticks_are_mariadb_sql(db, mariadb):
    Source(name="s", kind="sql", database="shop", query="SELECT `id`, `order date` FROM `orders`").full_clean()


def test_a_password_is_referenced_and_never_shown(wh, mariadb, settings, monkeypatch):
    secret = "Wr0ng-" + uuid.uuid4().hex
    monkeypatch.setenv("ATLAS_SOURCE_SECRET_SHOP", secret)
    mariadb.execute("CREATE TABLE orders (id int)")
    settings.ATLAS_SOURCE_DATABASES = {"shop": f"{mariadb.url}?password=env:ATLAS_SOURCE_SECRET_SHOP"}
    run = run_now(sql_pipeline("orders", "SELECT id FROM orders", table="orders"))
    assert run.status == RunStatus.FAILED
    assert "Access denied" in run.error and secret not in run.error


def test_a_password_in_the_url_never_appears_in_the_error(wh, mariadb, settings):
    secret = "Cl3ar-" + uuid.uuid4().hex
    settings.ATLAS_SOURCE_DATABASES = {"shop": f"mysql://root:{secret}@127.0.0.1:3306/{mariadb.name}"}
    run = run_now(sql_pipeline("orders", "SELECT 1 AS id", table="orders"))
    assert run.status == RunStatus.FAILED
    assert "Access denied" in run.error and secret not in run.error


def test_a_reference_to_a_missing_variable_is_named(wh, mariadb, settings):
    settings.ATLAS_SOURCE_DATABASES = {"shop": f"{mariadb.url}?password=env:ATLAS_SOURCE_SECRET_NOT_SET_ANYWHERE"}
    run = run_now(sql_pipeline("orders", "SELECT 1 AS id", table="orders"))
    assert run.status == RunStatus.FAILED
    assert "ATLAS_SOURCE_SECRET_NOT_SET_ANYWHERE is not set" in run.error


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://root@127.0.0.1:3306/", "names a host and a database"),
        ("mysql://root@127.0.0.1:3306/db?sslmode=off", "Unknown MySQL/MariaDB URL parameter(s): sslmode"),
        ("mysql://root@127.0.0.1:99999/db", "malformed"),
    ],
)
def test_a_bad_mariadb_url_is_refused_clearly(url, message):
    with pytest.raises(mysqlsource.SourceURLError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mysqlsource.connect_kwargs(url)


def test_a_missing_table_fails_the_run_with_the_servers_reason(wh, mariadb):
    run = run_now(sql_pipeline("orders", "SELECT id FROM no_such_table", table="orders"))
    assert run.status == RunStatus.FAILED
    assert "no_such_table" in run.error and "doesn't exist" in run.error


@pytest.mark.slow
def test_the_export_streams_in_bounded_memory(mariadb, tmp_path):
    """200,000 rows (about 20 MB as Python objects if buffered): the unbuffered cursor holds one batch."""
    mariadb.execute("CREATE TABLE wide (id int, label varchar(64))")
    mariadb.execute("INSERT INTO wide SELECT seq, repeat('x', 60) FROM seq_1_to_200000")
    out = tmp_path / "wide.csv"
    tracemalloc.start()
    try:
        mysqlsource.export_query_csv(mariadb.url, "SELECT id, label FROM wide", str(out))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with open(out) as fh:
        assert sum(1 for _ in fh) == 200_001
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"


def test_mariadb_urls_read_like_mysql_urls():
    kwargs = mysqlsource.connect_kwargs("mariadb://reader@db.internal:3307/shop?charset=utf8mb4&connect_timeout=5")
    assert {k: kwargs[k] for k in ("host", "port", "user", "password", "database", "charset", "connect_timeout")} == {
        "host": "db.internal", "port": 3307, "user": "reader", "password": "", "database": "shop",
        "charset": "utf8mb4", "connect_timeout": 5,
    }
