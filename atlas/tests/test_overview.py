"""The admin's home: the overview answers "is everything OK, and if not, what do I do?" from real records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from atlas import charts, humanize
from atlas.admin_site import app_rank
from atlas.overview import BAD, OK, WARN, Section, verdict

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


# --- values as people read them ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234567, "1,234,567"), (0.1234567891234, "0.123"), (12.3456789, "12.3"), (1.0, "1"),
        (2.5e-7, "2.5e-07"), (1234.5678, "1,234.6"), (1.5, "1.5"), (2.0, "2"), (None, "—"), (True, "yes"), (False, "no"),
    ],
)
def test_numbers_are_rounded_for_reading(value, text):
    assert humanize.number(value) == text


def test_ages_and_local_times():
    assert humanize.age(NOW - timedelta(seconds=10), NOW) == "just now"
    assert humanize.age(NOW - timedelta(minutes=5), NOW) == "5 min ago"
    assert humanize.age(NOW - timedelta(hours=3), NOW) == "3 h ago"
    assert humanize.age(NOW - timedelta(days=3), NOW) == "3 days ago"
    assert humanize.age(NOW + timedelta(minutes=40), NOW) == "in 40 min"
    html = humanize.local_time(NOW - timedelta(minutes=5), NOW)
    assert html.startswith('<time datetime="2026-12-03T11:55:00+00:00"') and "2026-12-03 11:55" in html
    assert "(5 min ago)" in html
    assert humanize.percent(0) == "0 %" and humanize.percent(0.12345) == "12.3 %" and humanize.percent(0.00001) == "<0.1 %"


# --- charts ---------------------------------------------------------------------------------------
def test_nice_ticks():
    assert charts.nice_ticks(7) == [0, 2, 4, 6, 8]
    assert charts.nice_ticks(0) == [0.0, 1.0]
    assert charts.nice_ticks(0.3)[-1] >= 0.3


def test_stacked_bars_carry_their_numbers_and_escape_labels():
    svg = charts.stacked_bars(
        ["01 Dec", "<b>"], [charts.Series("succeeded", "ok", [3, 0]), charts.Series("failed", "failed", [1, 2])],
        title="runs",
    )
    assert svg.count('class="atlas-bar') == 3  # zero values draw nothing
    assert 'data-series="succeeded" data-x="01 Dec" data-value="3"' in svg
    assert 'data-series="failed" data-x="&lt;b&gt;" data-value="2"' in svg and "<b>" not in svg
    assert charts.table_rows(["a"], [charts.Series("s", "S", [5])]) == [["a", 5]]


def test_lines_draw_points_and_thresholds():
    svg = charts.lines(["r1", "r2", "r3"], [charts.Series("fail", "failing", [0.0, None, 0.2])], title="share",
                       thresholds=[charts.Threshold(0.1, "limit")])
    assert svg.count("<circle") == 2 and 'data-value="0.2"' in svg
    assert 'class="atlas-threshold' in svg and 'data-value="0.1"' in svg


# --- the site ---------------------------------------------------------------------------------------
def test_apps_come_in_the_operators_order():
    labels = ["auth", "retention", "atlas", "quality", "pipelines", "privacy", "lineage", "compliance", "alerts"]
    assert sorted(labels, key=app_rank) == [
        "pipelines", "quality", "compliance", "privacy", "lineage", "retention", "alerts", "atlas", "auth",
    ]


def test_verdict_names_what_needs_attention():
    assert verdict([Section("a", "A", 1, OK, "fine")]) == (OK, "Everything is OK.")
    level, line = verdict([Section("a", "A", 1, OK, ""), Section("b", "Quality", 2, WARN, ""), Section("c", "PII", 3, BAD, "")])
    assert level == BAD and line == "2 area(s) need attention: Quality, PII."


def test_home_is_the_overview_with_atlas_name_and_ordered_apps(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "<title>Overview | Atlas</title>" in page and "atlas/logo.svg" in page
    assert 'id="atlas-verdict">Everything is OK.' in page
    assert "Django administration" not in page
    order = [page.index(f'class="app-{label} module') for label in ("pipelines", "quality", "compliance", "privacy", "lineage")]
    assert order == sorted(order)
    assert "No pipelines yet" in page
    assert "No endpoint configured" in page and "OPENLINEAGE_URL is empty" in page


def test_home_names_each_problem_and_links_where_to_act(admin_client, settings):
    from compliance.models import PiiFinding
    from lineage.models import OutboxEvent
    from pipelines.models import Dataset, Pipeline, PipelineRun
    from privacy.models import DataSubjectRequest

    now = timezone.now()
    pipeline = Pipeline.objects.create(name="sales", schedule="0 2 * * *")
    PipelineRun.objects.create(pipeline=pipeline, trigger="manual", status="succeeded", created_at=now - timedelta(days=1))
    failed = PipelineRun.objects.create(pipeline=pipeline, trigger="manual", status="failed", created_at=now)
    customers = Dataset.objects.create(name="customers", layer="explore", table="customers")
    PiiFinding.objects.create(dataset=customers, column="email", entity="EMAIL_ADDRESS")
    request = DataSubjectRequest.objects.create(kind="erasure", identifiers={"email": ["a@example.com"]},
                                                due_at=now - timedelta(days=2))
    OutboxEvent.objects.create(ordering_key="k", run_uuid="u", event_type="START", job_name="j", payload={})
    settings.OPENLINEAGE_URL = ""

    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "area(s) need attention: Pipelines, PII findings to review, Data-subject requests, Lineage delivery" in page
    assert reverse("admin:pipelines_pipelinerun_change", args=[failed.pk]) in page and ">failing<" in page
    assert "1 of 1 pipeline(s) need attention." in page and "02:00" in page  # the next scheduled run
    assert 'data-series="failed"' in page and 'data-series="succeeded"' in page
    assert "explore.customers: 1 column(s) (EMAIL_ADDRESS)" in page
    assert f"?status__exact=proposed&amp;dataset__id__exact={customers.pk}" in page
    assert reverse("admin:privacy_datasubjectrequest_change", args=[request.pk]) in page
    assert "a@example.com" not in page  # identifiers never shown
    assert "1 data-subject request(s) overdue." in page
    assert "No endpoint configured: 1 emitted event(s) wait and will not be delivered." in page


def test_a_staff_user_without_permissions_sees_no_sections(db, client):
    user = get_user_model().objects.create_user("viewer", password="pw-123456-x", is_staff=True)
    client.force_login(user)
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="atlas-verdict">Everything is OK.' in page and 'id="overview-' not in page


@pytest.mark.parametrize(
    ("action", "words"),
    [
        ("pipelines.dataset.created", "Created dataset"), ("pii.finding.confirmed", "Confirmed PII finding"),
        ("pipeline.run", "Ran pipeline"), ("dsr.export.downloaded", "Downloaded data-subject export"),
        ("retention.policy_created", "Created retention policy"), ("pii.view_clear", "Viewed PII in clear"),
        ("something.new", "Something new"),
    ],
)
def test_audit_actions_in_words(action, words):
    assert humanize.audit_action(action) == words


def test_the_audit_log_lists_events_in_words(admin_client):
    from atlas.audit import record

    record("pipelines.dataset.created")
    page = admin_client.get(reverse("admin:atlas_auditevent_changelist")).content.decode()
    assert "Atlas created dataset" in page and ">Created dataset</a>" in page  # the sentence; the filter
