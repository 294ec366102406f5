"""The outbox against real sinks: failure paths first (guard, sink down, 429/5xx, slow sink, rate limit)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import outbox, service
from alerts.models import Delivery
from atlas.alerting import Event

from .conftest import Answer, free_port


def event(n: int = 1, kind: str = "run_failed", **facts) -> Event:
    return Event(kind=kind, title=f"Pipeline orders: run #{n} failed", admin_path=f"/admin/pipelines/pipelinerun/{n}/change/",
                 facts={"pipeline": "orders", "run": n, **facts})


def one(**filters) -> Delivery:
    return Delivery.objects.get(**filters)


def test_a_loopback_webhook_is_refused_by_the_url_guard_unless_allowed(settings, rule, http_sink):
    settings.ATLAS_URL_ALLOWED_NETWORKS = []
    rule(url=http_sink.url)
    service.record([event()])
    report = outbox.deliver_pending()
    delivery = one()
    assert report.failed == [delivery.pk] and delivery.status == "failed" and delivery.attempts == 1
    assert "outbound URL guard" in delivery.last_error and "non-public" in delivery.last_error
    assert http_sink.received == []


def test_a_sink_that_is_down_is_retried_with_exponential_backoff_then_marked_failed(rule):
    port = free_port()
    rule(url=f"http://127.0.0.1:{port}/hook")
    t0 = timezone.now()
    service.record([event()], now=t0)

    assert outbox.deliver_pending(now=t0).retrying
    first = one()
    assert first.status == "pending" and first.attempts == 1 and "Connection failed" in first.last_error
    assert str(port) not in first.last_error  # never the URL
    wait1 = first.next_attempt_at - t0
    assert timedelta(seconds=5) <= wait1 <= timedelta(seconds=10)  # base 10 s, jitter 50-100 %

    assert outbox.deliver_pending(now=t0 + wait1 - timedelta(seconds=1)).retrying == []  # not due yet
    t1 = first.next_attempt_at
    outbox.deliver_pending(now=t1)
    second = one()
    assert second.attempts == 2 and second.status == "pending"
    assert timedelta(seconds=10) <= second.next_attempt_at - t1 <= timedelta(seconds=20)  # doubled

    report = outbox.deliver_pending(now=second.next_attempt_at)
    last = one()
    assert report.failed == [last.pk] and last.status == "failed" and last.attempts == 3  # MAX_ATTEMPTS


def test_backoff_is_capped_and_honours_retry_after(settings):
    settings.ATLAS_ALERTS_RETRY_BASE_SECONDS, settings.ATLAS_ALERTS_RETRY_MAX_SECONDS = 10.0, 100.0
    for attempts in range(1, 12):
        wait = outbox.backoff(attempts).total_seconds()
        expected = min(100.0, 10.0 * 2 ** (attempts - 1))
        assert expected / 2 <= wait <= expected
    assert outbox.backoff(1, retry_after=60).total_seconds() == 60
    assert outbox.backoff(1, retry_after=10_000).total_seconds() == 100  # capped


def test_429_waits_for_retry_after_then_delivers(rule, http_sink):
    http_sink.plan = [Answer(429, retry_after="50")]
    rule(url=http_sink.url)
    t0 = timezone.now()
    service.record([event()], now=t0)
    outbox.deliver_pending(now=t0)
    waiting = one()
    assert waiting.last_error == "HTTP 429." and waiting.next_attempt_at >= t0 + timedelta(seconds=50)
    assert outbox.deliver_pending(now=t0 + timedelta(seconds=30)).delivered == []
    assert outbox.deliver_pending(now=waiting.next_attempt_at).delivered == [waiting.pk]
    assert len(http_sink.received) == 2 and one().status == "delivered" and one().attempts == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried(rule, http_sink, status):
    http_sink.plan = [Answer(status)]
    rule(url=http_sink.url)
    t0 = timezone.now()
    service.record([event()], now=t0)
    assert outbox.deliver_pending(now=t0).retrying
    assert one().last_error == f"HTTP {status}."
    assert outbox.deliver_pending(now=t0 + timedelta(seconds=11)).delivered
    assert one().status == "delivered"


@pytest.mark.parametrize("status", [400, 401, 404, 410])
def test_other_4xx_fail_at_once_and_can_be_retried_from_the_outbox(rule, http_sink, status):
    http_sink.plan = [Answer(status)]
    rule(url=http_sink.url)
    service.record([event()])
    assert outbox.deliver_pending().failed
    failed = one()
    assert failed.attempts == 1 and failed.last_error.startswith(f"HTTP {status}: refused")
    assert outbox.retry([failed]) == 1
    assert outbox.deliver_pending().delivered == [failed.pk]


def test_a_redirect_is_not_followed(rule, http_sink):
    http_sink.plan = [Answer(302)]
    rule(url=http_sink.url)
    service.record([event()])
    outbox.deliver_pending()
    assert one().status == "failed" and "redirects" in one().last_error


def test_a_slow_sink_times_out_and_is_retried(settings, rule, http_sink):
    settings.ATLAS_ALERTS_HTTP_TIMEOUT_SECONDS = 0.3
    http_sink.plan = [Answer(200, delay=1.5)]
    rule(url=http_sink.url)
    t0 = timezone.now()
    service.record([event()], now=t0)
    assert outbox.deliver_pending(now=t0).retrying
    assert "timeout" in one().last_error
    assert outbox.deliver_pending(now=t0 + timedelta(seconds=11)).delivered


def test_the_rate_limit_suppresses_beyond_n_per_window_and_reports_the_count(rule, http_sink):
    rule(url=http_sink.url, max_per_window=2, window_minutes=60)
    t0 = timezone.now()
    service.record([event(n) for n in range(1, 6)], now=t0)
    report = outbox.deliver_pending(now=t0)
    assert len(report.delivered) == 2 and len(report.suppressed) == 3
    assert [b["facts"]["run"] for b in http_sink.bodies()] == [1, 2]

    # Still within the window: nothing more is sent.
    assert outbox.deliver_pending(now=t0 + timedelta(minutes=30)).delivered == []
    # The window has room again: the newest suppressed alert goes out as a digest, counting the other two.
    later = t0 + timedelta(minutes=61)
    report = outbox.deliver_pending(now=later)
    assert len(report.delivered) == 1
    digest = http_sink.bodies()[-1]
    assert digest["facts"]["run"] == 5 and digest["suppressed"] == 2
    assert Delivery.objects.filter(status="suppressed", reported_in__isnull=True).count() == 0
    assert outbox.deliver_pending(now=later + timedelta(minutes=1)).delivered == []  # counted once


def test_the_next_message_carries_the_suppressed_count(rule, http_sink):
    rule(url=http_sink.url, max_per_window=1, window_minutes=10)
    t0 = timezone.now()
    service.record([event(1), event(2), event(3)], now=t0)
    outbox.deliver_pending(now=t0)
    later = t0 + timedelta(minutes=11)
    service.record([event(4)], now=later)
    outbox.deliver_pending(now=later)
    assert [(b["facts"]["run"], b["suppressed"]) for b in http_sink.bodies()] == [(1, 0), (4, 2)]
    assert one(event__facts__run=4).suppressed_count == 2


def test_a_delivery_leased_by_another_worker_is_not_sent_twice(rule, http_sink):
    rule(url=http_sink.url)
    service.record([event()])
    Delivery.objects.update(lease_until=timezone.now() + timedelta(minutes=5))
    assert outbox.deliver_pending().delivered == []
    assert http_sink.received == []


def test_the_webhook_json_links_into_the_admin(rule, http_sink):
    rule(url=http_sink.url)
    service.record([event(7)])
    outbox.deliver_pending()
    body = http_sink.bodies()[0]
    assert body["kind"] == "run_failed" and body["rule"] == "ops" and body["severity"] == "error"
    assert body["link"] == "https://atlas.example.test/admin/pipelines/pipelinerun/7/change/"
    assert http_sink.received[0]["headers"]["Content-Type"] == "application/json"


def test_a_webhook_token_is_sent_by_reference_and_never_stored(monkeypatch, rule, http_sink):
    monkeypatch.setenv("ATLAS_SOURCE_SECRET_ALERT_TOKEN", "Bearer s3cr3t-t0ken")
    found = rule(url=http_sink.url, auth_header_ref="env:ATLAS_SOURCE_SECRET_ALERT_TOKEN")
    service.record([event()])
    outbox.deliver_pending()
    assert http_sink.received[0]["headers"]["Authorization"] == "Bearer s3cr3t-t0ken"
    found.refresh_from_db()
    assert "s3cr3t" not in found.auth_header_ref and "s3cr3t" not in str(Delivery.objects.values())


def test_a_reference_to_an_unset_variable_fails_naming_the_variable(rule, http_sink):
    rule(url=http_sink.url, auth_header_ref="env:ATLAS_SOURCE_SECRET_NOT_SET_HERE")
    service.record([event()])
    outbox.deliver_pending()
    assert one().status == "failed" and "ATLAS_SOURCE_SECRET_NOT_SET_HERE is not set" in one().last_error
    assert http_sink.received == []


def test_slack_webhook_url_by_reference_gets_slack_text(monkeypatch, rule, http_sink):
    monkeypatch.setenv("ATLAS_SOURCE_SECRET_SLACK_URL", http_sink.url)
    rule(channel="slack", url="env:ATLAS_SOURCE_SECRET_SLACK_URL")
    service.record([event(3)])
    outbox.deliver_pending()
    body = http_sink.bodies()[0]
    assert list(body) == ["text"]
    assert "<https://atlas.example.test/admin/pipelines/pipelinerun/3/change/|Pipeline orders: run #3 failed>" in body["text"]
    assert "pipeline: orders" in body["text"]


def test_email_goes_through_a_real_smtp_server(rule, smtp_sink):
    rule(channel="email", recipients="ops@example.test, oncall@example.test")
    service.record([event(9)])
    assert outbox.deliver_pending().delivered
    [(sender, recipients, text)] = smtp_sink.messages
    assert recipients == ["ops@example.test", "oncall@example.test"]
    assert "Subject: [Atlas error] Pipeline orders: run #9 failed" in text
    assert "https://atlas.example.test/admin/pipelines/pipelinerun/9/change/" in text


def test_email_with_the_mail_server_down_is_retried(settings, rule, smtp_sink):
    settings.EMAIL_PORT = free_port()
    rule(channel="email", recipients="ops@example.test")
    service.record([event()])
    assert outbox.deliver_pending().retrying
    assert one().status == "pending" and "Mail not sent" in one().last_error
