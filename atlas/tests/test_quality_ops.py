"""What the quality checks ask of a warehouse backend, asked of each engine (and of a third one)."""

from __future__ import annotations

import pytest

from atlas.warehouse.errors import NotSupported
from atlas.warehouse.quality_ops import QualityOps, portable_regex_problem, re2_problem, type_family


@pytest.mark.parametrize(
    ("name", "family"),
    [("DECIMAL(12,2)", "decimal"), ("numeric", "decimal"), ("BIGINT", "integer"), ("character varying(20)", "text"),
     ("TIMESTAMP WITH TIME ZONE", "timestamptz"), ("double precision", "float"), ("geometry", "geometry")],
)
def test_type_family(name, family):
    assert type_family(name) == family


def test_regex_match_is_said_by_each_engine(wh):
    with wh.cursor() as cur:
        sql = f"SELECT {wh.regex_match(wh.cast_text('x'))} FROM (SELECT 'AB1' AS x) AS t"
        assert cur.execute(sql, ["^[A-Z]{2}[0-9]$"]).fetchone()[0] is True
        assert cur.execute(sql, ["^[a-z]+$"]).fetchone()[0] is False


def test_a_regex_valid_on_one_engine_only_is_refused_on_every_engine(wh):
    assert "DuckDB (RE2)" in re2_problem(r"(a)\1")
    assert "DuckDB (RE2)" in portable_regex_problem(r"(?<=a)b")
    assert portable_regex_problem("^[A-Z]{3}$") is None
    assert wh.regex_problem("^[A-Z]{3}$") is None


def test_postgresql_reports_what_it_refuses(wh):
    if wh.vendor != "postgresql":
        pytest.skip("PostgreSQL's regex engine answers on PostgreSQL")
    assert wh.regex_problem(r"(a)\1") is None  # PostgreSQL has backreferences; DuckDB does not
    assert "not valid for PostgreSQL" in wh.regex_problem("a{2,1}")


def test_several_key_columns_become_one_key_where_the_engine_has_one(wh):
    key = wh.unique_key(["k", "t"], ["integer", "VARCHAR"])
    if wh.features_key_bitmaps:  # DuckDB: one 64-bit hash, also for floats (its hash is canonical)
        assert key == 'hash("k", "t")' and wh.unique_key(["x"], ["double"]) == 'hash("x")'
    else:  # PostgreSQL: one text key, only where the text form is canonical
        assert key == '(CAST("k" AS text) || chr(31) || CAST("t" AS text)) COLLATE "C"'
        assert wh.unique_key(["x"], ["double precision"]) is None
        assert wh.unique_key(["a", "b"], ["integer", "smallint"]) == (
            '((CAST("a" AS bigint) << 32) | (CAST("b" AS bigint) & 4294967295))'
        )
        assert wh.unique_key(["a", "b"], ["bigint", "integer"]).endswith('COLLATE "C"')  # 64 bits do not pack
    assert wh.unique_key(["j"], ["json"]) is None


def test_packed_integer_keys_count_duplicates_exactly_at_the_edges(wh):
    """Negative, zero and extreme 32-bit values: (a, b) pairs that share a half never collide."""
    edges = [-2147483648, -1, 0, 1, 2147483647]
    rows = [(a, b) for a in edges for b in edges] + [(-1, 0), (0, -1), (2147483647, -2147483648)]
    key = wh.unique_key(["a", "b"], ["integer", "integer"])  # PostgreSQL: packed; DuckDB: hash()
    with wh.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS chart.pairs")
        cur.execute("CREATE TABLE chart.pairs (a integer, b integer)")
        cur.execute("INSERT INTO chart.pairs VALUES " + ", ".join(f"({a}, {b})" for a, b in rows))
        surplus = cur.execute(f"SELECT count({key}) - count(DISTINCT {key}) FROM chart.pairs").fetchone()[0]
    assert surplus == len(rows) - len(set(rows)) == 3


def test_key_bitmaps_only_where_the_engine_has_them(wh):
    assert wh.is_bitmap_type("BIGINT") is wh.features_key_bitmaps
    assert not wh.is_bitmap_type("numeric")
    if wh.features_key_bitmaps:
        with wh.cursor() as cur:
            cur.execute("CREATE OR REPLACE TABLE chart.keys AS SELECT * FROM (VALUES (1), (2), (2), (5)) AS t(k)")
            surplus = wh.bitmap_surplus('"k"', 1, 5, "chart.keys")
            assert cur.execute(f"SELECT {surplus}").fetchone()[0] == 1


class ThirdEngine(QualityOps):
    """A backend that says only what every engine says: the checks still compile, without shortcuts."""

    quote = staticmethod(lambda name: f"`{name}`")


def test_a_third_backend_gets_standard_sql_and_no_shortcuts():
    engine = ThirdEngine()
    assert engine.cast_text("x") == "CAST(x AS text)"
    assert engine.unique_key(["a", "b"], ["integer", "integer"]) is None
    assert not engine.features_key_bitmaps and not engine.is_bitmap_type("bigint")
    assert engine.regex_problem("(a)\\1") is None
    with pytest.raises(NotSupported, match="no key bitmaps"):
        engine.bitmap_surplus("k", 0, 1, "t")
