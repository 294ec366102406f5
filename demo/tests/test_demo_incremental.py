"""The demo's refine steps are incremental (issue 20): after an append they read the new batches only,
and every table the demo publishes is the same as a full refresh of the same files makes."""

from __future__ import annotations

import csv
import io

import pytest
from django.conf import settings
from django.core.management import call_command

from demo.install import PIPELINE
from pipelines import incremental
from pipelines.models import Dataset, Pipeline, RunStatus, Source
from pipelines.tests.conftest import run_now

REFINES = ("refine_customers", "refine_orders", "refine_order_items", "refine_payments")


def _append(name: str, out: str, *, shift: int, updated: int) -> None:
    """A new file of ``name``'s first rows: ``updated`` of them as they are (the same keys loaded again, edited),
    the rest under new ids (``shift`` added to the first column)."""
    demo = settings.ATLAS_DEMO_DIR
    reader = csv.reader(io.StringIO((demo / name).read_text(encoding="utf-8", errors="replace")))
    header = next(reader)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    rows = [r for r in reader if r and r[0].strip().isdigit() and len(r) == len(header)][:30]
    for i, row in enumerate(rows):
        if i >= updated:
            row[0] = str(int(row[0]) + shift)
        elif "status" in header:
            row[header.index("status")] = "shipped"
        writer.writerow(row)
    (demo / out).write_text(buf.getvalue(), encoding="utf-8")


def published(wh) -> dict[str, list[tuple]]:
    out = {}
    for ds in Dataset.objects.filter(layer__in=("chart", "navigate")).order_by("name"):
        with wh.cursor() as cur:
            rows = cur.execute(f'SELECT * FROM {ds.layer}."{ds.table}"').fetchall()
        out[ds.qualified_table] = sorted(rows, key=repr)
    return out


@pytest.mark.slow
@pytest.mark.step_hooks  # the default hooks: the checks that drop rows and the policies that hash columns
def test_an_append_is_read_incrementally_and_the_demo_publishes_what_a_full_refresh_does(wh, settings):
    settings.PII_SCAN_AFTER_INGEST = False
    call_command("load_demo", "--rows", "300")
    for source in Source.objects.filter(name__in=("demo_orders", "demo_order_items")):
        stem, ext = source.location.rsplit(".", 1)
        source.location = f"{stem}*.{ext}"
        source.save()
    pipeline = Pipeline.objects.get(name=PIPELINE)
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    _append("orders.csv", "orders_new.csv", shift=100_000, updated=5)
    _append("order_items.csv", "order_items_new.csv", shift=100_000, updated=5)

    run = run_now(pipeline)

    assert run.status == RunStatus.SUCCEEDED, run.error
    plans = {sr.step_name: sr.details.get(incremental.DETAILS) for sr in run.step_runs.filter(step_name__in=REFINES)}
    assert plans["refine_orders"]["mode"] == "incremental" and plans["refine_orders"]["batches"] == 1
    assert plans["refine_order_items"]["mode"] == "incremental"
    assert plans["refine_customers"]["reason"] == "0 new batches of explore.customers"
    aggregates = {sr.step_name: sr.details.get(incremental.DETAILS)
                  for sr in run.step_runs.filter(step_name__in=("daily_revenue", "customer_lifetime_value"))}
    assert aggregates["daily_revenue"]["reason"] == "affected groups of chart.order_items, chart.orders (merged by key)"
    assert aggregates["customer_lifetime_value"]["mode"] == "incremental", aggregates
    after_append = published(wh)
    full = run_now(pipeline, full_refresh=True)
    assert full.status == RunStatus.SUCCEEDED, full.error
    assert published(wh) == after_append
