"""Beat's batch: the runs of every pipeline due in one tick queued in one transaction, then sent."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError as KombuOperationalError

from pipelines import runner, tasks
from pipelines.models import Pipeline, PipelineRun, RunStatus, Trigger


class _Result:
    def __init__(self, n: int) -> None:
        self.id = f"task-{n}"


@pytest.fixture
def sent(settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    messages: list[int] = []
    monkeypatch.setattr(tasks.execute_run_task, "delay",
                        lambda run_id: messages.append(run_id) or _Result(len(messages)))
    return messages


def test_every_due_pipeline_gets_a_queued_run_and_its_task_and_a_busy_one_is_refused_alone(db, sent):
    pipelines = [Pipeline.objects.create(name=f"due_{i}") for i in range(3)]
    busy = runner.start_run(pipelines[1], dispatch=False)  # still queued: its pipeline refuses another
    started, refused = runner.start_runs([p.pk for p in pipelines] + [999_999], trigger=Trigger.SCHEDULE)
    assert [r.pipeline_id for r in started] == [pipelines[0].pk, pipelines[2].pk]
    assert len(refused) == 2
    assert "already has a run in progress" in refused[0] and refused[1] == "Scheduled pipeline 999999 no longer exists."
    assert sent == [r.pk for r in started]  # one message per run, after the commit
    for run in started:
        run.refresh_from_db()
        assert (run.status, run.trigger, run.dispatches) == (RunStatus.QUEUED, Trigger.SCHEDULE, 1)
        assert run.celery_task_id.startswith("task-") and run.dispatched_at is not None
    assert PipelineRun.objects.filter(pipeline=pipelines[1]).get() == busy


def test_the_batch_with_the_broker_down_fails_each_run_with_one_line_and_leaves_nothing_queued(
    db, settings, monkeypatch
):
    settings.CELERY_TASK_ALWAYS_EAGER = False

    def down(run_id):
        raise KombuOperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.execute_run_task, "delay", down)
    pipelines = [Pipeline.objects.create(name=f"due_{i}") for i in range(2)]
    started, refused = runner.start_runs([p.pk for p in pipelines])
    assert len(started) == 2 and not refused
    assert not PipelineRun.objects.active().exists()
    for run in PipelineRun.objects.all():
        assert run.status == RunStatus.FAILED and "\n" not in run.error
        assert run.error.startswith("The task queue (broker) cannot be reached")
