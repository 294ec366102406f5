"""Role × door escalation (issue 12): every door checks the permission of the action behind it.

The attacks of the report come first: an Operator scheduling a Steward-only
task through the periodic-tasks admin, an Auditor reading data-subject
identifiers in clear, anonymous reads of ``/metrics`` and the API schema.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from atlas import schedule_admin
from atlas.api.testing import token_client, user_with_role
from pipelines.models import Dataset, Pipeline
from privacy import service
from privacy.models import DataSubjectRequest, SubjectKey

ADD_TASK = "admin:django_celery_beat_periodictask_add"
TASKS = "admin:django_celery_beat_periodictask_changelist"


def _task_form(task: str, schedule: IntervalSchedule, **extra) -> dict:
    """The beat admin's add form, as a browser posts it."""
    return {
        "name": extra.pop("name", f"sneaky {task}"), "regtask": "", "task": task, "enabled": "on",
        "description": "", "interval": schedule.pk, "crontab": "", "solar": "", "clocked": "",
        "start_time_0": "", "start_time_1": "", "args": "[]", "kwargs": "{}", "expires_0": "", "expires_1": "",
        "expire_seconds": "", "queue": "", "exchange": "", "routing_key": "", "priority": "", "headers": "{}",
        **extra,
    }


@pytest.fixture
def daily(db) -> IntervalSchedule:
    return IntervalSchedule.objects.create(every=1, period=IntervalSchedule.DAYS)


@pytest.fixture
def operator_admin(client, db):
    client.force_login(user_with_role("Operator", "op-admin", is_staff=True))
    return client


@pytest.fixture
def retention_task(daily) -> PeriodicTask:
    return PeriodicTask.objects.create(name="retention daily", task="retention.apply_all", interval=daily, enabled=False)


# --- the attacks of the report ---------------------------------------------------------------------
def test_attack_an_operator_cannot_schedule_retention_through_the_beat_admin(operator_admin, daily):
    response = operator_admin.post(reverse(ADD_TASK), _task_form("retention.apply_all", daily))
    assert not PeriodicTask.objects.filter(task="retention.apply_all").exists()
    page = response.content.decode()
    assert "retention.apply_retention" in page, page[:2000]


def test_attack_an_auditor_sees_data_subject_identifiers_masked(client, db):
    dataset = Dataset.objects.create(name="people", layer="explore", table="people")
    SubjectKey.objects.create(dataset=dataset, column="email", kind="email", status="confirmed")
    req = service.submit("access", {"email": ["ann@example.com"]})

    auditor = user_with_role("Auditor", "auditor-dsr", is_staff=True)
    client.force_login(auditor)
    page = client.get(reverse("admin:privacy_datasubjectrequest_change", args=[req.pk])).content.decode()
    assert "DSR #" in page and "ann@example.com" not in page
    body = token_client(auditor).get(f"/api/v1/dsr-requests/{req.pk}/").json()
    assert body["identifiers"] == {"email": [masked_value()]}
    assert "ann@example.com" not in json.dumps(token_client(auditor).get("/api/v1/dsr-requests/").json())

    steward = user_with_role("Steward", "steward-dsr", is_staff=True)
    assert token_client(steward).get(f"/api/v1/dsr-requests/{req.pk}/").json()["identifiers"] == {
        "email": ["ann@example.com"]
    }
    client.force_login(steward)
    assert "ann@example.com" in client.get(reverse("admin:privacy_datasubjectrequest_change", args=[req.pk])).content.decode()


def masked_value() -> str:
    from privacy.api.serializers import MASKED

    return MASKED


@pytest.mark.parametrize("url", ["/metrics", "/api/schema/", "/api/docs/", "/api/redoc/"])
def test_attack_anonymous_reads_neither_metrics_nor_the_api_schema(url, db):
    response = APIClient().get(url)
    assert response.status_code in (401, 403), (url, response.status_code)
    assert b"atlas_" not in response.content and b"openapi" not in response.content


