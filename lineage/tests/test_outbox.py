"""Outbox delivery to a real HTTP endpoint that refuses requests and goes down: exactly once, in order."""

from datetime import timedelta

from django.utils import timezone

from lineage import outbox
from lineage.models import OutboxEvent
from lineage.tasks import deliver_events_task

from .conftest import run_now


def _run_of(event: dict) -> str:
    """The pipeline run an event belongs to: its own id (pipeline events) or its parent's (step events)."""
    parent = event["run"].get("facets", {}).get("parent")
    return parent["run"]["runId"] if parent else event["run"]["runId"]


def _deliver_until_quiet(now, rounds=50):
    for _ in range(rounds):
        report = outbox.deliver_pending(now=now)
        if not OutboxEvent.objects.pending().exists():
            return
        now += timedelta(hours=2)  # past any backoff
        assert report.skipped_reason == ""
    raise AssertionError("events still pending")


def test_an_endpoint_that_refuses_and_is_down_for_a_while_gets_every_event_once_in_order(
    wh, simple_pipeline, lineage_hook, settings, endpoint
):
    settings.OPENLINEAGE_URL = endpoint.url
    settings.OPENLINEAGE_RETRY_BASE_SECONDS = 1
    settings.OPENLINEAGE_MAX_ATTEMPTS = 100
    pipeline = simple_pipeline()
    run_now(pipeline)
    run_now(pipeline)  # a second run: its own order, interleaved with the first's retries
    expected = list(OutboxEvent.objects.order_by("id").values_list("payload", flat=True))
    assert len(expected) == 16  # per run: the pipeline's START and COMPLETE around three steps' START and COMPLETE

    endpoint.refuse_every = 3
    now = timezone.now()
    first = outbox.deliver_pending(now=now)
    assert first.delivered and first.retrying
    endpoint.stop()  # down for a while
    down = outbox.deliver_pending(now=now + timedelta(hours=1))
    assert not down.delivered and all("ConnectionError" in e.last_error for e in OutboxEvent.objects.filter(pk__in=down.retrying))
    waiting = OutboxEvent.objects.pending().first()
    assert waiting.next_attempt_at > now + timedelta(hours=1)  # backed off
    endpoint.start()  # back, same port
    _deliver_until_quiet(now + timedelta(hours=2))

    assert len(endpoint.received) == 16
    by_run: dict[str, list] = {}
    for event in endpoint.received:
        by_run.setdefault(_run_of(event), []).append(event)
    assert len(by_run) == 2
    for key, received in by_run.items():
        wanted = [e for e in expected if _run_of(e) == key]
        assert received == wanted  # each run's events once, in the order emitted
    assert OutboxEvent.objects.filter(status="delivered").count() == 16
    assert outbox.deliver_pending().delivered == []  # nothing sent twice


def test_a_refused_event_backs_off_exponentially_and_blocks_later_ones_of_its_run(wh, simple_pipeline, lineage_hook, settings, endpoint):
    settings.OPENLINEAGE_URL = endpoint.url + "/wrong-base"  # 404 for everything
    settings.OPENLINEAGE_MAX_ATTEMPTS = 3
    run_now(simple_pipeline())
    now = timezone.now()
    report = outbox.deliver_pending(now=now)
    head = OutboxEvent.objects.order_by("id").first()
    assert report.retrying == [head.pk] and endpoint.requests == 1
    assert head.last_error.startswith("HTTP 404")
    assert outbox.backoff(1) == timedelta(seconds=settings.OPENLINEAGE_RETRY_BASE_SECONDS)
    assert outbox.backoff(3) == 4 * outbox.backoff(1)
    assert outbox.deliver_pending(now=now).retrying == []  # not due yet
    for i in range(2):
        outbox.deliver_pending(now=now + timedelta(days=i + 1))
    head.refresh_from_db()
    assert head.status == OutboxEvent.Status.FAILED and head.attempts == 3
    assert outbox.deliver_pending(now=now + timedelta(days=9)).retrying == []  # the run waits behind its failed head
    assert OutboxEvent.objects.pending().count() == 7

    settings.OPENLINEAGE_URL = endpoint.url
    assert outbox.retry(OutboxEvent.objects.filter(status="failed")) == 1
    assert len(outbox.deliver_pending().delivered) == 8
    assert [e["eventType"] for e in endpoint.received] == ["START", *["START", "COMPLETE"] * 3, "COMPLETE"]


def test_without_an_endpoint_events_wait_and_the_task_says_why(wh, simple_pipeline, lineage_hook):
    run_now(simple_pipeline())
    result = deliver_events_task.delay().get()
    assert result["delivered"] == 0 and "OPENLINEAGE_URL" in result["skipped"]
    assert OutboxEvent.objects.pending().count() == 8


def test_the_task_delivers_and_running_it_twice_sends_nothing_twice(wh, simple_pipeline, lineage_hook, settings, endpoint):
    settings.OPENLINEAGE_URL = endpoint.url
    run_now(simple_pipeline())
    assert deliver_events_task.delay().get()["delivered"] == 8
    assert deliver_events_task.delay().get()["delivered"] == 0
    assert len(endpoint.received) == 8


def test_a_step_run_that_ended_without_its_terminal_event_gets_it_before_delivery(wh, simple_pipeline, lineage_hook, official_spec):
    from lineage import events
    from pipelines.models import RunStatus, StepRun

    run = run_now(simple_pipeline())
    # An end that was not recorded (lineage failed while recording it; its savepoint kept the status).
    OutboxEvent.objects.filter(event_type="COMPLETE", job_name__endswith="people.total").delete()
    # A run reaped after its worker died: its step run cancelled, only START emitted.
    refine = run.step_runs.get(step_name="refine")
    StepRun.objects.filter(pk=refine.pk).update(status=RunStatus.CANCELLED)
    OutboxEvent.objects.filter(event_type="COMPLETE", job_name__endswith="people.refine").delete()

    assert outbox.deliver_pending(now=timezone.now()).skipped_reason  # just finished: within the grace, untouched
    assert OutboxEvent.objects.count() == 6
    last = OutboxEvent.objects.order_by("id").last().pk
    later = timezone.now() + timedelta(minutes=10)
    outbox.deliver_pending(now=later)
    ends = {e.job_name.split("/")[1]: e for e in OutboxEvent.objects.filter(pk__gt=last)}
    assert {k: e.event_type for k, e in ends.items()} == {"people.total": "COMPLETE", "people.refine": "ABORT"}
    for event in ends.values():
        assert events.validation_errors(event.payload, official_spec) == []
    outbox.deliver_pending(now=later)
    assert OutboxEvent.objects.count() == 8  # said once
