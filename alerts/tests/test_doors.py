"""Rules refused with a clear error at every door (model, API), the API, the admin, and send_test_alert."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from alerts import outbox
from alerts.models import AlertRule, Delivery
from atlas.api.testing import assert_error, token_client, user_with_role

from .conftest import free_port

WEBHOOK = {"channel": "webhook", "url": "https://hooks.example.test/atlas"}


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"events": []}, "events", "A list of event kinds"),
        ({"events": "run_failed"}, "events", "A list of event kinds"),
        ({"events": ["run_failed", "coffee_cold"]}, "events", "Unknown event kind(s) coffee_cold"),
        ({"events": ["test"]}, "events", "Unknown event kind(s) test"),
        ({"events": ["run_failed", "run_failed"]}, "events", "listed twice"),
        ({"url": ""}, "url", "Give the webhook URL"),
        ({"url": "ftp://hooks.example.test/x"}, "url", "must start with http:// or https://"),
        ({"url": "https://bot:hunter2@hooks.example.test/x"}, "url", "holds credentials"),
        ({"url": "https://hooks.example.test/x?token=abc"}, "url", "look like a secret"),
        ({"url": "env:HOME"}, "url", "may only reference environment variables named ATLAS_SOURCE_SECRET_"),
        ({"auth_header_ref": "Bearer abc123"}, "auth_header_ref", "never the secret itself"),
        ({"recipients": "ops@example.test"}, "recipients", "for e-mail rules"),
        ({"channel": "slack", "url": "https://hooks.slack.test/services/T0/B0/XYZ"}, "url", "is itself the secret"),
        ({"channel": "email", "url": "", "recipients": ""}, "recipients", "at least one e-mail address"),
        ({"channel": "email", "url": "", "recipients": "ops@example.test, not-an-address"}, "recipients", "'not-an-address' is not"),
        ({"channel": "email", "recipients": "ops@example.test"}, "url", "not a URL"),
        ({"max_per_window": 0}, "max_per_window", "At least 1"),
        ({"window_minutes": 0}, "window_minutes", "at least 1 minute"),
        ({"window_minutes": 20000}, "window_minutes", "at most a week"),
    ],
)
def test_a_bad_rule_is_refused_with_a_clear_error(db, fields, field, message):
    rule = AlertRule(name="r", **{"events": ["run_failed"], **WEBHOOK, **fields})
    with pytest.raises(ValidationError) as caught:
        rule.full_clean()
    assert message in " ".join(caught.value.message_dict[field])
    assert "hunter2" not in str(caught.value.message_dict) and "abc123" not in str(caught.value.message_dict)


@pytest.fixture
def operator(db):
    return token_client(user_with_role("Operator", "op"))


def test_the_api_refuses_what_the_model_refuses_and_creates_a_good_rule(operator):
    url = reverse("alertrule-list")
    bad = operator.post(url, {"name": "r", "events": ["coffee_cold"], **WEBHOOK}, format="json")
    assert "Unknown event kind(s) coffee_cold" in str(assert_error(bad, 409)["detail"])
    good = operator.post(url, {"name": "r", "events": ["run_failed", "freshness_breached"], **WEBHOOK}, format="json")
    assert good.status_code == 201, good.json()
    assert AlertRule.objects.get().events == ["run_failed", "freshness_breached"]


def test_the_api_queues_a_test_alert_and_retries_a_delivery(operator, rule, http_sink):
    found = rule(url=f"http://127.0.0.1:{free_port()}/down")
    response = operator.post(reverse("alertrule-test", args=[found.pk]))
    assert response.status_code == 202 and response.json()["kind"] == "test"
    outbox.deliver_pending()
    Delivery.objects.update(status="failed")
    found.url = http_sink.url
    found.save()
    delivery = Delivery.objects.get()
    retried = operator.post(reverse("alertdelivery-retry", args=[delivery.pk]))
    assert retried.json()["status"] == "pending" and retried.json()["attempts"] == 0
    assert outbox.deliver_pending().delivered == [delivery.pk]
    listed = operator.get(reverse("alertdelivery-list")).json()["results"]
    assert [(d["status"], d["attempts"]) for d in listed] == [("delivered", 1)]


def test_an_analyst_may_not_manage_rules(db, rule):
    analyst = token_client(user_with_role("Analyst", "an"))
    assert_error(analyst.post(reverse("alertrule-list"), {"name": "r", "events": ["run_failed"], **WEBHOOK}, format="json"), 403)
    found = rule()
    assert_error(analyst.post(reverse("alertrule-test", args=[found.pk])), 403)


def test_the_admin_lists_rules_and_the_outbox_and_queues_a_test(admin_client, rule, http_sink):
    found = rule(url=http_sink.url)
    response = admin_client.post(
        reverse("admin:alerts_alertrule_changelist"), {"action": "send_test", "_selected_action": [found.pk]}, follow=True
    )
    assert "1 test alert(s) queued" in response.content.decode()
    outbox.deliver_pending()
    page = admin_client.get(reverse("admin:alerts_delivery_changelist")).content.decode()
    assert "atlas-badge-delivered" in page and "Test alert for rule ops" in page
    assert admin_client.get(reverse("admin:alerts_alertevent_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:alerts_alertrule_change", args=[found.pk])).status_code == 200


def test_send_test_alert_reports_success_and_failure(rule, http_sink, capsys):
    rule("up", url=http_sink.url)
    call_command("send_test_alert", "up")
    assert "Test alert delivered with rule up" in capsys.readouterr().out
    assert http_sink.bodies()[0]["kind"] == "test"

    rule("down", url=f"http://127.0.0.1:{free_port()}/hook")
    with pytest.raises(CommandError, match=r"not delivered: Connection failed .* will be retried"):
        call_command("send_test_alert", "down")
    with pytest.raises(CommandError, match="No alert rule named 'nope' \\(rules: down, up\\)"):
        call_command("send_test_alert", "nope")


def test_beat_runs_both_tasks_and_they_are_permission_guarded(settings, rule, http_sink):
    from alerts.tasks import deliver_task, evaluate_conditions_task
    from compliance.models import PiiFinding
    from pipelines.models import Dataset

    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"alerts.evaluate_conditions", "alerts.deliver"} <= schedule
    assert {"alerts.evaluate_conditions", "alerts.deliver"} <= set(settings.ATLAS_TASK_PERMISSIONS)
    rule(events=["pii_review"], url=http_sink.url)
    PiiFinding.objects.create(dataset=Dataset.objects.create(name="c", layer="explore", table="c"), column="mail",
                              entity="EMAIL_ADDRESS")
    assert evaluate_conditions_task.delay().get() == {"opened": 1, "closed": 0, "broken": []}
    assert deliver_task.delay().get() == {"delivered": 1, "retrying": 0, "failed": 0, "suppressed": 0}
    assert http_sink.bodies()[0]["kind"] == "pii_review"
