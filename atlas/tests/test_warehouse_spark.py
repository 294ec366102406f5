"""The Spark warehouse (issue 21): the backend contract on a real local Spark Connect server.

Every test runs against the session's server (``atlas/tests/sparkserver.py``): nothing is
mocked. Failure paths first: an unreachable server, a step killed in the middle of a publish,
operator SQL that is not one statement or whose error would quote a value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from atlas.warehouse import WarehouseError, get_warehouse, interrupts, registry, reset_warehouses
from atlas.warehouse.base import Column
from atlas.warehouse.spark import PART_RE, SparkWarehouse, pg_type
from atlas.warehouse.sparklocal import free_port

pytestmark = pytest.mark.slow

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def rows(wh, sql: str) -> list[tuple]:
    return wh.operator_query(sql, layer="navigate")[1]


def stage(wh, schema: str, name: str, sql: str) -> int:
    return wh.stage_operator_select(schema, name, wh.transpile(sql))


@pytest.fixture
def events(spark_wh):
    with spark_wh.cursor() as cur:
        cur.execute("CREATE TABLE chart.events (id integer, seen text)")
        cur.executemany("INSERT INTO chart.events VALUES (%s, %s)", [(1, "a"), (2, None), (3, "c")])
    return spark_wh


# --- failure paths ----------------------------------------------------------------------------

def test_an_unreachable_server_is_a_clear_error_without_the_urls_token(db, settings):
    settings.WAREHOUSE_URL = f"sc://127.0.0.1:{free_port()}/;token=s3cret"
    reset_warehouses()
    try:
        with pytest.raises(WarehouseError, match=r"Cannot reach the Spark Connect server sc://127\.0\.0\.1:\d+/") as err:
            get_warehouse().table_exists("chart", "x")
        assert "s3cret" not in str(err.value)
    finally:
        reset_warehouses()


class KilledBeforeTheSwap(SparkWarehouse):
    """A publish stopped (cancel, time limit) after its new part is written, before the view is swapped."""

    watch: interrupts.Watch | None = None

    def _swap(self, schema, target, parts, columns, *, receipt=None):
        if self.watch is not None:
            self.watch.trip("cancelled by the operator")
        return super()._swap(schema, target, parts, columns, receipt=receipt)


@pytest.mark.parametrize("mode", ["replace", "append", "merge"])
def test_a_step_killed_during_a_publish_leaves_the_published_table_as_it_was(events, spark_url, mode):
    stage(events, "navigate", "out__r1a1_stg", "SELECT id, seen FROM chart.events WHERE id < 3")
    events.publish(schema="navigate", staging="out__r1a1_stg", target="out", mode="replace", receipt="r1")
    before = rows(events, "SELECT * FROM navigate.out ORDER BY id")
    assert before == [(1, "a"), (2, None)]

    killed = KilledBeforeTheSwap(spark_url)
    killed.watch = interrupts.Watch()
    stage(killed, "navigate", "out__r2a1_stg", "SELECT id, 'new' AS seen FROM chart.events")
    with interrupts.watching(killed.watch), pytest.raises(interrupts.Interrupted):
        killed.publish(schema="navigate", staging="out__r2a1_stg", target="out", mode=mode, keys=["id"], receipt="r2")
    killed.close()
    assert rows(events, "SELECT * FROM navigate.out ORDER BY id") == before
    assert not events.has_receipt("r2")
    # the next publish of the dataset works as if nothing had happened
    stage(events, "navigate", "out__r3a1_stg", "SELECT id, 'new' AS seen FROM chart.events WHERE id = 3")
    events.publish(schema="navigate", staging="out__r3a1_stg", target="out", mode="append")
    assert rows(events, "SELECT * FROM navigate.out ORDER BY id") == [*before, (3, "new")]


def test_operator_sql_must_be_one_statement(events):
    with pytest.raises(WarehouseError, match="one statement; this text holds 2"):
        events.operator_query("SELECT 1 AS a; SELECT 2 AS b", layer="chart")
    with pytest.raises(WarehouseError, match="one statement"):
        events.stage_operator_select("chart", "x__r1a1_stg", "SELECT 1 AS a; DROP TABLE chart.events")
    assert events.table_exists("chart", "events")


def test_an_error_about_a_value_does_not_quote_it(events):
    with pytest.raises(WarehouseError) as err:
        events.operator_query("SELECT CAST('ann@example.com' AS int) AS x", layer="chart")
    assert "CAST_INVALID_INPUT" in str(err.value)
    assert "ann@example.com" not in str(err.value)


def test_a_merge_with_a_key_staged_twice_is_refused_and_changes_nothing(events):
    stage(events, "navigate", "out__r1a1_stg", "SELECT id, seen FROM chart.events")
    events.publish(schema="navigate", staging="out__r1a1_stg", target="out", mode="replace")
    stage(events, "navigate", "out__r2a1_stg", "SELECT 1 AS id, 'x' AS seen UNION ALL SELECT 1 AS id, 'y' AS seen")
    with pytest.raises(WarehouseError, match=r"1 key value\(s\) of \(id\) appear more than once"):
        events.publish(schema="navigate", staging="out__r2a1_stg", target="out", mode="merge", keys=["id"])
    assert rows(events, "SELECT * FROM navigate.out ORDER BY id") == [(1, "a"), (2, None), (3, "c")]


# --- the contract ---------------------------------------------------------------------------------

def test_the_sc_scheme_picks_the_spark_backend(spark_wh, spark_url):
    assert type(spark_wh) is SparkWarehouse
    assert registry.backend_class(spark_url) is SparkWarehouse
    assert spark_wh.transpile("SELECT CAST(n AS text) AS x, CAST(t AS timestamp) AS y FROM chart.t") == (
        "SELECT CAST(n AS STRING) AS x, CAST(t AS TIMESTAMP_NTZ) AS y FROM chart.t"
    )


def test_catalogue_reads_spark_types_as_postgresql_names_them(events):
    with events.cursor() as cur:
        cur.execute(
            "CREATE TABLE chart.typed (i integer, b bigint, n numeric(10, 2), d double precision, t text,"
            " day date, ts timestamp with time zone, ok boolean, raw bytea)"
        )
    assert events.catalogue(["chart"])[("chart", "typed")] == {
        "i": "integer", "b": "bigint", "n": "numeric(10,2)", "d": "double precision", "t": "text",
        "day": "date", "ts": "timestamp with time zone", "ok": "boolean", "raw": "bytea",
    }
    assert pg_type("timestamp_ntz") == "timestamp without time zone"
    assert events.table_exists("chart", "typed") and not events.table_exists("chart", "nothing")


class Counted(SparkWarehouse):
    """The Spark warehouse, counting the requests its SQL and its catalog lookups send."""

    requests = 0

    def _sql(self, sql, params=None, *, operator=False):
        type(self).requests += 1
        return super()._sql(sql, params, operator=operator)

    def _collect(self, df, *, operator=False):
        type(self).requests += 1
        return super()._collect(df, operator=operator)

    def _kind(self, schema, name):
        type(self).requests += 1  # one catalog request (``getTable``)
        return super()._kind(schema, name)


def test_the_catalogue_is_a_listing_and_one_plan_and_answers_as_each_tables_describe(events):
    """The catalogue (privacy's keys, search and erasure read it) described every table, a request each;
    now a schema is its listing and one analysed plan, with the same names and types. A view whose table is
    gone does not analyse: then each table is described, as before."""
    events._command("CREATE TABLE chart.wide (a ARRAY<INT>, m MAP<STRING, BIGINT>, s STRUCT<x: INT, y: STRING>,"
                    " v VARCHAR(5), ts TIMESTAMP_NTZ, amount DECIMAL(12, 3)) USING parquet")
    events._command("CREATE VIEW chart.events_v AS SELECT id, upper(seen) AS loud FROM chart.events")
    stage(events, "chart", "published__r1a1_stg", "SELECT id FROM chart.events")
    events.publish(schema="chart", staging="published__r1a1_stg", target="published", mode="replace")  # a view over a part
    wh = Counted(events.url)
    try:
        names = sorted(n for n in wh._tables("chart") if not PART_RE.search(n))
        described = {("chart", n): {c.name: c.type for c in wh.columns("chart", n)} for n in names}
        Counted.requests = 0
        assert wh.catalogue(["chart"]) == described
        assert Counted.requests == 3  # SHOW TABLES, SHOW VIEWS, the plan
        assert described[("chart", "wide")] == {"a": "array<int>", "m": "map<string,bigint>", "s": "struct<x:int,y:string>",
                                                 "v": "text", "ts": "timestamp without time zone", "amount": "numeric(12,3)"}
        assert set(described) == {("chart", n) for n in ("events", "events_v", "published", "wide")}
        events._command("CREATE TABLE chart.gone (id INT) USING parquet")
        events._command("CREATE VIEW chart.over_gone AS SELECT id FROM chart.gone")
        events._command("DROP TABLE chart.gone")
        Counted.requests = 0
        after = wh.catalogue(["chart"])
        assert after[("chart", "events")] == {"id": "integer", "seen": "text"} and after[("chart", "over_gone")] == {"id": "integer"}
        assert Counted.requests == 3 + len(after)  # the plan failed: a DESCRIBE each
    finally:
        wh.close()


def test_catalogue_lookups_are_one_request_each_and_create_only_what_is_missing(events):
    """Every step asks for the schemas and several kinds of table: each request costs the Connect server a
    thread and the Hive metastore a session (about 30 ms), so a look-up is one request, not a listing."""
    wh = Counted(events.url)
    try:
        Counted.requests = 0
        wh.ensure_schemas()  # all there: two reads, nothing created, their rows sent with the answers
        assert Counted.requests == 2
        Counted.requests = 0
        assert [c.name for c in wh.columns("chart", "events")] == ["id", "seen"] and Counted.requests == 1
        Counted.requests = 0
        assert wh.row_count("chart", "events") == 3 and Counted.requests == 2  # a query is collected
        events._command("CREATE VIEW chart.events_v AS SELECT id FROM chart.events")
        Counted.requests = 0
        kinds = [wh._kind("chart", "events"), wh._kind("chart", "EVENTS_V"), wh._kind("chart", "nothing"),
                 wh._kind("nowhere", "events")]
        assert kinds == ["TABLE", "VIEW", None, None] and Counted.requests == 4
        events._command("DROP TABLE atlas.published_steps")
        wh.ensure_schemas()  # what is missing is made again
        assert wh.table_exists("atlas", "published_steps") and not events.has_receipt("r0")
    finally:
        wh.close()


def test_a_collected_result_is_one_request_and_converts_as_pysparks_collect(spark_wh, monkeypatch):
    """pyspark's ``collect`` asked the server for a setting (``binaryAsBytes``) after every result, a
    request of its own: 1,853 of the Spark test pass's 6,591 requests. Atlas collects in one, with the
    same values as pyspark's ``collect`` (binary as bytes, timestamps, decimals, NULL)."""
    sql = ("SELECT CAST('ab' AS BINARY) AS b, TIMESTAMP '2024-01-02 03:04:05' AS ts, CAST(1.50 AS DECIMAL(4, 2)) AS d,"
           " CAST(NULL AS STRING) AS s, DATE '2024-02-29' AS day")
    expected = [tuple(r) for r in spark_wh._sql(sql).collect()]
    client = spark_wh.spark().client
    sent = []

    def counting(name, original):
        def counted(*args, **kwargs):
            sent.append(name)
            return original(*args, **kwargs)
        return counted

    for name in ("_execute_and_fetch_as_iterator", "_analyze", "config"):
        monkeypatch.setattr(client, name, counting(name, getattr(client, name)))
    assert spark_wh._run(sql) == expected
    assert sent == ["_execute_and_fetch_as_iterator"]
    assert isinstance(expected[0][0], bytes)


def test_a_view_is_rebuilt_over_its_parts_in_as_many_requests_whatever_their_number(spark_wh):
    """An Explore view holds a part per loaded file: rebuilding it described each part, a request each
    (hundreds per load on a long-lived table). Now their columns are one analysed plan; a part lacking a
    column of the view still reads as NULL there."""
    spent = {}
    for count in (2, 6):
        parts = [f"t{count}__atlas_v{i:012d}" for i in range(count)]
        for i, part in enumerate(parts):
            wide = i % 2 == 1  # every other part has the column the view adds
            spark_wh._command(f"CREATE TABLE navigate.{part} (id INT{', extra STRING' if wide else ''}) USING parquet")
            spark_wh._command(f"INSERT INTO navigate.{part} VALUES ({i}{', ' + repr(f'x{i}') if wide else ''})")
        wh = Counted(spark_wh.url)
        try:
            Counted.requests = 0
            wh._swap("navigate", f"t{count}", parts, [Column("id", "integer"), Column("extra", "text")])
            spent[count] = Counted.requests
        finally:
            wh.close()
        assert sorted(rows(spark_wh, f"SELECT id, extra FROM navigate.t{count}")) == [
            (i, f"x{i}" if i % 2 else None) for i in range(count)
        ]
    assert spent[6] == spent[2] <= 4  # the view's kind, the parts' columns, the view


def test_publish_replace_append_merge_and_the_receipt(events):
    stage(events, "navigate", "out__r1a1_stg", "SELECT id, seen FROM chart.events WHERE id < 3")
    assert events.publish(schema="navigate", staging="out__r1a1_stg", target="out", mode="replace", receipt="r1") == 2
    stage(events, "navigate", "out__r2a1_stg", "SELECT id, seen FROM chart.events WHERE id = 3")
    assert events.publish(schema="navigate", staging="out__r2a1_stg", target="out", mode="append") == 1
    assert rows(events, "SELECT * FROM navigate.out ORDER BY id") == [(1, "a"), (2, None), (3, "c")]
    stage(events, "navigate", "out__r3a1_stg", "SELECT id, 'x' AS seen FROM chart.events WHERE id >= 2")
    assert events.publish(schema="navigate", staging="out__r3a1_stg", target="out", mode="merge", keys=["id"]) == 2
    assert rows(events, "SELECT * FROM navigate.out ORDER BY id") == [(1, "a"), (2, "x"), (3, "x")]
    # an incremental step's merge (issue 20): the keys it staged before its checks (1 and 3) are replaced, a key
    # whose new row a check dropped (3) leaves the table, as the other engines' DELETE ... WHERE EXISTS does
    stage(events, "navigate", "out__r4a1_stg", "SELECT id, 'y' AS seen FROM chart.events WHERE id = 1")
    stage(events, "navigate", "out__r4a1_k", "SELECT id FROM chart.events WHERE id IN (1, 3)")
    counts: dict[str, int] = {}
    assert events.publish(schema="navigate", staging="out__r4a1_stg", target="out", mode="merge", keys=["id"],
                          delete_keys_from="out__r4a1_k", counts=counts) == 1
    assert rows(events, "SELECT * FROM navigate.out ORDER BY id") == [(1, "y"), (2, "x")]
    assert counts == {"deleted": 2}
    events.drop_table("navigate", "out__r4a1_k")
    assert events.has_receipt("r1") and not events.has_receipt("r2")
    # the staging tables are gone, the parts are the backend's own: the janitor sees the dataset only
    assert events.relations(["navigate"]) == [("navigate", "out", "table")]
    assert [c.name for c in events.columns("navigate", "out")] == ["id", "seen"]


def test_a_merge_replaces_the_row_of_a_null_key_as_every_engine_does(spark_wh):
    """Null-safe keys (``<=>``), as the other engines' merge delete: a NULL key's new row replaces its old one."""
    stage(spark_wh, "navigate", "k__r1a1_stg", "SELECT CAST(NULL AS text) AS k, 'old' AS v UNION ALL SELECT 'a', 'old'")
    spark_wh.publish(schema="navigate", staging="k__r1a1_stg", target="k", mode="replace")
    stage(spark_wh, "navigate", "k__r2a1_stg", "SELECT CAST(NULL AS text) AS k, 'new' AS v")
    assert spark_wh.publish(schema="navigate", staging="k__r2a1_stg", target="k", mode="merge", keys=["k"]) == 1
    assert sorted(rows(spark_wh, "SELECT k, v FROM navigate.k"), key=str) == [("a", "old"), (None, "new")]


def test_a_changed_shape_needs_replace(events):
    stage(events, "navigate", "out__r1a1_stg", "SELECT id FROM chart.events")
    events.publish(schema="navigate", staging="out__r1a1_stg", target="out", mode="replace")
    stage(events, "navigate", "out__r2a1_stg", "SELECT id, seen FROM chart.events")
    with pytest.raises(WarehouseError, match="differ from the published table .added seen."):
        events.publish(schema="navigate", staging="out__r2a1_stg", target="out", mode="append")
    events.publish(schema="navigate", staging="out__r2a1_stg", target="out", mode="replace")
    assert rows(events, "SELECT * FROM navigate.out ORDER BY id") == [(1, "a"), (2, None), (3, "c")]


def test_a_reader_planned_before_a_swap_reads_the_old_table_to_the_end(events, settings):
    """A query resolves the view when it is planned; the parts it reads are dropped only after the grace period."""
    settings.ATLAS_SPARK_RETIRE_SECONDS = 3600
    stage(events, "navigate", "out__r1a1_stg", "SELECT id, seen FROM chart.events")
    events.publish(schema="navigate", staging="out__r1a1_stg", target="out", mode="replace")
    planned = events.spark().sql("SELECT id FROM navigate.out ORDER BY id")
    planned.schema  # noqa: B018 - analysed now, as a running query is
    stage(events, "navigate", "out__r2a1_stg", "SELECT id + 10 AS id, seen FROM chart.events")
    events.publish(schema="navigate", staging="out__r2a1_stg", target="out", mode="replace")
    assert rows(events, "SELECT id FROM navigate.out ORDER BY id") == [(11,), (12,), (13,)]
    assert events.drop_retired() == 0  # still within its grace period
    settings.ATLAS_SPARK_RETIRE_SECONDS = 0
    assert events.drop_retired() == 1


def test_delete_is_a_rewrite_and_counts_its_rows(events):
    with events.cursor() as cur:
        assert events.ops.delete(cur, "DELETE FROM chart.events WHERE id >= %s", [2]) == 2
        assert cur.execute("SELECT id FROM chart.events").fetchall() == [(1,)]


def test_retention_expires_rows_on_spark(spark_wh):
    from pipelines.models import Dataset
    from retention import services
    from retention.models import RetentionPolicy, RetentionRun

    with spark_wh.cursor() as cur:
        cur.execute("CREATE TABLE chart.events (id integer, seen text)")
        cur.executemany(
            "INSERT INTO chart.events VALUES (%s, %s)",
            [(1, (NOW - timedelta(days=40)).isoformat()), (2, (NOW - timedelta(days=5)).isoformat()),
             (3, "31/12/2024"), (4, None)],
        )
    ds = Dataset.objects.create(name="events", layer="chart", table="events")
    policy = services.save_policy(RetentionPolicy(dataset=ds, column="seen", period_days=30))
    run = services.apply_policy(policy, now=NOW)
    assert run.status == RetentionRun.Status.SUCCEEDED, run.error
    assert (run.rows_removed, run.unparseable_rows) == (1, 1)
    assert [r[0] for r in rows(spark_wh, "SELECT id FROM chart.events ORDER BY id")] == [2, 3, 4]


def test_a_pipeline_ingests_refines_and_aggregates_on_spark(spark_wh, tmp_path):
    """Ingest (a record that cannot be parsed goes to the quarantine with its raw text), refine, aggregate."""
    from atlas.tests.plugin import quarantine_rows, run_now
    from pipelines.models import Dataset, Pipeline, RunStatus, Source, Step

    path = tmp_path / "readings.csv"
    path.write_text('id,cents,ratio\n1,1250,2.5\n2,-1999,-2.5\n"3,7,0.5\n')
    source = Source.objects.create(name="readings", location=str(path))
    raw = Dataset.objects.create(name="raw_readings", layer="explore", table="readings")
    typed = Dataset.objects.create(name="readings", layer="chart", table="readings")
    units = Dataset.objects.create(name="units", layer="navigate", table="units")
    pipeline = Pipeline.objects.create(name="readings")
    Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=source, output=raw, write_mode="append",
                        max_rejected_share=0.5)
    Step.objects.create(
        pipeline=pipeline, name="refine", kind="refine", output=typed, position=1,
        sql="SELECT CAST(id AS integer) AS id, CAST(cents AS bigint) AS cents,"
        " CAST(ratio AS double precision) AS ratio FROM explore.readings",
    )
    Step.objects.create(pipeline=pipeline, name="units", kind="aggregate", output=units, position=2,
                        sql="SELECT id, cents / 100 AS units, ratio / 2 AS half FROM chart.readings")
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, "\n".join(s.traceback for s in run.step_runs.all())
    assert rows(spark_wh, "SELECT id, units, half FROM navigate.units ORDER BY id") == [(1, 12, 1.25), (2, -19, -1.25)]
    (rejected,) = quarantine_rows(spark_wh, "readings")
    assert rejected[2].startswith('"3,7,0.5')


