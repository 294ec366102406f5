"""The demo's files through the connectors, by the pipeline runner, into Explore (both engines: the suite's engine).

The four demo files are put into the local S3 server (customers gzip-compressed) and loaded
by s3 sources; the same files loaded by path sources are the reference: Explore must hold the
same rows and the same quarantine. The demo's customers are also served as a paginated,
token-protected JSON API and must arrive exactly as served.
"""

from __future__ import annotations

import csv
import gzip
import json

import pytest

from demo.generator import generate
from pipelines.models import Dataset, Pipeline, RunStatus, Source, Step

from .conftest import explore_rows, quarantine_rows, run_now
from .connector_fixtures import json_answer, s3_options

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("s3")]
FILES = ("customers", "orders", "order_items", "payments")


def pipeline_of(name: str, sources: dict[str, Source]) -> Pipeline:
    pipeline = Pipeline.objects.create(name=name)
    for position, (table, source) in enumerate(sources.items()):
        source.full_clean()
        source.save()
        output = Dataset.objects.create(name=f"raw_{table}", layer="explore", table=table)
        Step.objects.create(pipeline=pipeline, name=f"ingest_{table}", kind="ingest", position=position, source=source, output=output, write_mode="append")
    return pipeline


def data_columns(wh, table: str) -> str:
    names = [c.name for c in wh.columns("explore", table)]
    return ", ".join(f'"{n}"' for n in names if n not in ("_batch_id", "_ingested_at", "_source"))


@pytest.fixture
def demo_files(tmp_path):
    return generate(tmp_path / "demo", rows=300, seed=7)


def test_the_demo_files_load_from_object_storage_as_from_paths(wh, s3, s3_endpoint, demo_files):
    s3.create_bucket(Bucket="demo-files")
    for name in FILES:
        path = getattr(demo_files, name)
        body = path.read_bytes()
        key = f"ecommerce/{path.name}" + (".gz" if name == "customers" else "")
        s3.put_object(Bucket="demo-files", Key=key, Body=gzip.compress(body) if name == "customers" else body)

    def fmt(name: str) -> str:
        return "jsonl" if name == "payments" else "csv"

    reference = pipeline_of("from_paths", {
        f"ref_{n}": Source(name=f"path_{n}", kind="path", format=fmt(n), location=str(getattr(demo_files, n))) for n in FILES
    })
    from_s3 = pipeline_of("from_s3", {
        f"s3_{n}": Source(
            name=f"s3_{n}", kind="s3", format=fmt(n),
            location=f"s3://demo-files/ecommerce/{getattr(demo_files, n).name}*", options=s3_options(s3_endpoint),
        )
        for n in FILES
    })
    for pipeline in (reference, from_s3):
        run = run_now(pipeline)
        assert run.status == RunStatus.SUCCEEDED, run.error
    for name in FILES:
        ref = sorted(explore_rows(wh, f"ref_{name}", data_columns(wh, f"ref_{name}")), key=str)
        got = sorted(explore_rows(wh, f"s3_{name}", data_columns(wh, f"s3_{name}")), key=str)
        assert len(ref) > 50 and got == ref, name
        assert quarantine_rows(wh, f"s3_{name}") == quarantine_rows(wh, f"ref_{name}"), name
    assert [b.file for b in from_s3.runs.get().step_runs.get(step_name="ingest_s3_customers").batches.all()] == [
        "s3://demo-files/ecommerce/customers.csv.gz"
    ]


def test_the_demo_customers_served_as_a_paginated_api_arrive_exactly(wh, api, monkeypatch, demo_files):
    with open(demo_files.customers, encoding="utf-8", newline="") as fh:
        customers = list(csv.DictReader(fh))
    monkeypatch.setenv("ATLAS_SOURCE_SECRET_SHOP_TOKEN", "shop-token-1")

    def page(handler, query):
        if handler.headers.get("Authorization") != "Bearer shop-token-1":
            return json_answer({"error": "unauthorised"}, 401)
        number, size = int(query["page"]), int(query["size"])
        return json_answer({"customers": customers[(number - 1) * size : number * size], "page": number})

    api.routes["/v1/customers"] = page
    pipeline = pipeline_of("from_api", {
        "api_customers": Source(
            name="shop_api", kind="api", format="jsonl", location=api.base + "/v1/customers",
            options={
                "bearer": "env:ATLAS_SOURCE_SECRET_SHOP_TOKEN", "records": "customers",
                "pagination": {"style": "page", "param": "page", "size_param": "size", "size": 40},
            },
        )
    })
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    columns = list(customers[0])
    rows = explore_rows(wh, "api_customers", ", ".join(f'"{c}"' for c in columns))
    assert [dict(zip(columns, r, strict=True)) for r in rows] == customers  # every value as served, "" kept
    assert len(api.seen) == len(customers) // 40 + 1
    assert json.dumps(api.seen[0]["query"]) == json.dumps({"page": "1", "size": "40"})
