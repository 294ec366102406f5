"""Retention pages in a real headless Chromium (Debian's, driven by Playwright; nothing downloads a browser)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.utils import timezone

from compliance.models import PiiFinding
from retention import records, services
from retention.models import ProcessingRecord, RetentionPolicy, RetentionRun

from .conftest import days_ago, table_ids

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]



def test_the_dataset_page_warns_past_retention_and_applies_it(browser_page, wh, typed_table):
    page, url = browser_page
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
    assert RetentionRun.objects.get().triggered_by.username == "operator"

    page.goto(f"{url}/admin/pipelines/dataset/?retention=within")
    assert ds.name in page.inner_text("#result_list")


def test_the_records_of_processing_export_downloads_a_csv(browser_page, wh, typed_table):
    page, url = browser_page
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
