"""The PostgreSQL warehouse reads a table's columns and existence from pg_catalog: the same answers as information_schema.

``PostgresWarehouse.columns`` and ``table_exists`` skip planning information_schema's views (a
dozen joins, about a millisecond of the server's CPU per call, several calls per run). Each is
compared here with the generic way (``Warehouse.columns`` / ``table_exists``: the views), on every
kind of relation and column type a warehouse may hold — domains, arrays, enums, composites, not
null, dropped columns, views, partitions, materialized views and sequences (which the views leave
out) — and as a role that may read only some of them. The embedded engine keeps the generic way
(its own tests cover it).
"""

from __future__ import annotations

import uuid

import pytest

from atlas.warehouse.base import Warehouse

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TYPES = [
    "integer", "bigint", "smallint", "text", "varchar(5)", "character(3)", "numeric(10,2)", "numeric",
    "double precision", "real", "boolean", "date", "timestamp", "timestamp(3) with time zone", "time",
    "time with time zone", "interval", "json", "jsonb", "uuid", "bytea", "integer[]", "text[][]", "inet",
    "bit(3)", "varbit", "tsvector", "point", "money", "oid", "name", "\"char\"",
]


@pytest.fixture
def catalogue(wh):
    if wh.vendor != "postgresql":
        pytest.skip("PostgreSQL warehouse only")
    schema = f"cat_{uuid.uuid4().hex[:8]}"
    columns = ", ".join(f"c{i} {t}" for i, t in enumerate(TYPES))
    with wh.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
        cur.execute(f"CREATE DOMAIN {schema}.positive AS integer NOT NULL CHECK (VALUE > 0)")
        cur.execute(f"CREATE DOMAIN {schema}.short AS varchar(10)")
        cur.execute(f"CREATE DOMAIN {schema}.ints AS integer[]")
        cur.execute(f"CREATE DOMAIN {schema}.nested AS {schema}.short")
        cur.execute(f"CREATE TYPE {schema}.mood AS ENUM ('ok', 'sad')")
        cur.execute(f"CREATE TYPE {schema}.pair AS (a integer, b text)")
        cur.execute(f"CREATE TABLE {schema}.wide ({columns}, d1 {schema}.positive, d2 {schema}.short,"
                    f" d3 {schema}.ints, d4 {schema}.nested, e {schema}.mood, p {schema}.pair,"
                    f" moods {schema}.mood[], nn integer NOT NULL, gone integer, \"Mixed Case\" text)")
        cur.execute(f"ALTER TABLE {schema}.wide DROP COLUMN gone")
        cur.execute(f"CREATE VIEW {schema}.a_view AS SELECT c0, c1 FROM {schema}.wide")
        cur.execute(f"CREATE TABLE {schema}.parted (k integer NOT NULL, v text) PARTITION BY RANGE (k)")
        cur.execute(f"CREATE TABLE {schema}.part_1 PARTITION OF {schema}.parted FOR VALUES FROM (0) TO (10)")
        cur.execute(f"CREATE MATERIALIZED VIEW {schema}.a_matview AS SELECT c0 FROM {schema}.wide")
        cur.execute(f"CREATE SEQUENCE {schema}.a_sequence")
        cur.execute(f"CREATE TABLE {schema}.\"Quoted Name\" (x integer)")
    names = ["wide", "a_view", "parted", "part_1", "a_matview", "a_sequence", "Quoted Name", "missing", "WIDE"]
    yield wh, schema, names
    with wh.cursor() as cur:
        cur.execute(f"DROP SCHEMA {schema} CASCADE")


def both_ways(wh, schema: str, names: list[str]) -> list[tuple]:
    return [
        (name, wh.columns(schema, name), Warehouse.columns(wh, schema, name),
         wh.table_exists(schema, name), Warehouse.table_exists(wh, schema, name))
        for name in names
    ]


def test_columns_and_existence_from_pg_catalog_are_information_schemas(catalogue):
    wh, schema, names = catalogue
    answers = both_ways(wh, schema, names)
    for name, fast, views, exists_fast, exists_views in answers:
        assert fast == views, name
        assert exists_fast == exists_views, name
    by_name = {a[0]: a for a in answers}
    wide = {c.name: c for c in by_name["wide"][1]}
    # Not vacuous: the kinds of answers the views give are all there.
    assert {"array", "user-defined", "integer", "character varying", "numeric"} <= {c.type for c in wide.values()}
    assert wide["d1"].nullable is False and wide["nn"].nullable is False and wide["c0"].nullable is True
    assert wide["d3"].type == "array" and wide["d2"].type == "character varying"
    assert wide["d4"].type == wide["e"].type == "user-defined"  # a domain over a domain, an enum
    assert "gone" not in wide and "Mixed Case" in wide
    assert [a[3] for a in answers] == [True, True, True, True, False, False, True, False, False]
    assert wh.columns(schema, "missing") == [] and wh.columns(schema, "a_matview") == []


def test_a_role_sees_only_what_it_may_use_either_way(catalogue):
    """information_schema hides what the current role may not use: so does the pg_catalog read."""
    wh, schema, names = catalogue
    role = f"cat_reader_{uuid.uuid4().hex[:8]}"
    with wh.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} NOLOGIN")
        cur.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        cur.execute(f"GRANT SELECT (c0, c3) ON {schema}.wide TO {role}")  # two columns of one table
        cur.execute(f"GRANT SELECT ON {schema}.a_view TO {role}")
    try:
        with wh.cursor() as cur:
            cur.execute(f"SET ROLE {role}")
        try:
            answers = both_ways(wh, schema, names)
        finally:
            with wh.cursor() as cur:
                cur.execute("RESET ROLE")
        for name, fast, views, exists_fast, exists_views in answers:
            assert fast == views, name
            assert exists_fast == exists_views, name
        by_name = {a[0]: a for a in answers}
        assert [c.name for c in by_name["wide"][1]] == ["c0", "c3"]
        assert by_name["parted"][1] == [] and by_name["parted"][3] is False
        assert by_name["a_view"][3] is True
    finally:
        with wh.cursor() as cur:
            cur.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}")
            cur.execute(f"REVOKE ALL ON SCHEMA {schema} FROM {role}")
            cur.execute(f"DROP ROLE {role}")


def test_the_schemas_check_from_pg_catalog_is_information_schemas(wh):
    """Every step asks whether the layers' schemas and Atlas's own tables are there: the same answer either way."""
    if wh.vendor != "postgresql":
        pytest.skip("PostgreSQL warehouse only")
    assert wh._schemas_present() is Warehouse._schemas_present(wh) is True
    with wh.cursor() as cur:
        cur.execute("ALTER TABLE atlas.published_steps RENAME TO published_steps_away")
    try:
        assert wh._schemas_present() is Warehouse._schemas_present(wh) is False
    finally:
        with wh.cursor() as cur:
            cur.execute("ALTER TABLE atlas.published_steps_away RENAME TO published_steps")
    with wh.cursor() as cur:
        cur.execute("ALTER SCHEMA navigate RENAME TO navigate_away")
    try:
        assert wh._schemas_present() is Warehouse._schemas_present(wh) is False
    finally:
        with wh.cursor() as cur:
            cur.execute("ALTER SCHEMA navigate_away RENAME TO navigate")
    assert wh._schemas_present() is True