def test_quality_checks_run_on_spark_in_one_scan(spark_wh):
    from pipelines.models import Dataset, DatasetColumn
    from quality.models import Check, CheckRun, Outcome
    from quality.service import run_checks
    from quality.tests.conftest import create_table

    columns = (("id", "integer"), ("name", "text"), ("amount", "numeric(12,2)"), ("code", "text"))
    create_table(spark_wh, "chart", "items", [(1, "Zoë", 10, "AB1"), (2, "Zoë", 20, "AB2"), (3, None, None, None),
                                               (4, "Ann", 300, "ab3")], columns)
    ds = Dataset.objects.create(name="items", layer="chart", table="items")
    for pos, (col, typ) in enumerate(columns):
        DatasetColumn.objects.create(dataset=ds, name=col, position=pos, data_type=typ)
    for kind, cols, params in (
        ("not_null", ["name"], {}), ("unique", ["name"], {}), ("range", ["amount"], {"max": 100}),
        ("regex", ["code"], {"pattern": "^[A-Z]{2}[0-9]$"}), ("accepted_values", ["name"], {"values": ["Ann", "Zoë"]}),
    ):
        Check.objects.create(dataset=ds, kind=kind, columns=cols, params=params, severity="warn", name=f"{kind}_{cols[0]}")
    run = run_checks(ds, trigger=CheckRun.Trigger.CLI)
    assert run.status != CheckRun.Status.RUNNING
    errors = [r.message for r in run.results.all() if r.outcome == "error"]
    assert not errors, errors[0]
    got = {r.check_name: (r.outcome, r.failing_rows) for r in run.results.all()}
    assert got == {
        "not_null_name": (Outcome.WARN, 1), "unique_name": (Outcome.WARN, 2), "range_amount": (Outcome.WARN, 1),
        "regex_code": (Outcome.WARN, 1), "accepted_values_name": (Outcome.PASS, 0),
    }
    # the five checks share one scan (one Spark job); the rest are the failing checks' sample queries
    assert len({r.query_group for r in run.results.all()}) == 1
    assert run.queries <= 2 + 4


