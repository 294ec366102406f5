"""atlas.background: a task runs once, its error never carries a value from the data, an unknown kind is refused."""

from __future__ import annotations

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
