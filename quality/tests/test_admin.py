"""The quality admin pages render, filter, chart and browse the quarantine; the action runs checks."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.urls import reverse

from quality.admin import share_chart
from quality.models import CheckResult, CheckRun
from quality.service import run_checks

T = datetime(2026, 1, 1)


@pytest.fixture(autouse=True)
def _admin_urls(settings):
    settings.ROOT_URLCONF = "quality.tests.urls"


@pytest.fixture
def checked(table, check):
    ds = table([(1, None, 1, "x", T), (2, "b", 5, "y", T), (3, "c", -1, "z", T)])
    check(ds, "not_null", ["name"], severity="drop")
    check(ds, "range", ["amount"], min=0, severity="fail")
    run_checks(ds, trigger="step", schema="chart", table="items", apply_drops=True)
    run_checks(ds, trigger="cli", apply_drops=False)
    return ds


def test_check_list_shows_latest_outcome_chart_and_filters(admin_client, checked):
    page = admin_client.get(reverse("admin:quality_check_changelist")).content.decode()
    assert "<svg" in page and "quality-chart" in page and "fail" in page
    filtered = admin_client.get(reverse("admin:quality_check_changelist"), {"latest": "fail", "severity": "fail"})
    assert "range_amount" in filtered.content.decode() and "not_null_name" not in filtered.content.decode()


def test_check_page_lists_its_history_and_links_the_quarantine(admin_client, checked):
    check = checked.checks.get(name="range_amount")
    page = admin_client.get(reverse("admin:quality_check_change", args=[check.pk])).content.decode()
    assert "Browse the quarantine" in page and page.count("run #") >= 2


def test_quarantine_page_shows_rows_with_their_reasons(admin_client, checked, wh):
    # the blocked step run moved nothing; quarantine through a drop-only run
    checked.checks.filter(name="range_amount").update(enabled=False)
    run_checks(checked, trigger="step")
    page = admin_client.get(reverse("admin:quality_quarantine", args=[checked.pk])).content.decode()
    assert "Failed quality check(s): not_null_name" in page and "1 quarantined row" in page


def test_empty_quarantine_says_so(admin_client, table):
    ds = table([])
    page = admin_client.get(reverse("admin:quality_quarantine", args=[ds.pk])).content.decode()
    assert "Nothing is quarantined" in page


def test_run_and_result_pages_render_samples(admin_client, checked):
    run = CheckRun.objects.filter(trigger="cli").get()
    assert admin_client.get(reverse("admin:quality_checkrun_change", args=[run.pk])).status_code == 200
    result = CheckResult.objects.filter(check_name="range_amount", check_run=run).get()
    page = admin_client.get(reverse("admin:quality_checkresult_change", args=[result.pk])).content.decode()
    assert "Sample of failing rows" in page and "<td>-1" in page
    listing = admin_client.get(reverse("admin:quality_checkresult_changelist"), {"outcome": "fail"}).content.decode()
    assert "range_amount" in listing


def test_run_now_action_checks_published_tables(admin_client, checked):
    before = CheckRun.objects.count()
    response = admin_client.post(
        reverse("admin:quality_check_changelist"),
        {"action": "run_on_published", "_selected_action": [c.pk for c in checked.checks.all()]},
        follow=True,
    )
    assert CheckRun.objects.count() == before + 1
    assert CheckRun.objects.latest("id").trigger == "manual"
    shown = [str(m) for m in response.context["messages"]]
    assert any(m.startswith("items: failed") for m in shown), shown


def test_share_chart_handles_no_history_and_zero_shares():
    assert share_chart([]) == "-"
    assert "<polyline" in share_chart([0.0, 0.0, None])
