"""The quality admin pages render, filter, chart and browse the quarantine; the action runs checks."""

from __future__ import annotations

import re
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


def test_check_list_and_pages_show_each_checks_rule_in_words(admin_client, checked):
    page = admin_client.get(reverse("admin:quality_check_changelist")).content.decode()
    assert "name is never NULL." in page and "amount is at least 0." in page
    check = checked.checks.get(name="range_amount")
    page = admin_client.get(reverse("admin:quality_check_change", args=[check.pk])).content.decode()
    assert "amount is at least 0." in page
    result = check.results.first()
    page = admin_client.get(reverse("admin:quality_checkresult_change", args=[result.pk])).content.decode()
    assert "amount is at least 0." in page
    assert "<label>Rule:</label>" in admin_client.get(reverse("admin:quality_check_add")).content.decode()


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
    # issue 18: red even at 0 % failing, empty after one run
    assert "#dc3545" not in share_chart([0.0, 0.0]) and "#198754" in share_chart([0.5, 0.0])
    assert "<circle" in share_chart([0.25]) and "latest 25 %" in share_chart([0.25])


def test_check_page_draws_the_failing_share_with_axes_and_the_tolerance(admin_client, checked):
    check = checked.checks.get(name="range_amount")
    check.tolerance = 0.2
    check.save()
    run_checks(checked, trigger="cli", apply_drops=False)
    page = admin_client.get(reverse("admin:quality_check_change", args=[check.pk])).content.decode()
    figure = page.split('id="quality-share-history"')[1].split("</figure>")[0]
    points = [float(v) for v in re.findall(r'<circle class="atlas-point[^>]*data-value="([\d.]+)"', figure)]
    shares = [r.failing_share for r in check.results.order_by("created_at", "id")]
    assert points == pytest.approx(shares) and len(points) == 3
    assert 'class="atlas-threshold atlas-s-limit"' in figure and 'data-value="0.2"' in figure
    assert 'class="atlas-tick"' in figure and "20 %" in figure  # a y axis in per cent
    assert "<td>33.3 %</td>" in figure  # the table equivalent


# --- the dataset's quality page, the run and step pages, re-processing, PII masking ----------------
@pytest.fixture
def analyst(db, client):
    from atlas.api.testing import user_with_role

    user = user_with_role("Analyst", is_staff=True)
    client.force_login(user)
    return client


@pytest.fixture
def quarantined(checked):
    """``checked`` after a step run with only the drop check: one row (no name) in quarantine."""
    checked.checks.filter(name="range_amount").update(enabled=False)
    run_checks(checked, trigger="step")
    checked.checks.filter(name="range_amount").update(enabled=True)
    return checked


def test_dataset_quality_page_shows_status_filters_charts_and_quarantine(admin_client, quarantined):
    checked = quarantined
    url = reverse("admin:quality_dataset", args=[checked.pk])
    page = admin_client.get(url).content.decode()
    assert 'id="quality-overall"' in page and ">failed<" in page
    assert page.count('class="quality-check"') == 2 and "quality-chart" in page
    assert "Failed quality check(s): not_null_name" in page and "Re-process quarantined rows" in page
    only_fail = admin_client.get(url, {"outcome": "fail"}).content.decode()
    assert only_fail.count('class="quality-check"') == 1 and "range_amount" in only_fail
    only_drop = admin_client.get(url, {"severity": "drop"}).content.decode()
    assert only_drop.count('class="quality-check"') == 1 and "not_null_name" in only_drop
    bad = admin_client.get(url, {"outcome": "nonsense"}, follow=True)
    assert bad.status_code == 200 and any("Unknown outcome" in str(m) for m in bad.context["messages"])


def test_reprocess_button_and_check_run_action(admin_client, quarantined, wh):
    checked = quarantined
    checked.checks.filter(name="not_null_name").update(severity="warn")  # the fix: a missing name is only a warning
    response = admin_client.post(reverse("admin:quality_reprocess", args=[checked.pk]), follow=True)
    assert any("1 row(s) re-processed: 1 published" in str(m) for m in response.context["messages"])
    assert wh.row_count("chart", "items") == 3 and wh.row_count("chart", "items__quarantine") == 0
    step_run = CheckRun.objects.filter(trigger="step").latest("id")
    again = admin_client.post(
        reverse("admin:quality_checkrun_changelist"),
        {"action": "reprocess_quarantined", "_selected_action": [step_run.pk]}, follow=True,
    )
    assert any("nothing to re-process" in str(m) for m in again.context["messages"])


def test_analysts_see_the_quality_page_but_cannot_reprocess(analyst, checked):
    page = analyst.get(reverse("admin:quality_dataset", args=[checked.pk])).content.decode()
    assert "range_amount" in page and "Re-process" not in page
    assert analyst.post(reverse("admin:quality_reprocess", args=[checked.pk])).status_code == 403
    actions = analyst.get(reverse("admin:quality_checkrun_changelist")).content.decode()
    assert "reprocess_quarantined" not in actions


