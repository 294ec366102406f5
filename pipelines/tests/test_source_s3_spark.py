"""Object storage sources on the Spark warehouse (issue 21), against the real local S3 server (moto) and Spark server.

The worker lists the bucket and streams each object to a temporary file (``pipelines.objectstore``).
A Spark Connect server on this machine reads that file with Spark's own reader; a server elsewhere
(a cluster, a hosted Spark) never sees the worker's files, so the worker parses the object with
DuckDB and sends its rows to Spark as Arrow, in chunks (``SparkWarehouse.load_file_parsed``). Both
paths give the same rows, row numbers and quarantine. Spark's own ``s3a://`` reader is not used: it
needs the hadoop-aws jars, which no package registry ships (docs/scaling.md says what a cluster sets).
"""

from __future__ import annotations

import gzip

import pytest

from atlas.tests.plugin import explore_rows, quarantine_rows, run_now
from atlas.warehouse import sparkingest
from pipelines.models import RunStatus

from .connector_fixtures import s3_options
from .test_source_s3 import bucket

pytestmark = pytest.mark.slow

OBJECTS = {
    "daily/2026-01-01.csv.gz": gzip.compress(b"id,name\n1,Ann\n2,Bob,extra\n3,Cy\n4,Di\n5,Ed\n"),
    "daily/2026-01-02.csv": b"id,name\n6,Flo\n",
}
ROWS = [("1", "Ann", 1), ("3", "Cy", 2), ("4", "Di", 3), ("5", "Ed", 4), ("6", "Flo", 1)]


def load(ingest_pipeline, endpoint: str, table: str):
    pipeline = ingest_pipeline(kind="s3", location="s3://exports/daily/*", options=s3_options(endpoint), table=table,
                               step={"max_rejected_share": 0.5})
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run.step_runs.get()


def test_an_s3_glob_loads_on_spark_read_by_spark_here_and_by_the_worker_for_a_server_elsewhere(
    spark_wh, s3, s3_endpoint, ingest_pipeline, settings, monkeypatch,
):
    bucket(s3, "exports", OBJECTS)

    here = load(ingest_pipeline, s3_endpoint, "here")
    assert set(here.details["readers"].values()) == {"Spark's own CSV reader, in parallel on the Spark server"}

    # A server elsewhere cannot open the worker's temporary file: the worker parses it and ships Arrow chunks
    # (of 2 rows here, so a file takes several and its row numbers must still follow on).
    monkeypatch.setattr(sparkingest, "server_is_local", lambda url: False)
    settings.ATLAS_SPARK_ARROW_ROWS = 2
    elsewhere = load(ingest_pipeline, s3_endpoint, "elsewhere")
    readers = set(elsewhere.details["readers"].values())
    assert readers == {"DuckDB's parser in the Atlas process, rows sent to Spark as Arrow:"
                       " the Spark server does not share this machine's files"}

    for step, table in ((here, "here"), (elsewhere, "elsewhere")):
        assert (step.rows_out, step.rows_rejected) == (5, 1), table
        assert sorted(step.batches.values_list("file", flat=True)) == [
            "s3://exports/daily/2026-01-01.csv.gz", "s3://exports/daily/2026-01-02.csv"]
        assert sorted(explore_rows(spark_wh, table, "id, name, _row_number")) == ROWS, table
        ((line, _reason, raw),) = quarantine_rows(spark_wh, table)
        assert (line, raw) == (3, "2,Bob,extra"), table
