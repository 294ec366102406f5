"""Operator pages in a real headless Chromium (Debian's, driven by Playwright; nothing downloads a browser)."""

from __future__ import annotations

import os
import shutil

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from conftest import IN_CI
from pipelines.models import PipelineRun, RunStatus

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_page(live_server, monkeypatch):
    if not shutil.which(CHROMIUM):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium package.")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    get_user_model().objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", "s3cret-pass")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        yield page, live_server.url
        browser.close()
        # ORM calls made inside Playwright's loop use connections of that context: close them here.
        connections.close_all()


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