def test_samples_and_quarantine_are_masked_for_analysts(analyst, admin_client, quarantined, wh):
    from compliance.models import PiiFinding

    PiiFinding.objects.create(dataset=quarantined, column="name", entity="PERSON", status="confirmed")
    sample = CheckResult.objects.get(check_run__trigger="cli", check_name="range_amount")
    assert sample.sample_rows[0]["name"] == "c"  # stored as it is; masked when shown
    url = reverse("admin:quality_checkresult_change", args=[sample.pk])
    masked = analyst.get(url).content.decode()
    assert "[PERSON hidden]" in masked and "<td>c</td>" not in masked and "<td>-1" in masked
    clear = admin_client.get(url).content.decode()  # a superuser holds view_pii_clear
    assert "<td>c</td>" in clear and "[PERSON hidden]" not in clear
    with wh.cursor() as cur:
        cur.execute('UPDATE chart."items__quarantine" SET "name" = %s', ["Zoë Secret"])
    for page in (reverse("admin:quality_quarantine", args=[quarantined.pk]), reverse("admin:quality_dataset", args=[quarantined.pk])):
        assert "Zoë Secret" not in analyst.get(page).content.decode()
        assert "Zoë Secret" in admin_client.get(page).content.decode()


def test_run_step_and_dataset_pages_link_to_their_check_results(admin_client, wh, settings, simple_pipeline):
    from pipelines.tests.conftest import run_now
    from quality.models import Check

    settings.ATLAS_STEP_HOOKS = ["quality.hooks.QualityGate"]
    pipeline = simple_pipeline()
    people = pipeline.steps.get(name="refine").output
    Check.objects.create(dataset=people, name="small", kind="range", columns=["amount"], params={"min": 6}, severity="drop")
    run = run_now(pipeline)
    result = CheckResult.objects.get(check_name="small")
    result_url = reverse("admin:quality_checkresult_change", args=[result.pk])
    run_page = admin_client.get(reverse("admin:pipelines_pipelinerun_change", args=[run.pk])).content.decode()
    assert 'id="quality-panel"' in run_page and result_url in run_page
    assert f"?check_run={result.check_run_id}" in run_page  # the rows it quarantined
    step = run.step_runs.get(step_name="refine")
    step_page = admin_client.get(reverse("admin:pipelines_steprun_change", args=[step.pk])).content.decode()
    assert result_url in step_page
    dataset_page = admin_client.get(reverse("admin:pipelines_dataset_change", args=[people.pk])).content.decode()
    assert reverse("admin:quality_dataset", args=[people.pk]) in dataset_page and 'id="atlas-quality-link"' in dataset_page


def test_quarantine_and_quality_pages_of_an_explore_dataset_with_only_ingest_rejects(admin_client, wh, simple_pipeline):
    # issue 18: both pages showed "Referenced column _check_run_id not found" (quarantine.count_rows)
    from pipelines.tests.conftest import run_now

    pipeline = simple_pipeline("id,name,amount\n1,Ann,10\n2,Bob\n3,Cy,5\n")
    run_now(pipeline)
    raw = pipeline.steps.get(name="ingest").output
    assert wh.row_count("explore", "people__quarantine") == 1
    for name in ("admin:quality_quarantine", "admin:quality_dataset"):
        response = admin_client.get(reverse(name, args=[raw.pk]))
        page = response.content.decode()
        assert response.status_code == 200 and "_check_run_id" not in page and "Referenced column" not in page
    quarantine = admin_client.get(reverse("admin:quality_quarantine", args=[raw.pk])).content.decode()
    assert "1 quarantined row" in quarantine


def test_a_re_run_does_not_show_the_same_quarantined_rows_twice(admin_client, wh, settings, simple_pipeline):
    # issue 18: "Browse all 48" next to "24 rows quarantined" after a second run of the demo
    from pipelines.tests.conftest import run_now
    from quality.models import Check

    settings.ATLAS_STEP_HOOKS = ["quality.hooks.QualityGate"]
    pipeline = simple_pipeline()
    people = pipeline.steps.get(name="refine").output  # rebuilt ("replace") by every run
    Check.objects.create(dataset=people, name="small", kind="range", columns=["amount"], params={"min": 6}, severity="drop")
    run_now(pipeline)
    run_now(pipeline)
    assert wh.row_count("chart", "people__quarantine") == 2  # Cy once per build: the first copy is history
    page = admin_client.get(reverse("admin:quality_dataset", args=[people.pk])).content.decode()
    assert "Browse all 1 quarantined row<" in page and "1 more row from earlier builds" in page
    browse = admin_client.get(reverse("admin:quality_quarantine", args=[people.pk])).content.decode()
    assert "1 quarantined row in chart.people__quarantine" in browse and browse.count("Failed quality check(s): small") == 1
    everything = admin_client.get(reverse("admin:quality_quarantine", args=[people.pk]), {"history": "1"}).content.decode()
    assert "2 quarantined rows" in everything and everything.count("Failed quality check(s): small") == 2
