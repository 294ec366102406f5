"""The operator's console in a real headless Chromium, on the demo: the overview and the pages it links to.

``make screenshots`` runs this module with ATLAS_SCREENSHOTS_DIR=docs/screenshots: the PNGs the README shows
are taken here, from these real runs; without it they go to a temporary directory.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from pipelines.models import Dataset, Pipeline, PipelineRun, RunStatus
from pipelines.tests.conftest import run_now

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.step_hooks]  # as make demo runs
VIEWPORT = {"width": 1360, "height": 1000}


@pytest.fixture
def demo(wh):
    call_command("load_demo", "--rows", "300", verbosity=0)
    pipeline = Pipeline.objects.get(name="ecommerce")
    runs = [run_now(pipeline), run_now(pipeline)]
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED], runs[0].error
    return pipeline, runs


@pytest.fixture
def shots(tmp_path) -> Path:
    target = Path(os.environ.get("ATLAS_SCREENSHOTS_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def test_the_overview_answers_at_a_glance_and_links_where_to_act(chromium, demo, shots):
    pipeline, runs = demo
    get_user_model().objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    page = chromium.login("operator", "s3cret-pass", viewport=VIEWPORT)
    assert page.title() == "Overview | Atlas"
    verdict = page.inner_text("#atlas-verdict")
    assert "PII findings to review" in verdict  # the demo's scan proposes findings nobody reviewed yet

    # the chart: each day's bar holds that day's runs, as segments with their numbers, and the same in the table
    days = Counter(timezone.localdate(r.created_at).strftime("%d %b") for r in runs)
    for day, count in days.items():
        bars = page.locator(f'#overview-pipelines rect.atlas-bar[data-x="{day}"]')
        assert {bars.nth(i).get_attribute("data-series"): int(bars.nth(i).get_attribute("data-value"))
                for i in range(bars.count())} == {"succeeded": count}
        box = bars.first.bounding_box()
        assert box is not None and box["height"] > 0
    page.screenshot(path=str(shots / "overview.png"))
    page.locator("#overview-pipelines details summary").click()
    for day, count in days.items():
        row = page.locator("#overview-pipelines .atlas-chart-table tr", has_text=day)
        assert row.locator("td").all_inner_texts()[:2] == [day, str(count)]
    assert "healthy" in page.inner_text("#overview-pipelines")
    assert "No endpoint configured" in page.inner_text("#overview-lineage")

    # where to act: the PII card opens the findings awaiting review
    page.locator("#overview-pii .atlas-act a").click()
    page.wait_for_url("**/admin/compliance/piifinding/?status__exact=proposed")
    assert page.locator("#result_list tbody tr").count() > 0

    # the pipeline card opens the pipeline, its run and the dataset pages
    page.goto(f"{chromium.url}/admin/")
    page.locator("#overview-pipelines").get_by_role("link", name="ecommerce").click()
    page.wait_for_url(f"**/admin/pipelines/pipeline/{pipeline.pk}/change/")
    assert page.locator("#pipeline-history circle[data-series=duration]").count() == 2  # the demo's two runs
    page.screenshot(path=str(shots / "pipeline.png"))
    page.goto(f"{chromium.url}/admin/")
    page.locator("#overview-pipelines").get_by_role("link", name=f"#{runs[-1].pk}").click()
    page.wait_for_url(f"**/admin/pipelines/pipelinerun/{runs[-1].pk}/change/")
    assert "Succeeded" in page.inner_text("body")
    # the first run's timeline (the second skipped the files already loaded): a bar per step, as long as
    # the step took, and the PII scan after each ingest
    page.goto(f"{chromium.url}/admin/pipelines/pipelinerun/{runs[0].pk}/change/")
    timeline = page.locator("#run-timeline")
    timeline.scroll_into_view_if_needed()
    bars = timeline.locator("rect.atlas-span")
    steps = {s.step_name: s for s in runs[0].step_runs.all()}
    assert bars.count() == len(steps) == 10
    first = steps[bars.first.get_attribute("data-x")]
    assert float(bars.first.get_attribute("data-value")) == pytest.approx(
        (first.finished_at - first.started_at).total_seconds(), abs=0.001)
    assert timeline.locator('rect[data-series="published compliance"]').count() >= 1
    page.screenshot(path=str(shots / "run.png"))
    # the step table fits its card, and so does the list of runs: no right-hand column hidden
    for url, selector in ((f"/admin/pipelines/pipelinerun/{runs[0].pk}/change/", ".inline-group .tabular"),
                          ("/admin/pipelines/pipelinerun/", "#changelist .results"),
                          ("/admin/pipelines/steprun/", "#changelist .results")):
        page.goto(f"{chromium.url}{url}")
        box = page.locator(selector).first
        assert box.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), (url, box.evaluate("e => [e.scrollWidth, e.clientWidth]"))
    revenue = Dataset.objects.get(layer="navigate", table="daily_revenue")
    page.goto(f"{chromium.url}/admin/pipelines/dataset/{revenue.pk}/change/")
    assert page.locator("#dataset-series .atlas-series-chart[data-column=revenue] circle").count() > 0
    page.locator("#dataset-series").scroll_into_view_if_needed()  # the picture of revenue over time
    page.screenshot(path=str(shots / "dataset.png"))
    page.get_by_role("link", name="Browse all rows: pages, sort, columns, CSV").click()
    page.locator("th a[data-column=revenue]").click()
    page.wait_for_url("**sort=revenue**")
    page.screenshot(path=str(shots / "data.png"))
    assert PipelineRun.objects.count() == 2
    for name in ("overview", "pipeline", "run", "dataset", "data"):
        assert (shots / f"{name}.png").stat().st_size > 10_000



def test_redoc_renders_offline(chromium):
    get_user_model().objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    page = chromium.login("operator", "s3cret-pass")
    answered: list[str] = []
    refused: dict[str, str] = {}
    page.on("response", lambda response: answered.append(response.url))
    page.on("requestfailed", lambda request: refused.__setitem__(request.url, request.failure or ""))
    page.goto(f"{chromium.url}/api/redoc/")
    page.wait_for_selector(".menu-content")  # ReDoc drew the schema's menu
    assert "Atlas API" in page.inner_text("body")
    # every answer came from Atlas; the bundle's one outside address (the "by Redocly" logo) never left the browser
    assert answered and all(url.startswith((chromium.url, "blob:", "data:")) for url in answered), answered
    outside = {url: why for url, why in refused.items() if not url.startswith(chromium.url)}
    assert all(why == "csp" for why in outside.values()), outside  # refused by the page's Content-Security-Policy
    assert not any("fonts.g" in url for url in [*answered, *refused])
