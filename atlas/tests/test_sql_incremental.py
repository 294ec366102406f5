"""The incremental rewrite (atlas.sql.incremental): only what is provably the full recomputation, else why not."""

from __future__ import annotations

import pytest

from atlas.sql.incremental import NotIncremental, rewrite

LATEST = ("SELECT DISTINCT ON (id) id, v FROM {src} ORDER BY id, _ingested_at DESC, _row_number DESC")


def _rewrite(sql: str, batches=("b0123456789abcdef",)) -> str:
    return rewrite(sql, keys=["id"], layer="explore", table="t", batches=list(batches))


def test_the_input_reads_only_the_new_batches_under_its_alias():
    out = _rewrite(LATEST.format(src="explore.t AS x JOIN chart.d ON d.k = x.k"))
    assert "FROM (SELECT * FROM explore.t WHERE _batch_id IN ('b0123456789abcdef')) AS x JOIN chart.d" in out


def test_through_with_queries_and_from_subqueries_read_once():
    sql = ("WITH a AS (SELECT id, v, _ingested_at, _row_number FROM explore.t WHERE v > 0),"
           " b AS (SELECT * FROM (SELECT * FROM a) AS s) "
           "SELECT DISTINCT ON (id) id, v FROM b ORDER BY id, _ingested_at DESC")
    assert "FROM (SELECT * FROM explore.t WHERE _batch_id IN (" in _rewrite(sql)


def test_no_new_batch_reads_nothing():
    assert "WHERE FALSE" in _rewrite(LATEST.format(src="explore.t"), batches=())


@pytest.mark.parametrize(("sql", "reason"), [
    (LATEST.format(src="chart.d JOIN explore.t ON t.k = d.k"), "explore.t is joined to another table"),
    (LATEST.format(src="explore.t LEFT JOIN explore.t AS u ON u.id = t.id"), "explore.t is read 2 times"),
    (LATEST.format(src="explore.t FULL JOIN chart.d ON d.k = t.k"), "a FULL JOIN, which adds rows"),
    (LATEST.format(src="chart.d WHERE k IN (SELECT k FROM explore.t)"), "explore.t is read inside a subquery"),
    ("WITH a AS (SELECT * FROM explore.t) SELECT DISTINCT ON (id) id FROM a WHERE id IN (SELECT id FROM a)"
     " ORDER BY id, _ingested_at DESC", "the WITH query a over explore.t is read 2 times"),
    ("WITH a AS (SELECT id, now() AS _ingested_at FROM explore.t) SELECT DISTINCT ON (id) id FROM a"
     " ORDER BY id, _ingested_at DESC", "_ingested_at is computed"),
    ("SELECT DISTINCT ON (id) id FROM explore.t ORDER BY id, _ingested_at", "the latest load first"),
    ("SELECT DISTINCT ON (id) id FROM explore.t ORDER BY id, _ingested_at DESC LIMIT 5", "LIMIT or OFFSET"),
    ("SELECT DISTINCT ON (id) id FROM (SELECT DISTINCT * FROM explore.t) AS s ORDER BY id, _ingested_at DESC",
     "DISTINCT inside the query"),
    ("SELECT id FROM explore.t UNION ALL SELECT id FROM explore.t", "the query is a UNION"),
    ("SELECT DISTINCT ON (id) id, sum(v) OVER (PARTITION BY id) FROM explore.t ORDER BY id, _ingested_at DESC",
     "a window function"),
])
def test_what_is_not_provably_exact_is_refused_with_its_reason(sql, reason):
    with pytest.raises(NotIncremental, match=reason.replace("(", r"\(")):
        _rewrite(sql)


def test_a_batch_id_that_is_not_atlas_s_own_is_refused():
    with pytest.raises(NotIncremental, match="no valid id"):
        _rewrite(LATEST.format(src="explore.t"), batches=["b1') OR (TRUE"])


def test_the_rewrite_transpiles_to_spark_sql_reading_only_the_new_batches():
    """Issue 21: on Spark the rewritten SELECT runs as Spark SQL (DISTINCT ON as a row_number() window)."""
    import sqlglot
    from sqlglot import exp

    from atlas.sql.transpile import to_spark

    sql = ("WITH typed AS (SELECT CAST(trim(id) AS integer) AS id, lower(v) AS v, _ingested_at, _row_number"
           " FROM explore.t AS x WHERE coalesce(v, '') <> 'ignore')"
           " SELECT DISTINCT ON (id) id, v FROM typed ORDER BY id, _ingested_at DESC, _row_number DESC")
    types = {("explore", "t"): {"id": "text", "v": "text", "_batch_id": "text", "_row_number": "bigint",
                                "_ingested_at": "timestamp with time zone"}}
    spark = to_spark(_rewrite(sql, batches=("b01", "b02")), types)

    tree = sqlglot.parse_one(spark, read="spark")
    (batches,) = [n for n in tree.find_all(exp.In) if n.this.name == "_batch_id"]
    assert [e.name for e in batches.expressions] == ["b01", "b02"]
    assert any(isinstance(w.this, exp.RowNumber) for w in tree.find_all(exp.Window))
    assert "DISTINCT ON" not in spark.upper()
