"""The four doors onto the same service: admin, API, ``manage.py retention``, the daily beat task; and metrics."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from atlas.api.testing import assert_error, task_result, token_client, user_with_role
from atlas.models import AuditEvent
from compliance.models import PiiFinding
from retention import records, services, tasks
from retention.models import ProcessingRecord, RetentionPolicy, RetentionRun

from .conftest import days_ago, table_ids

pytestmark = pytest.mark.django_db


@pytest.fixture
def overdue(wh, typed_table):
    """chart.events with one row past a 30-day policy and one within it."""
    ds = typed_table([(1, days_ago(400, now=_now())), (2, _now())])
    policy = services.save_policy(RetentionPolicy(dataset=ds, column="happened_at", period_days=30))
    services.refresh_status(policy)
    return policy


def _now():
    from django.utils import timezone

    return timezone.now()


def staff(role: str):
    user = user_with_role(role, is_staff=True)
    return user


# --- admin -------------------------------------------------------------------------------
def test_admin_pages_render_and_the_dataset_changelist_flags_past_retention(admin_client, overdue):
    ds = overdue.dataset
    for name in ("retentionpolicy", "retentionrun", "processingrecord"):
        assert admin_client.get(reverse(f"admin:retention_{name}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:retention_{name}_add")).status_code in (200, 403)
    assert (
        admin_client.get(
            reverse("admin:retention_retentionpolicy_change", args=[overdue.pk])
        ).status_code
        == 200
    )
    changelist = reverse("admin:pipelines_dataset_changelist")
    page = admin_client.get(changelist).content.decode()
    assert "atlas-retention-overdue" in page and "Past retention" in page
    filtered = admin_client.get(changelist, {"retention": "overdue"}).content.decode()
    assert ds.name in filtered
    assert ds.name not in admin_client.get(changelist, {"retention": "within"}).content.decode()


def test_the_dataset_page_shows_the_retention_panel(admin_client, overdue):
    page = admin_client.get(
        reverse("admin:pipelines_dataset_change", args=[overdue.dataset_id])
    ).content.decode()
    assert 'id="retention-overdue"' in page and "Past retention: 1 row older than 30 days" in page
    assert "Apply retention now" in page


def test_the_admin_action_applies_retention_now(admin_client, wh, overdue):
    response = admin_client.post(
        reverse("admin:retention_retentionpolicy_changelist"),
        {"action": "apply_now", "_selected_action": [overdue.pk]},
        follow=True,
    )
    assert "background task</a> (succeeded)" in response.content.decode()  # enqueued; tests run tasks inline
    assert table_ids(wh, "chart", "events") == [2]
    run = RetentionRun.objects.get()
    assert run.rows_removed == 1
    assert run.trigger == "manual" and run.triggered_by.username == "admin"
    page = admin_client.get(
        reverse("admin:retention_retentionrun_change", args=[run.pk])
    ).content.decode()
    assert "Rows removed" in page and "chart_events" in page
    overdue.refresh_from_db()
    assert overdue.status == RetentionPolicy.Status.WITHIN


def test_the_dataset_page_button_applies_and_returns_to_the_dataset(admin_client, wh, overdue):
    url = reverse("admin:retention_policy_apply", args=[overdue.pk])
    assert admin_client.get(url).status_code == 405
    response = admin_client.post(url)
    assert response.status_code == 302 and response["Location"].endswith(
        f"/dataset/{overdue.dataset_id}/change/"
    )
    assert table_ids(wh, "chart", "events") == [2]


def test_an_analyst_sees_retention_but_cannot_apply_it(client, wh, overdue):
    client.force_login(staff("Analyst"))
    assert client.get(reverse("admin:retention_retentionpolicy_changelist")).status_code == 200
    page = client.get(
        reverse("admin:pipelines_dataset_change", args=[overdue.dataset_id])
    ).content.decode()
    assert "Past retention" in page and "Apply retention now" not in page
    assert (
        client.post(reverse("admin:retention_policy_apply", args=[overdue.pk])).status_code == 403
    )
    response = client.post(
        reverse("admin:retention_retentionpolicy_changelist"),
        {"action": "apply_now", "_selected_action": [overdue.pk]},
    )
    assert response.status_code in (200, 302)
    assert table_ids(wh, "chart", "events") == [1, 2]


def test_a_steward_saves_a_policy_in_the_admin_and_bad_ones_are_refused(client, wh, typed_table):
    ds = typed_table([(1, days_ago(1))])
    client.force_login(staff("Steward"))
    add = reverse("admin:retention_retentionpolicy_add")
    bad = client.post(
        add,
        {
            "dataset": ds.pk,
            "column": "amount",
            "period_days": 30,
            "action": "delete",
            "enabled": "on",
        },
    )
    assert (
        bad.status_code == 200
        and "retention needs a date or timestamp column" in bad.content.decode()
    )
    ok = client.post(
        add,
        {
            "dataset": ds.pk,
            "column": "happened_at",
            "period_days": 30,
            "action": "delete",
            "enabled": "on",
        },
    )
    assert ok.status_code == 302
    assert RetentionPolicy.objects.get().updated_by.username == "steward-user"
    assert AuditEvent.objects.filter(action="retention.policy_created").count() == 1


def test_the_admin_exports_the_records_and_audits_it(admin_client, wh, overdue):
    records.save_record(
        ProcessingRecord(
            dataset=overdue.dataset,
            purpose="Analytics",
            legal_basis="consent",
            data_subject_categories="customers",
        )
    )
    response = admin_client.get(reverse("admin:retention_records_export", args=["csv"]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert "chart_events" in response.content.decode()
    action = admin_client.post(
        reverse("admin:retention_processingrecord_changelist"),
        {"action": "export_json", "_selected_action": [ProcessingRecord.objects.get().pk]},
    )
    assert json.loads(action.content)["records"][0]["purpose"] == "Analytics"
    assert AuditEvent.objects.filter(action="retention.records_exported").count() == 2
    bad = admin_client.get(reverse("admin:retention_records_export", args=["xml"]), follow=True)
    assert "Unknown export format" in bad.content.decode()


# --- API ---------------------------------------------------------------------------------
def test_a_steward_manages_policies_through_the_api(wh, typed_table):
    ds = typed_table([(1, days_ago(400, now=_now())), (2, _now())])
    api = token_client(user_with_role("Steward"))
    bad = api.post(
        "/api/v1/retention-policies/", {"dataset": ds.pk, "column": "nope", "period_days": 30}
    )
    assert "has no column 'nope'" in json.dumps(assert_error(bad, 409)["detail"])
    created = api.post(
        "/api/v1/retention-policies/",
        {"dataset": ds.pk, "column": "happened_at", "period_days": 30},
    )
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    checked = api.post(f"/api/v1/retention-policies/{pk}/check/")
    assert checked.json()["status"] == "overdue" and checked.json()["expired_rows"] == 1
    applied = task_result(api, api.post(f"/api/v1/retention-policies/{pk}/apply/"))
    assert applied["rows_removed"] == 1 and applied["trigger"] == "api"
    runs = api.get("/api/v1/retention-runs/", {"dataset": ds.name}).json()
    assert runs["count"] == 1
    assert api.patch(f"/api/v1/retention-policies/{pk}/", {"period_days": 0}).status_code == 409
    assert (
        api.patch(f"/api/v1/retention-policies/{pk}/", {"period_days": 90}).json()["period_days"]
        == 90
    )
    assert api.delete(f"/api/v1/retention-policies/{pk}/").status_code == 204
    assert [
        e.action
        for e in AuditEvent.objects.filter(action__startswith="retention.policy").order_by("seq")
    ] == ["retention.policy_created", "retention.policy_changed", "retention.policy_deleted"]


def test_an_analyst_reads_but_cannot_change_or_apply(wh, overdue):
    api = token_client(user_with_role("Analyst"))
    assert api.get("/api/v1/retention-policies/").json()["count"] == 1
    assert_error(api.post(f"/api/v1/retention-policies/{overdue.pk}/apply/"), 403)
    assert_error(api.delete(f"/api/v1/retention-policies/{overdue.pk}/"), 403)
    assert_error(api.post("/api/v1/processing-records/", {}), 403)
    nobody = token_client(user_with_role(None))
    assert_error(nobody.get("/api/v1/retention-runs/"), 403)
    assert_error(nobody.get("/api/v1/processing-records/export/"), 403)


def test_processing_records_through_the_api_and_the_export(wh, overdue):
    PiiFinding.objects.create(
        dataset=overdue.dataset, column="email", entity="EMAIL_ADDRESS", status="confirmed"
    )
    api = token_client(user_with_role("Steward"))
    bad = api.post(
        "/api/v1/processing-records/",
        {
            "dataset": overdue.dataset_id,
            "purpose": "Fraud checks",
            "legal_basis": "legitimate_interests",
            "data_subject_categories": "customers",
        },
    )
    assert "legal_basis_detail" in assert_error(bad, 409)["detail"]
    ok = api.post(
        "/api/v1/processing-records/",
        {
            "dataset": overdue.dataset_id,
            "purpose": "Fraud checks",
            "legal_basis": "legitimate_interests",
            "legal_basis_detail": "Preventing payment fraud",
            "data_subject_categories": "customers",
        },
    )
    assert ok.status_code == 201, ok.json()
    exported = api.get("/api/v1/processing-records/export/", {"as": "json"})
    assert exported.status_code == 200
    entry = json.loads(exported.content)["records"][0]
    assert entry["pii"]["confirmed"] == ["EMAIL_ADDRESS"] and entry["purpose"] == "Fraud checks"
    as_csv = api.get("/api/v1/processing-records/export/", {"datasets": overdue.dataset.name})
    assert (
        as_csv["Content-Type"].startswith("text/csv") and "Fraud checks" in as_csv.content.decode()
    )
    assert_error(api.get("/api/v1/processing-records/export/", {"as": "xml"}), 400)
    assert_error(api.get("/api/v1/processing-records/export/", {"datasets": "nope"}), 404, "not_found")
    # found by the schema fuzz test on PostgreSQL: a NUL byte reached the database (500)
    assert "NUL" in str(assert_error(api.get("/api/v1/processing-records/export/", {"datasets": "a\x00b"}), 400))


# --- command -----------------------------------------------------------------------------
def test_the_command_runs_reports_and_exports(wh, overdue, tmp_path):
    out = StringIO()
    call_command("retention", "status", stdout=out)
    assert "chart_events: Past retention" in out.getvalue()
    out = StringIO()
    call_command("retention", "run", "chart_events", stdout=out)
    assert "chart_events: succeeded" in out.getvalue() and "1 rows removed" in out.getvalue()
    assert RetentionRun.objects.get().trigger == "cli"
    target = tmp_path / "records.json"
    call_command(
        "retention",
        "records",
        "--format",
        "json",
        "--output",
        str(target),
        "chart_events",
        stdout=StringIO(),
    )
    assert json.loads(target.read_text())["records"][0]["dataset"] == "chart_events"
    with pytest.raises(CommandError, match="No dataset named 'nope'"):
        call_command("retention", "run", "nope")
    with pytest.raises(CommandError, match="Unknown dataset"):
        call_command("retention", "records", "nope", stdout=StringIO())


def test_the_command_fails_when_a_run_fails(wh, overdue):
    with wh.cursor() as cur:
        cur.execute(f"ALTER TABLE {wh.table('chart', 'events')} DROP COLUMN happened_at")
    with pytest.raises(CommandError, match="Retention failed for chart_events"):
        call_command("retention", "run", stdout=StringIO())


# --- beat --------------------------------------------------------------------------------
def test_the_daily_beat_entry_runs_the_task_that_calls_the_service(wh, overdue, typed_table):
    entry = settings.CELERY_BEAT_SCHEDULE["retention: apply retention policies"]
    assert entry["task"] == tasks.apply_all_task.name == "retention.apply_all"
    assert entry["schedule"].hour == {settings.ATLAS_RETENTION_HOUR}
    held = typed_table([(1, days_ago(400, now=_now()))], table="held")
    off = services.save_policy(
        RetentionPolicy(dataset=held, column="happened_at", period_days=30, enabled=False)
    )
    result = tasks.apply_all_task.apply().get()
    assert result == {"runs": 1, "failed": 0, "rows_removed": 1, "overdue": 1}
    assert RetentionRun.objects.get().trigger == "schedule"
    assert table_ids(wh, "chart", "events") == [2]
    off.refresh_from_db()
    assert off.is_overdue  # disabled, not applied, but it stands out


# --- metrics -----------------------------------------------------------------------------
def test_metrics_count_datasets_past_retention_and_rows_removed(client, wh, overdue, settings):
    settings.ATLAS_METRICS_TOKEN = "test-scrape-token"  # /metrics is not public (issue 12)

    def families() -> dict:
        text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer test-scrape-token").content.decode()
        return {f.name: f for f in text_string_to_metric_families(text)}

    assert families()["atlas_datasets_past_retention"].samples[0].value == 1
    services.apply_policy(overdue)
    found = families()
    assert found["atlas_datasets_past_retention"].samples[0].value == 0
    removed = [
        s for s in found["atlas_retention_rows_removed"].samples if s.name.endswith("_total")
    ]
    assert [(s.labels["dataset"], s.value) for s in removed] == [("chart_events", 1)]
