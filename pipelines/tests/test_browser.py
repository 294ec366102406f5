"""Operator pages in a real headless Chromium (Debian's, driven by Playwright; nothing downloads a browser)."""

from __future__ import annotations

import os

import pytest

from pipelines.models import PipelineRun, RunStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]



def test_run_now_from_the_pipeline_page_shows_the_finished_run(browser_page, wh, simple_pipeline):
    page, url = browser_page
    pipeline = simple_pipeline()
    page.goto(f"{url}/admin/pipelines/pipeline/{pipeline.pk}/change/")
    page.get_by_role("button", name="Run now").click()
    run = PipelineRun.objects.get()
    page.wait_for_url(f"{url}/admin/pipelines/pipelinerun/{run.pk}/change/")
    body = page.inner_text("body")
    assert "succeeded" in body.lower()
    for step in ("ingest", "refine", "total"):
        assert step in body
    os.makedirs("var/screenshots", exist_ok=True)
    page.screenshot(path="var/screenshots/run.png", full_page=True)


def test_a_running_run_page_refreshes_itself_until_it_ends(browser_page, wh, simple_pipeline):
    page, url = browser_page
    pipeline = simple_pipeline()
    run = PipelineRun.objects.create(pipeline=pipeline, trigger="api", status=RunStatus.RUNNING, current_step="refine")
    page.goto(f"{url}/admin/pipelines/pipelinerun/{run.pk}/change/")
    assert page.locator('meta[http-equiv="refresh"]').count() == 1
    assert "refine" in page.inner_text("body")
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, current_step="")
    page.wait_for_function("() => !document.querySelector('meta[http-equiv=\"refresh\"]')", timeout=15_000)
    assert "succeeded" in page.inner_text("body").lower()


def test_the_dataset_page_previews_warehouse_rows(browser_page, wh, simple_pipeline):
    from .conftest import run_now

    page, url = browser_page
    pipeline = simple_pipeline()
    run_now(pipeline)
    dataset = pipeline.steps.get(name="refine").output
    page.goto(f"{url}/admin/pipelines/dataset/{dataset.pk}/change/")
    text = page.inner_text("body")
    assert "Ann" in text and "Bob" in text
    page.screenshot(path="var/screenshots/dataset.png", full_page=True)
