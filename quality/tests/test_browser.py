"""The dataset's quality page in a real headless Chromium: filters, the chart, the quarantine, re-processing."""

from __future__ import annotations

import pytest

from pipelines.tests.conftest import run_now
from quality.models import Check, CheckResult

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_quality_page_filters_draws_the_chart_and_reprocesses_the_quarantine(browser_page, wh, settings, simple_pipeline):
    page, url = browser_page
    settings.ATLAS_STEP_HOOKS = ["quality.hooks.QualityGate"]
    pipeline = simple_pipeline()
    people = pipeline.steps.get(name="refine").output
    small = Check.objects.create(dataset=people, name="small", kind="range", columns=["amount"], params={"min": 6},
                                 severity="drop")
    Check.objects.create(dataset=people, name="named", kind="not_null", columns=["name"], severity="fail")
    run = run_now(pipeline)
    run_now(pipeline)  # a second point on the chart

    # from the run page to the check result, through the quality panel
    page.goto(f"{url}/admin/pipelines/pipelinerun/{run.pk}/change/")
    page.locator("#quality-panel").get_by_role("link", name="small").click()
    page.wait_for_url("**/admin/quality/checkresult/*/change/")
    assert "Sample of failing rows" in page.inner_text("body") and "Cy" in page.inner_text("#quality-samples")

    page.goto(f"{url}/admin/pipelines/dataset/{people.pk}/change/")
    page.locator("#atlas-quality-link").click()
    page.wait_for_url(f"**/admin/quality/check/dataset/{people.pk}/")
    assert "warn" in page.inner_text("#quality-overall")
    assert page.locator("tr.quality-check").count() == 2
    chart = page.locator("tr.quality-check[data-severity=drop] svg.quality-chart polyline")
    box = chart.bounding_box()
    assert box is not None and box["width"] > 0  # drawn, with a point per run
    assert len(chart.get_attribute("points").split()) == 2
    assert "Failed quality check(s): small" in page.inner_text("#quality-quarantine")

    page.locator("#quality-filters").get_by_role("link", name="Fail (block publishing)").click()
    page.wait_for_url("**severity=fail**")
    assert page.locator("tr.quality-check").count() == 1 and "named" in page.inner_text("#quality-checks")
    page.locator("#quality-filters").get_by_role("link", name="Warn", exact=True).click()  # outcome, severity kept
    page.wait_for_url("**outcome=warn**")
    assert "severity=fail" in page.url and "No check matches these filters." in page.inner_text("body")

    small.params = {"min": 1}  # the fix; the quarantined rows come back through the same checks
    small.save()
    page.goto(f"{url}/admin/quality/check/dataset/{people.pk}/")
    page.get_by_role("button", name="Re-process quarantined rows").click()
    page.wait_for_load_state()
    assert "1 row(s) re-processed: 1 published" in page.inner_text(".messagelist")
    # the copy the first run quarantined was superseded by the second run's rebuild: kept as history
    # the table as it is holds no reject now; the first build's copy is kept as history, and said so
    assert "Nothing is quarantined" in page.inner_text("#quality-quarantine")
    assert "1 more row from earlier builds" in page.inner_text("#quality-superseded")
    assert page.get_by_role("button", name="Re-process quarantined rows").count() == 0
    assert wh.row_count("chart", "people") == 3
    assert CheckResult.objects.filter(check_run__trigger="reprocess").exists()
