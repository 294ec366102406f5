"""The local Spark Connect server's metastore service, and what each request costs (issue 21: CI time).

The test suite's server keeps its catalogue in Hive's metastore run as a service of its own
(``atlas/warehouse/java/AtlasLocalMetastore.java``): with the metastore embedded, every Spark
Connect request (a new thread each) opened a metastore session of its own. Hive's own launcher
listens on every interface; ours must listen on the loopback only. And a query is one request:
``SparkSession.sql`` sent each query twice (a command, then the same SQL to collect).

These run in the Spark pass (``make test-spark``); elsewhere they skip with that reason.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from atlas.tests.plugin import ENGINE, IN_CI
from atlas.warehouse import WarehouseError, sparklocal

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ENGINE != "spark", reason="a Spark test: runs with ATLAS_TEST_ENGINE=spark (make test-spark)"),
]


def _needs_java() -> None:
    reason = sparklocal.missing()
    if reason:
        if IN_CI:
            pytest.fail(f"CI must run the Spark tests: {reason}")
        pytest.skip(reason)


def listening_addresses(port: int) -> set[str]:
    """The local addresses a socket listens on at ``port`` (Linux's /proc/net/tcp and tcp6), as hex."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def test_the_metastore_service_listens_on_the_loopback_only_and_stops_with_its_process(tmp_path):
    """Hive's own launcher binds every interface: a catalogue anyone on the network could drop tables from."""
    _needs_java()
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp on this machine (not Linux)")
    metastore = sparklocal.start_metastore(tmp_path)
    try:
        assert metastore.url == f"thrift://127.0.0.1:{metastore.port}"
        addresses = listening_addresses(metastore.port)
        assert addresses and addresses <= LOOPBACK, addresses
        assert (tmp_path / "metastore_db").is_dir()  # its Derby catalogue, under the root it was given
    finally:
        metastore.stop()
    assert metastore.process.poll() is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and listening_addresses(metastore.port):
        time.sleep(0.2)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", metastore.port), timeout=1):
        pass


def test_without_the_metastore_service_the_test_server_embeds_its_metastore_and_says_so(tmp_path, monkeypatch, capsys):
    """A JRE has no compiler for Java's source launcher: the service exits, and the server starts as before."""
    _needs_java()
    monkeypatch.setattr(sparklocal, "METASTORE_SOURCE", tmp_path / "NotThere.java")  # the launcher exits at once
    started = []

    def start(root, *, metastore=None, **options):
        started.append(metastore)
        if metastore is not None:
            sparklocal.wait_metastore(metastore, timeout=60)
        return "a server"

    monkeypatch.setattr(sparklocal, "start", start)
    assert sparklocal.start_for_tests(tmp_path) == "a server"
    assert started[0] is not None and started[0].process.poll() is not None and started[1] is None
    assert "the Spark server embeds its metastore" in capsys.readouterr().err


def test_the_session_server_keeps_its_catalogue_in_the_metastore_service(spark_wh):
    """The test suite's server (started by ``make test`` or the session fixture) uses the service, not an embedded metastore."""
    uris = spark_wh.spark().conf.get("spark.hadoop.hive.metastore.uris", "")
    if not uris and not IN_CI:
        pytest.skip("this server embeds its metastore (started elsewhere, or the service could not start: see stderr)")
    assert uris.startswith("thrift://127.0.0.1:")


class Requests:
    """The Spark Connect requests the client sends (execute, analyse), counted."""

    def __init__(self, monkeypatch) -> None:
        from pyspark.sql.connect.client import core

        self.sent: list[str] = []
        for name, kind in (("_execute_and_fetch_as_iterator", "execute"), ("_analyze", "analyze")):
            original = getattr(core.SparkConnectClient, name)

            def counted(client, *args, _original=original, _kind=kind, **kwargs):
                self.sent.append(_kind)
                return _original(client, *args, **kwargs)

            monkeypatch.setattr(core.SparkConnectClient, name, counted)


def test_a_query_is_one_request_and_its_errors_come_where_they_came(spark_wh, monkeypatch):
    wh = spark_wh
    with wh.cursor() as cur:
        cur.execute("CREATE TABLE chart.seen (id integer, label text)")
        cur.executemany("INSERT INTO chart.seen VALUES (%s, %s)", [(1, "a"), (2, "b")])
    sent = Requests(monkeypatch).sent
    with wh.cursor() as cur:
        cur.execute("SELECT id, label FROM chart.seen WHERE id > %s ORDER BY id", [0])
        assert cur.column_names == ["id", "label"]
        assert cur.fetchall() == [(1, "a"), (2, "b")]
    assert sent == ["execute"]
    sent.clear()
    assert wh.row_count("chart", "seen") == 2
    assert wh.operator_query("SELECT label FROM chart.seen ORDER BY id", layer="chart") == (["label"], [("a",), ("b",)])
    assert sent == ["execute", "execute"]
    sent.clear()
    with wh.cursor() as cur:  # a command (and the rows it answers with) is one request, as before
        cur.executemany("INSERT INTO chart.seen VALUES (%s, %s)", [(3, "c")])
    assert sent == ["execute"]
    # no rows: the names are asked for (one analysis), and a query's error still comes from execute
    sent.clear()
    with wh.cursor() as cur:
        cur.execute("SELECT id FROM chart.seen WHERE id < 0")
        assert cur.fetchall() == [] and cur.column_names == ["id"]
        with pytest.raises(WarehouseError, match="TABLE_OR_VIEW_NOT_FOUND|cannot be found"):
            cur.execute("SELECT * FROM chart.no_such_table")
    # operator SQL asked for its columns only (limit 0: nothing collected): its error is still a WarehouseError
    with pytest.raises(WarehouseError, match="no_such_column"):
        wh.operator_query("SELECT no_such_column FROM chart.seen", layer="chart", limit=0)