def test_hash_policies_write_the_same_keyed_pseudonym_as_python(spark_wh, settings):
    """The key's pads live in atlas.pii_keys (bound, never in SQL text); atlas.pii_hmac is HMAC-SHA256."""
    import hashlib
    import hmac

    from compliance.policies import apply_hash_policies

    settings.PII_HASH_KEY = "a-test-key-of-some-length"
    stage(spark_wh, "chart", "people__r1a1_stg", "SELECT 1 AS id, 'ann@example.com' AS email UNION ALL SELECT 2, NULL")
    apply_hash_policies(spark_wh, "chart", "people__r1a1_stg", ["email"])
    apply_hash_policies(spark_wh, "chart", "people__r1a1_stg", [])  # nothing to hash: the table as it was
    with spark_wh.cursor() as cur:
        got = cur.execute("SELECT id, email FROM chart.people__r1a1_stg ORDER BY id").fetchall()
    expected = hmac.new(settings.PII_HASH_KEY.encode(), b"ann@example.com", hashlib.sha256).hexdigest()
    assert got == [(1, expected), (2, None)]
    with spark_wh.cursor() as cur:
        assert cur.execute("SELECT count(*) FROM atlas.pii_keys").fetchone() == (1,)


def test_anonymised_values_are_written_back_exactly_on_spark(spark_wh):
    """Spark has no UPDATE: the pairs go over as one DataFrame and the staged table is rewritten through a join."""
    from compliance.tests.test_free_text import check_replace_values

    check_replace_values(spark_wh, "notes_stg")


