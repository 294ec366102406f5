"""atlas.background: a task runs once, its error never carries a value from the data, an unknown kind is refused."""

from __future__ import annotations

import uuid

import pytest

from atlas import background, extensions
from atlas.models import BackgroundTask

pytestmark = pytest.mark.django_db


class Refused(ValueError):
    """A refusal written for the operator (no personal data), like DsrError."""


CALLS: list[dict] = []


def _ok(task, n: int) -> dict:
    CALLS.append({"n": n})
    background.report_progress(task, 0.5)
    return {"doubled": 2 * n}


def _leaks(task) -> dict:
    raise RuntimeError("row holds alice@example.com")  # a value from the data


def _refuses(task) -> dict:
    raise Refused("Request #3 is received: verify it first.")


KINDS = [background.Kind("test.ok", _ok), background.Kind("test.leaks", _leaks),
         background.Kind("test.refuses", _refuses, errors=(Refused,))]


@pytest.fixture(autouse=True)
def kinds():
    CALLS.clear()
    with extensions.added("test_background", {"background_tasks": KINDS}):
        yield


def test_a_task_runs_inline_in_tests_and_records_its_result():
    task = background.enqueue("test.ok", n=21, result_path="/api/v1/somewhere/")
    assert task.state == "succeeded" and task.result == {"doubled": 42} and task.progress == 1.0
    assert task.started_at and task.finished_at and CALLS == [{"n": 21}]


def test_a_second_delivery_does_nothing():
    task = background.enqueue("test.ok", n=1)
    assert background.execute(task.pk) is None  # already claimed and finished
    BackgroundTask.objects.filter(pk=task.pk).update(state="running")
    assert background.execute(task.pk) is None
    assert CALLS == [{"n": 1}]


def test_an_unexpected_error_is_recorded_by_its_class_only():
    task = background.enqueue("test.leaks")
    assert task.state == "failed"
    assert "alice@example.com" not in task.error and task.error.startswith("RuntimeError (the detail is in")


def test_a_known_refusal_keeps_its_message():
    task = background.enqueue("test.refuses")
    assert task.state == "failed" and task.error == "Request #3 is received: verify it first."


def test_an_unknown_kind_is_refused_before_anything_is_recorded():
    with pytest.raises(KeyError, match="Unknown background task kind 'nope'"):
        background.enqueue("nope")
    assert not BackgroundTask.objects.exists()


@pytest.mark.django_db(transaction=True)  # outside a transaction the task is sent at once: the API's 503
def test_a_broker_that_cannot_be_reached_fails_the_task_and_says_so(settings):
    import socket

    from pipelines.tests.workers import celery_conf

    with socket.socket() as s:  # a port nothing listens on: a broker that is down, for real
        s.bind(("127.0.0.1", 0))
        down = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    settings.CELERY_TASK_ALWAYS_EAGER, settings.CELERY_BROKER_URL = False, down
    with (celery_conf(task_always_eager=False, broker_url=down, broker_read_url=None, broker_write_url=None),
          pytest.raises(background.TaskNotSent, match="cannot be reached")):
        background.enqueue("test.ok", n=3)
    task = BackgroundTask.objects.get()
    assert task.state == "failed" and "cannot be reached" in task.error and CALLS == []


def _running(**fields) -> BackgroundTask:
    return BackgroundTask.objects.create(id=uuid.uuid4(), kind="test.ok", state="running", **fields)


def test_the_reaper_fails_a_silent_running_task_with_the_reason_and_keeps_the_others(settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.ATLAS_TASK_LOST_SECONDS = 30
    now = timezone.now()
    lost = _running(started_at=now - timedelta(minutes=5), heartbeat_at=now - timedelta(seconds=45))
    never_beat = _running(started_at=now - timedelta(minutes=5))  # claimed before heartbeats were recorded
    alive = _running(started_at=now - timedelta(hours=2), heartbeat_at=now - timedelta(seconds=5))
    queued = BackgroundTask.objects.create(id=uuid.uuid4(), kind="test.ok")
    assert background.reap_lost_tasks() == 2
    for task in (lost, never_beat):
        task.refresh_from_db()
        assert task.state == "failed" and task.finished_at
        assert "stopped reporting" in task.error and "ATLAS_TASK_LOST_SECONDS=30" in task.error
    lost.refresh_from_db()
    assert "no heartbeat for 45 s" in lost.error
    alive.refresh_from_db()
    queued.refresh_from_db()
    assert alive.state == "running" and queued.state == "queued"
    assert background.reap_lost_tasks() == 0


def test_a_late_finish_of_a_task_declared_lost_does_not_overwrite_the_verdict(settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.ATLAS_TASK_LOST_SECONDS = 30
    task = _running(started_at=timezone.now() - timedelta(minutes=5), heartbeat_at=timezone.now() - timedelta(minutes=4))
    assert background.reap_lost_tasks() == 1
    assert background.finish(task, "succeeded", result={"late": True}) is False  # its process was only cut off
    task.refresh_from_db()
    assert task.state == "failed" and task.result == {} and "stopped reporting" in task.error


@pytest.mark.django_db(transaction=True)  # the heartbeat thread writes through its own connection
def test_a_running_task_writes_its_heartbeat(settings):
    import time

    settings.ATLAS_TASK_HEARTBEAT_SECONDS = 0.05
    seen: list = []

    def _slow(task) -> dict:
        time.sleep(0.5)
        seen.append(BackgroundTask.objects.get(pk=task.pk).heartbeat_at)
        return {}

    with extensions.added("test_background_slow", {"background_tasks": [background.Kind("test.slow", _slow)]}):
        task = background.enqueue("test.slow")
    assert task.state == "succeeded"
    assert seen and seen[0] > task.started_at  # beaten while it ran, not only when it was claimed