# --- the beat admin: every write door -------------------------------------------------------------
def test_an_operator_schedules_what_an_operator_may_run(operator_admin, daily):
    pipeline = Pipeline.objects.create(name="p")
    form = _task_form("pipelines.trigger_scheduled_run", daily, kwargs=json.dumps({"pipeline_id": pipeline.pk}))
    response = operator_admin.post(reverse(ADD_TASK), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert PeriodicTask.objects.filter(task="pipelines.trigger_scheduled_run").exists()


def test_an_unknown_task_is_the_superusers_alone(operator_admin, daily, admin_client):
    operator_admin.post(reverse(ADD_TASK), _task_form("os.system", daily))
    assert not PeriodicTask.objects.filter(task="os.system").exists()
    assert admin_client.post(reverse(ADD_TASK), _task_form("celery.backend_cleanup", daily)).status_code == 302


def test_an_operator_cannot_repoint_a_task_to_a_stewards_task(operator_admin, daily):
    mine = PeriodicTask.objects.create(name="freshness", task="quality.check_freshness", interval=daily)
    url = reverse("admin:django_celery_beat_periodictask_change", args=[mine.pk])
    operator_admin.post(url, _task_form("retention.apply_all", daily, name="freshness"))
    mine.refresh_from_db()
    assert mine.task == "quality.check_freshness"


def test_an_operator_cannot_change_enable_run_or_delete_a_stewards_task(operator_admin, retention_task, daily):
    from retention.models import RetentionRun

    change = reverse("admin:django_celery_beat_periodictask_change", args=[retention_task.pk])
    operator_admin.post(change, _task_form("retention.apply_all", daily, name="retention daily"))
    for action in ("enable_tasks", "toggle_tasks", "run_tasks", "disable_tasks", "delete_selected"):
        response = operator_admin.post(
            reverse(TASKS), {"action": action, "_selected_action": [retention_task.pk], "post": "yes"}, follow=True
        )
        assert response.status_code in (200, 403)
    retention_task.refresh_from_db()
    assert retention_task.enabled is False and not RetentionRun.objects.exists()
    assert PeriodicTask.objects.filter(pk=retention_task.pk).exists()
    response = operator_admin.post(
        reverse(TASKS), {"action": "enable_tasks", "_selected_action": [retention_task.pk]}, follow=True
    )
    messages = [str(m) for m in response.context["messages"]]
    assert any("retention.apply_retention" in m for m in messages), messages


def test_an_operator_cannot_reschedule_a_stewards_task_through_its_schedule(operator_admin, db):
    cron = CrontabSchedule.objects.create(minute="30", hour="3")
    PeriodicTask.objects.create(name="retention daily", task="retention.apply_all", crontab=cron)
    url = reverse("admin:django_celery_beat_crontabschedule_change", args=[cron.pk])
    operator_admin.post(url, {"minute": "0", "hour": "*", "day_of_month": "*", "month_of_year": "*",
                              "day_of_week": "*", "timezone": "UTC"})
    cron.refresh_from_db()
    assert (cron.minute, cron.hour) == ("30", "3")


def test_a_steward_may_run_retention_but_holds_no_beat_permission(db):
    steward = user_with_role("Steward", "steward-beat")
    assert schedule_admin.may_run_task(steward, "retention.apply_all")
    assert not schedule_admin.may_run_task(user_with_role("Operator", "op-beat"), "retention.apply_all")


@pytest.mark.parametrize(("task", "permission"), [
    ("retention.apply_all", "retention.apply_retention"),
    ("pipelines.trigger_scheduled_run", "pipelines.change_pipeline"),
    ("pipelines.execute_run", "pipelines.change_pipeline"),
    ("privacy.purge_expired_exports", "privacy.process_datasubjectrequest"),
    ("quality.reprocess_quarantine", "quality.change_check"),
    ("compliance.run_pii_scan", "compliance.change_piiscan"),
    ("no.such.task", None),
])
def test_each_task_names_the_permission_that_runs_it(task, permission):
    assert schedule_admin.permission_for_task(task) == permission


def test_every_registered_atlas_task_has_a_permission():
    """A new task without an entry would be superuser-only; this says so before an operator finds out."""
    from atlas.celery import app

    app.loader.import_default_modules()
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    assert ours, "no Atlas task registered"
    missing = sorted(name for name in ours if schedule_admin.permission_for_task(name) is None)
    assert not missing, missing


# --- identifiers: every place they are rendered ---------------------------------------------------
def test_identifiers_in_clear_are_the_stewards_alone(db):
    from atlas import roles

    assert user_with_role("Steward", "s-ids").has_perm(roles.IDENTIFIERS_CLEAR)
    for name in ("Analyst", "Auditor", "Operator"):
        assert not user_with_role(name, f"{name}-ids").has_perm(roles.IDENTIFIERS_CLEAR), name


def test_the_changelist_and_the_api_list_mask_identifiers_for_an_auditor(client, db):
    dataset = Dataset.objects.create(name="people", layer="explore", table="people")
    SubjectKey.objects.create(dataset=dataset, column="email", kind="email", status="confirmed")
    service.submit("erasure", {"email": ["bob@example.com"]}, reference="letter 7")
    auditor = user_with_role("Auditor", "auditor-list", is_staff=True)
    client.force_login(auditor)
    page = client.get(reverse("admin:privacy_datasubjectrequest_changelist")).content.decode()
    assert "letter 7" in page and "bob@example.com" not in page
    assert DataSubjectRequest.objects.get().identifiers == {"email": ["bob@example.com"]}  # kept for the steward


# --- metrics and the schema ---------------------------------------------------------------------------
def test_metrics_take_a_scrape_token_compared_in_constant_time(settings, db):
    settings.ATLAS_METRICS_TOKEN = "s3cret-scrape-token-0123456789"
    client = APIClient()
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token-0123456789").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get("/metrics").status_code == 401


def test_metrics_without_a_token_configured_refuse_every_bearer(settings, db):
    settings.ATLAS_METRICS_TOKEN = ""
    assert APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_metrics_for_staff_only_among_logged_in_users(client, db):
    client.force_login(user_with_role("Analyst", "analyst-metrics"))
    assert client.get("/metrics").status_code == 403
    client.force_login(user_with_role("Operator", "op-metrics", is_staff=True))
    response = client.get("/metrics")
    assert response.status_code == 200 and b"atlas_" in response.content


def test_the_schema_and_docs_need_a_logged_in_user(client, db):
    client.force_login(user_with_role("Analyst", "analyst-schema"))
    for url in ("/api/schema/?format=json", "/api/docs/", "/api/redoc/"):
        assert client.get(url).status_code == 200, url


def test_health_endpoints_stay_open_and_say_nothing_to_anonymous(db):
    client = APIClient()
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code in (200, 503)
    body = response.json()
    assert set(body) == {"status", "checks"}, body
    assert all(set(check) == {"ok"} for check in body["checks"].values()), body


def test_readyz_gives_the_reasons_to_staff(client, settings, db):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    client.force_login(user_with_role("Operator", "op-ready", is_staff=True))
    broker = client.get("/readyz").json()["checks"]["broker"]
    assert broker["ok"] is False and broker["reason"]
