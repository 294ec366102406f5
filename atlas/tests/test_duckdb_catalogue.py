"""The embedded warehouse's catalogue lookups (DuckDB's table functions) answer as information_schema does.

``DuckDBWarehouse`` overrides ``table_exists`` and ``columns``, and the relations ``_schemas_present``
counts in, with queries on ``duckdb_tables()``, ``duckdb_views()``, ``duckdb_columns()`` and
``duckdb_schemas()`` (about half the cost a lookup: every step and every SQL validation makes them).
The base class's information_schema queries are the reference, on the same file, for every kind of
relation.
"""

from __future__ import annotations

import pytest

from atlas.warehouse.base import Warehouse
from atlas.warehouse.duckdb import DuckDBWarehouse

NAMES = [
    ("chart", "orders"),          # a table
    ("chart", "orders_v"),        # a view
    ("navigate", "orders"),       # the same name in another schema
    ("chart", "ORDERS"),          # another case: not the same name to either
    ("chart", "missing"),
    ("missing", "orders"),
    ("main", "tables"),           # a name information_schema itself has
    ("temp", "scratch"),          # a temporary table (its own catalogue)
    ("main", "scratch"),
    ("atlas", "loaded_batches"),  # Atlas's own
]


@pytest.fixture
def duck(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    wh = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    yield wh
    wh.close()


def _answers(wh, method) -> list:
    return [method(wh, schema, name) for schema, name in NAMES]


def _schemas_present_by_information_schema(wh) -> bool:
    """``_schemas_present`` counting in the base class's information_schema relations, on the same file."""
    wh.SCHEMATA_HERE, wh.TABLES_HERE_IN_SCHEMA = Warehouse.SCHEMATA_HERE, Warehouse.TABLES_HERE_IN_SCHEMA
    try:
        return wh._schemas_present()
    finally:
        del wh.SCHEMATA_HERE, wh.TABLES_HERE_IN_SCHEMA


def test_the_lookups_answer_as_information_schema_does(duck):
    assert duck.SCHEMATA_HERE != Warehouse.SCHEMATA_HERE
    assert duck._schemas_present() is _schemas_present_by_information_schema(duck) is False
    duck.ensure_schemas()
    assert duck._schemas_present() is _schemas_present_by_information_schema(duck) is True
    with duck.cursor() as cur:
        cur.execute("CREATE TABLE chart.orders (id BIGINT NOT NULL, amount DECIMAL(18,3), placed TIMESTAMPTZ, note VARCHAR)")
        cur.execute("CREATE VIEW chart.orders_v AS SELECT id, amount * 2 AS twice FROM chart.orders")
        cur.execute("CREATE TABLE navigate.orders (day DATE, n INTEGER)")
        cur.execute("CREATE TEMPORARY TABLE scratch (x DOUBLE)")
        assert _answers(duck, DuckDBWarehouse.table_exists) == _answers(duck, Warehouse.table_exists)
        assert _answers(duck, DuckDBWarehouse.table_exists)[:3] == [True, True, True]
        ours, reference = _answers(duck, DuckDBWarehouse.columns), _answers(duck, Warehouse.columns)
        assert ours == reference
        assert [(c.name, c.type, c.nullable) for c in ours[0]] == [
            ("id", "bigint", False), ("amount", "decimal(18,3)", True),
            ("placed", "timestamp with time zone", True), ("note", "varchar", True),
        ]
        cur.execute("DROP TABLE atlas.published_steps")
    assert duck._schemas_present() is _schemas_present_by_information_schema(duck) is False
