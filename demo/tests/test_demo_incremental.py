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


def _append(name: str, out: str, *, shift: int, updated: int, rows: int = 30) -> None:
    """A new file of ``name``'s first ``rows`` rows: ``updated`` of them as they are (the same keys loaded again,
    edited), the rest under new ids (``shift`` added to the first column)."""
    demo = settings.ATLAS_DEMO_DIR
    reader = csv.reader(io.StringIO((demo / name).read_text(encoding="utf-8", errors="replace")))
    header = next(reader)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    rows = [r for r in reader if r and r[0].strip().isdigit() and len(r) == len(header)][:rows]
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


def glob_order_sources() -> None:
    """The demo's order and order item sources read every file ``orders*.csv`` (each new file a new batch)."""
    for source in Source.objects.filter(name__in=("demo_orders", "demo_order_items")):
        stem, ext = source.location.rsplit(".", 1)
        source.location = f"{stem}*.{ext}"
        source.save()


def append_and_run_incrementally(pipeline, appended: int):
    """``appended`` orders and order items appended (the first of them edited, the rest new) and the pipeline run:
    the refines read the new batches only (their run records say incremental). The run."""
    updated = min(5, max(1, appended // 3))
    _append("orders.csv", "orders_new.csv", shift=100_000, updated=updated, rows=appended)
    _append("order_items.csv", "order_items_new.csv", shift=100_000, updated=updated, rows=appended)

    run = run_now(pipeline)

    assert run.status == RunStatus.SUCCEEDED, run.error
    plans = {sr.step_name: sr.details.get(incremental.DETAILS) for sr in run.step_runs.filter(step_name__in=REFINES)}
    assert plans["refine_orders"]["mode"] == "incremental" and plans["refine_orders"]["batches"] == 1, plans
    assert plans["refine_orders"]["rows_in"] == appended
    assert plans["refine_order_items"]["mode"] == "incremental", plans
    assert plans["refine_customers"]["reason"] == "0 new batches of explore.customers"
    return run


def append_and_compare_with_a_full_refresh(wh, settings, *, orders: int, appended: int) -> None:
    """The demo of ``orders`` orders run, ``appended`` orders and order items appended (the first of them edited,
    the rest new), run again: the refines read the new batches only, and every table equals a full refresh's."""
    settings.PII_SCAN_AFTER_INGEST = False
    call_command("load_demo", "--rows", str(orders))
    glob_order_sources()
    pipeline = Pipeline.objects.get(name=PIPELINE)
    first = run_now(pipeline)
    assert first.status == RunStatus.SUCCEEDED, first.error
    run = append_and_run_incrementally(pipeline, appended)
    # the aggregates over the merged Chart tables: affected groups only (atlas/sql/groups.py)
    aggregates = {sr.step_name: sr.details.get(incremental.DETAILS)
                  for sr in run.step_runs.filter(step_name__in=("daily_revenue", "customer_lifetime_value"))}
    assert aggregates["daily_revenue"]["reason"] == "affected groups of chart.order_items, chart.orders (merged by key)"
    assert aggregates["customer_lifetime_value"]["mode"] == "incremental", aggregates
    after_append = published(wh)
    full = run_now(pipeline, full_refresh=True)
    assert full.status == RunStatus.SUCCEEDED, full.error
    assert published(wh) == after_append


@pytest.mark.slow
@pytest.mark.step_hooks  # the default hooks: the checks that drop rows and the policies that hash columns
def test_an_append_is_read_incrementally_and_the_demo_publishes_what_a_full_refresh_does(wh, settings):
    append_and_compare_with_a_full_refresh(wh, settings, orders=300, appended=30)
