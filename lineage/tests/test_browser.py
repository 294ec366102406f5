"""The lineage picture in a real headless Chromium: nodes, edges, columns, PII, depth control."""

import os

import pytest

from lineage import graph
from lineage.models import LineageNode

from .conftest import run_now

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_lineage_page_draws_datasets_edges_columns_and_pii(browser_page, wh, simple_pipeline, lineage_hook):
    page, url = browser_page
    run_now(simple_pipeline())
    graph.mark_pii("raw_people", "amount", "SALARY")
    node = LineageNode.objects.get(name="chart.people", column="")
    page.goto(f"{url}/admin/lineage/lineagenode/{node.pk}/graph/")
    page.wait_for_selector("g.lineage-node")
    names = page.eval_on_selector_all("g.lineage-node", "els => els.map(e => e.dataset.name)")
    assert {"explore.people", "chart.people", "navigate.people_total"} <= set(names)
    assert page.locator("path.lineage-edge").count() >= 3  # source -> explore -> chart -> navigate
    assert page.locator("g.lineage-node.root g.lineage-column").count() == 3  # the root starts expanded
    assert page.locator("g.lineage-node .run-status").count() >= 3
    page.click("#lineage-expand-all")
    assert page.locator("path.lineage-column-edge").count() > 0
    assert page.locator("path.lineage-column-edge.pii").count() > 0
    pii_rows = page.eval_on_selector_all("g.lineage-column:has(rect.pii)", "els => els.map(e => e.dataset.column)")
    assert set(pii_rows) == {"amount"} and len(pii_rows) == 3  # flagged in explore, carried to chart and navigate
    os.makedirs("var/screenshots", exist_ok=True)
    page.screenshot(path="var/screenshots/lineage.png", full_page=True)
    page.fill("#lineage-depth", "0")
    page.dispatch_event("#lineage-depth", "change")
    page.wait_for_function("() => document.querySelectorAll('g.lineage-node').length === 1")
    page.select_option("#lineage-direction", "downstream")
    page.fill("#lineage-depth", "3")
    page.dispatch_event("#lineage-depth", "change")
    page.wait_for_function("() => document.querySelectorAll('g.lineage-node').length === 2")
    page.wait_for_timeout(300)  # a late answer to an earlier change must not redraw over it
    assert page.locator("g.lineage-node").count() == 2
    page.click("g.lineage-node.root text.title")
    page.wait_for_url(f"{url}/admin/pipelines/dataset/{node.dataset_id}/change/")
    # ... and the dataset's page links back to its lineage
    page.click("#atlas-lineage-link")
    page.wait_for_url(f"{url}/admin/lineage/lineagenode/{node.pk}/graph/")
    page.wait_for_selector("g.lineage-node.root")