# --- commands in one round trip (SparkWarehouse._command) ---------------------------------------

def test_a_command_sent_once_leaves_what_the_collected_way_leaves(spark_wh):
    """DDL and INSERT through ``_command`` (no collect) run at once and leave the same tables and rows as ``_run``."""
    wh = spark_wh
    for run, table in ((wh._command, "by_command"), (wh._run, "by_run")):
        run(f"CREATE TABLE `chart`.`{table}` (id BIGINT, v STRING) USING parquet")
        run(f"INSERT INTO `chart`.`{table}` VALUES (?, ?), (?, ?)", [1, "a", 2, None])
        run(f"ALTER TABLE `chart`.`{table}` RENAME TO `chart`.`{table}_kept`")
        run(f"CREATE TABLE `chart`.`{table}_dropped` USING parquet AS SELECT 1 AS one")
        run(f"DROP TABLE `chart`.`{table}_dropped`")
    assert set(wh._tables("chart")) == {"by_command_kept", "by_run_kept"}
    by_command = wh._run("SELECT * FROM `chart`.`by_command_kept` ORDER BY id")
    assert by_command == wh._run("SELECT * FROM `chart`.`by_run_kept` ORDER BY id") == [(1, "a"), (2, None)]
    with pytest.raises(WarehouseError, match="already exists"):  # raised when sent, as _run raises it
        wh._command("CREATE TABLE `chart`.`by_command_kept` (id BIGINT) USING parquet")


@pytest.mark.parametrize("sql", ["SELECT 1", "SHOW TABLES IN chart", "DESCRIBE TABLE chart.t", "WITH x AS (SELECT 1) SELECT * FROM x"])
def test_a_query_is_refused_as_a_command_before_anything_is_sent(sql):
    """A query sent without collecting would not run: ``_command`` refuses it (no server needed)."""
    wh = SparkWarehouse("sc://127.0.0.1:9")
    with pytest.raises(ValueError, match="not a command"):
        wh._command(sql)
    assert wh._session is None
