"""Polled conditions: freshness (warn and error ages), overdue data-subject requests, findings awaiting review."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from alerts import conditions, outbox
from alerts.models import AlertEvent, Condition, Delivery
from atlas import extensions
from atlas.alerting import Event
from compliance.models import PiiFinding
from pipelines.models import Dataset
from privacy.models import DataSubjectRequest
from quality.models import Check
from quality.service import check_freshness
from quality.tests.conftest import COLUMNS, create_table

IDENTIFIER = "zoe.private@example.com"


@pytest.fixture
def stale(wh, db):
    """A chart table whose newest ``seen_at`` is ``hours`` old, its dataset and a freshness expectation."""

    def make(hours: float, **params) -> Check:
        newest = datetime.now() - timedelta(hours=hours)
        create_table(wh, "chart", "visits", [(1, "a", 1, "x", newest)], COLUMNS)
        dataset, _ = Dataset.objects.get_or_create(name="visits", defaults={"layer": "chart", "table": "visits"})
        check, _ = Check.objects.update_or_create(
            dataset=dataset, name="visits_fresh",
            defaults={"kind": "freshness", "columns": ["seen_at"], "severity": "fail", "params": params},
        )
        check_freshness()
        return check

    return make


def test_freshness_warns_past_the_warn_age_errors_past_the_error_age_and_clears(stale, rule, http_sink):
    warn_rule = rule("all", events=["freshness_breached"], url=http_sink.url)
    errors_only = rule("errors", events=["freshness_breached"], min_severity="error", url=http_sink.url)
    stale(8, warn_after_hours=6, max_age_hours=24)
    report = conditions.evaluate()
    [event] = AlertEvent.objects.all()
    assert report.opened == [event.key] and event.severity == "warning" and event.facts["level"] == "warning"
    assert "chart.visits is stale (8.0 h old, warning age 6 h" in event.title
    assert list(Delivery.objects.values_list("rule", flat=True)) == [warn_rule.pk]

    assert conditions.evaluate().opened == []  # still stale: fired once
    check = stale(30, warn_after_hours=6, max_age_hours=24)
    escalated = conditions.evaluate()
    assert escalated.opened == [f"freshness:{check.pk}:error"] and escalated.closed == [f"freshness:{check.pk}:warning"]
    error = AlertEvent.objects.get(severity="error")
    assert error.facts["outcome"] == "fail" and set(Delivery.objects.filter(event=error).values_list("rule", flat=True)) == {
        warn_rule.pk, errors_only.pk}

    stale(1, warn_after_hours=6, max_age_hours=24)
    assert conditions.evaluate().closed == [f"freshness:{check.pk}:error"]
    assert Condition.objects.count() == 0
    stale(8, warn_after_hours=6, max_age_hours=24)
    assert conditions.evaluate().opened  # stale again after it cleared: fires again
    assert outbox.deliver_pending().delivered


def test_a_freshness_warn_age_must_be_below_the_error_age(stale, db):
    dataset = Dataset.objects.create(name="d", layer="chart", table="d")
    check = Check(dataset=dataset, name="f", kind="freshness", columns=["seen_at"], params={"max_age_hours": 2, "warn_after_hours": 3})
    with pytest.raises(Exception, match="warn_after_hours is an age in hours below max_age_hours"):
        check.full_clean()


def test_an_overdue_request_alerts_without_the_subjects_identifiers(db, rule):
    rule(events=["dsr_overdue"])
    request = DataSubjectRequest.objects.create(
        kind="erasure", identifiers={"email": [IDENTIFIER]}, reference=f"letter from {IDENTIFIER}",
        due_at=timezone.now() - timedelta(days=2),
    )
    DataSubjectRequest.objects.create(kind="access", identifiers={"email": ["a@b.test"]}, due_at=timezone.now() + timedelta(days=3))
    conditions.evaluate()
    [event] = AlertEvent.objects.all()
    assert event.kind == "dsr_overdue" and event.title.startswith(f"Data-subject request #{request.pk} (erasure) is overdue")
    assert event.admin_path == f"/admin/privacy/datasubjectrequest/{request.pk}/change/"
    assert IDENTIFIER not in json.dumps(list(AlertEvent.objects.values()), default=str)
    request.status = "completed"
    request.save()
    assert conditions.evaluate().closed == [f"dsr_overdue:{request.pk}"]


def test_a_pii_finding_awaiting_review_alerts_without_its_samples(db, rule):
    rule(events=["pii_review"])
    dataset = Dataset.objects.create(name="customers", layer="explore", table="customers")
    finding = PiiFinding.objects.create(dataset=dataset, column="contact", entity="EMAIL_ADDRESS", share=0.9,
                                        samples=[IDENTIFIER])
    conditions.evaluate()
    [event] = AlertEvent.objects.all()
    assert event.title == "PII finding awaiting review: explore.customers.contact (EMAIL_ADDRESS)"
    assert IDENTIFIER not in json.dumps(event.facts) and Delivery.objects.count() == 1
    finding.status = PiiFinding.Status.CONFIRMED
    finding.save()
    assert conditions.evaluate().closed == [f"pii_review:{finding.pk}"]


def test_a_broken_source_leaves_its_conditions_open_and_others_go_on(db, rule):
    state = {"broken": False}

    def flaky(now):
        if state["broken"]:
            raise RuntimeError("source down")
        yield Event(kind="pii_review", title="x", key="flaky:1", severity="warning")

    with extensions.added("flaky_app", {"alert_sources": [flaky]}):
        assert conditions.evaluate().opened == ["flaky:1"]
        state["broken"] = True
        report = conditions.evaluate()
        assert report.broken_sources and report.closed == [] and Condition.objects.filter(key="flaky:1").exists()
        state["broken"] = False
        assert conditions.evaluate().opened == []  # not fired again


@pytest.mark.parametrize(
    "bad, message",
    [
        (Event(kind="nope", title="x", key="k"), "Unknown alert event kind"),
        (Event(kind="pii_review", title="x", key="k", severity="panic"), "Unknown severity"),
        (Event(kind="pii_review", title="x", key="k", facts={"rows": [1, 2]}), "not a plain value"),
        (Event(kind="pii_review", title="x", key="k", admin_path="https://elsewhere.test/"), "starting with /"),
        (Event(kind="pii_review", title="x"), "without a key"),
    ],
)
def test_a_source_reporting_a_bad_event_is_refused_with_a_clear_error(db, caplog, bad, message):
    with extensions.added("bad_app", {"alert_sources": [lambda now: [bad]]}):
        report = conditions.evaluate()
    assert report.broken_sources and AlertEvent.objects.count() == 0
    assert message in caplog.text
