"""Retention pages in a real headless Chromium (Debian's, driven by Playwright; nothing downloads a browser)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.utils import timezone

from compliance.models import PiiFinding
from conftest import IN_CI
from retention import records, services
from retention.models import ProcessingRecord, RetentionPolicy, RetentionRun

from .conftest import days_ago, table_ids

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def steward_page(live_server, monkeypatch):
    if not shutil.which(CHROMIUM):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium package.")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    get_user_model().objects.create_superuser("steward", "st@example.com", "s3cret-pass")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(accept_downloads=True)
        page.set_default_timeout(20_000)
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "steward")
        page.fill("#id_password", "s3cret-pass")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        yield page, live_server.url
        browser.close()
        connections.close_all()


def test_the_dataset_page_warns_past_retention_and_applies_it(steward_page, wh, typed_table):
    page, url = steward_page
    now = timezone.now()
    ds = typed_table([(1, days_ago(400, now=now)), (2, now)])
    services.save_policy(RetentionPolicy(dataset=ds, column="happened_at", period_days=30))
    page.goto(f"{url}/admin/pipelines/dataset/{ds.pk}/change/")
    warning = page.locator("#retention-overdue")
    assert warning.is_visible()
    assert "Past retention: 1 row older than 30 days" in warning.inner_text()
    Path("var/screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(path="var/screenshots/retention-dataset.png", full_page=True)

    page.click("#retention-apply")
    page.wait_for_url(f"{url}/admin/pipelines/dataset/{ds.pk}/change/")
    assert "1 rows removed" in page.inner_text(".messagelist")
    assert page.locator("#retention-overdue").count() == 0
    assert table_ids(wh, "chart", "events") == [2]
    assert RetentionRun.objects.get().triggered_by.username == "steward"

    page.goto(f"{url}/admin/pipelines/dataset/?retention=within")
    assert ds.name in page.inner_text("#result_list")


def test_the_records_of_processing_export_downloads_a_csv(steward_page, wh, typed_table):
    page, url = steward_page
    ds = typed_table([(1, days_ago(1))], table="customers")
    PiiFinding.objects.create(
        dataset=ds, column="email", entity="EMAIL_ADDRESS", status="confirmed"
    )
    records.save_record(
        ProcessingRecord(
            dataset=ds,
            purpose="Deliver orders",
            legal_basis="contract",
            data_subject_categories="customers",
        )
    )
    page.goto(f"{url}/admin/retention/processingrecord/")
    with page.expect_download() as info:
        page.click("#export-records-csv")
    download = info.value
    assert download.suggested_filename.startswith(
        "records-of-processing-"
    ) and download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert [(r["dataset"], r["purpose"], r["pii_confirmed"]) for r in rows] == [
        ("chart_customers", "Deliver orders", "EMAIL_ADDRESS")
    ]
