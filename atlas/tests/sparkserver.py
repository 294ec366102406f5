"""The Spark warehouse's fixtures: one local Spark Connect server per test session (issue 21).

``spark_server`` starts it from the ``pyspark`` package the first time a test asks for it
(``local[2]``, a 1 GiB driver heap, its warehouse and Derby catalog under the session's
temporary directory, a free port) and stops it at the end. Where pyspark or Java is missing
the tests skip with the reason; under ``CI=true`` they fail instead (CI installs both).
``ATLAS_TEST_SPARK_URL=sc://host:port`` uses a server already running instead of starting one.

``spark_wh``: the test's warehouse on that server, empty (the layer databases and ``atlas``
dropped and made again), with ``WAREHOUSE_URL`` pointing at it. Tests that use either run only
with ``ATLAS_TEST_ENGINE=spark`` (``make test-spark``: Django's tables on the embedded SQLite, the
warehouse on Spark; skipped with that reason in the other passes), on one xdist worker (group
``spark``), so a pass starts one server.
"""

from __future__ import annotations

import os

import pytest

from atlas.tests.plugin import ENGINE, IN_CI

SPARK_GROUP = "spark"
SPARK_FIXTURES = ("spark_server", "spark_wh", "spark_url")


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ARG001
    for item in items:
        if any(f in getattr(item, "fixturenames", ()) for f in SPARK_FIXTURES):
            item.add_marker(pytest.mark.xdist_group(SPARK_GROUP))
            if ENGINE != "spark":
                item.add_marker(pytest.mark.skip(reason="a Spark test: runs with ATLAS_TEST_ENGINE=spark (make test-spark)"))


@pytest.fixture(scope="session")
def spark_url(tmp_path_factory):
    """The URL of a Spark Connect server for this session (started here unless ATLAS_TEST_SPARK_URL names one)."""
    given = os.environ.get("ATLAS_TEST_SPARK_URL", "")
    if given:
        yield given
        return
    from atlas.warehouse import sparklocal

    reason = sparklocal.missing()
    if reason:
        if IN_CI:
            pytest.fail(f"The Spark tests cannot start a Spark Connect server: {reason}; CI must run them.")
        pytest.skip(f"No local Spark Connect server: {reason}.")
    try:
        server = sparklocal.start_for_tests(tmp_path_factory.mktemp("spark"))
    except sparklocal.SparkUnavailable as exc:
        if IN_CI:
            pytest.fail(f"The Spark Connect server did not start: {exc}")
        pytest.skip(f"The Spark Connect server did not start: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def spark_server(spark_url):
    return spark_url


@pytest.fixture
def spark_wh(spark_url, db, settings):
    """The test's Spark warehouse: empty layer databases, ``WAREHOUSE_URL`` set, retired parts dropped at once."""
    from atlas.warehouse import get_warehouse, reset_warehouses
    from atlas.warehouse.base import LAYER_SCHEMAS, META_SCHEMA

    reset_warehouses()
    settings.WAREHOUSE_URL = spark_url
    settings.ATLAS_SPARK_RETIRE_SECONDS = 0
    wh = get_warehouse()
    for schema in (*LAYER_SCHEMAS, META_SCHEMA):
        wh._command(f"DROP DATABASE IF EXISTS `{schema}` CASCADE")
    wh.ensure_schemas()
    yield wh
    reset_warehouses()
