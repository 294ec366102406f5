"""Retention by load date on the Spark warehouse (issue 21): whole parts dropped, exact counts.

On Spark an Explore dataset is a view over one Parquet part per loaded file, whose rows share
their ``_ingested_at`` (``atlas/warehouse/sparkparts.py``). A policy on ``_ingested_at`` drops the
expired parts from the view, as PostgreSQL drops batch partitions: no rewrite of what stays.
Ages come from the real loads (a second file loaded after the first), never from UPDATEs.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from atlas.tests.plugin import run_now
from pipelines.models import Dataset, Pipeline, Source, Step
from retention import services
from retention.models import RetentionPolicy, RetentionRun

pytestmark = pytest.mark.slow


@pytest.fixture
def two_loads(spark_wh, make_csv):
    """explore.visits loaded from two files, one run each: (dataset, [(batch, loaded at)] oldest first)."""
    wh = spark_wh
    raw = Dataset.objects.create(name="raw_visits", layer="explore", table="visits")
    pipeline = Pipeline.objects.create(name="load_visits")
    first = make_csv("id\n1\n2\n3\n", "visits/a.csv")
    source = Source.objects.create(name="visits", location=str(first.parent / "*.csv"))
    Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=source, output=raw, write_mode="append")
    assert run_now(pipeline).status == "succeeded"
    make_csv("id\n4\n5\n", "visits/b.csv")
    assert run_now(pipeline).status == "succeeded"
    with wh.cursor() as cur:
        loads = cur.execute(
            "SELECT _batch_id, min(_ingested_at), max(_ingested_at) FROM explore.visits GROUP BY _batch_id ORDER BY 2"
        ).fetchall()
    assert len(loads) == 2 and all(lo == hi for _, lo, hi in loads)  # one load time per batch
    assert loads[0][1] < loads[1][1]
    return raw, [(b, at) for b, at, _ in loads]


def ids(wh) -> list[str]:
    with wh.cursor() as cur:
        return sorted(r[0] for r in cur.execute("SELECT id FROM explore.visits").fetchall())


def test_on_spark_expired_loads_are_dropped_as_whole_parts_and_the_rest_is_untouched(spark_wh, two_loads):
    wh = spark_wh
    raw, loads = two_loads
    parts = wh._parts("explore", "visits")
    assert len(parts) == 2
    policy = services.save_policy(RetentionPolicy(dataset=raw, column="_ingested_at", period_days=30))
    now = loads[1][1] + timedelta(days=30)  # the cutoff is the second load's time: it stays (not strictly older)
    services.refresh_status(policy, now=now)
    assert (policy.status, policy.expired_rows) == ("overdue", 3)
    run = services.apply_policy(policy, now=now)
    assert run.status == RetentionRun.Status.SUCCEEDED, run.error
    assert (run.method, run.partitions_dropped, run.rows_removed) == ("partition drop", 1, 3)
    assert run.details["batches_expired"] == [loads[0][0]]
    assert ids(wh) == ["4", "5"]
    left = wh._parts("explore", "visits")
    assert len(left) == 1 and left[0] in parts  # the live part is the same table: nothing rewritten
    assert not wh.table_exists("explore", next(p for p in parts if p not in left))  # dropped, not emptied
    assert wh.loaded_batch("explore.visits", raw.batches.get(batch_id=loads[0][0], status="loaded").checksum) is None
    # everything expires: the view stays, empty, with its columns
    run = services.apply_policy(policy, now=loads[1][1] + timedelta(days=31))
    assert (run.partitions_dropped, run.rows_removed) == (1, 2)
    assert ids(wh) == [] and "id" in {c.name for c in wh.columns("explore", "visits")}


def test_on_spark_a_part_straddling_the_cutoff_is_rewritten_without_its_expired_rows(spark_wh, two_loads):
    wh = spark_wh
    raw, loads = two_loads
    # not something an ingest produces: one part whose rows have two load times
    part = wh._new_part("visits")
    wh._run(
        f"CREATE TABLE {wh.sq('explore', part)} USING parquet AS SELECT /*+ COALESCE(1) */ * FROM"
        " (SELECT * FROM explore.visits WHERE id IN ('1', '4') ORDER BY id) AS v"  # the old row first: read first
    )
    wh._swap("explore", "visits", [part], wh.columns("explore", "visits"))
    policy = services.save_policy(RetentionPolicy(dataset=raw, column="_ingested_at", period_days=30))
    run = services.apply_policy(policy, now=loads[1][1] + timedelta(days=30))
    assert (run.partitions_dropped, run.rows_removed) == (0, 1)
    assert run.details["straddling_partitions"] == [part]
    assert ids(wh) == ["4"]


def test_on_spark_a_delete_rewrites_only_the_parts_holding_the_rows(spark_wh, two_loads):
    wh = spark_wh
    parts = wh._parts("explore", "visits")
    with wh.transaction() as cur:
        removed = wh.ops.delete(cur, "DELETE FROM explore.visits WHERE id IN (%s, %s)", ["4", "5"])
    assert removed == 2 and ids(wh) == ["1", "2", "3"]
    after = wh._parts("explore", "visits")
    assert after[0] == parts[0] and after[1] not in parts  # the first load's part was not rewritten
    with wh.transaction() as cur:
        assert wh.ops.delete(cur, "DELETE FROM explore.visits WHERE id = %s", ["9"]) == 0
    assert wh._parts("explore", "visits") == after  # nothing matched: nothing written
