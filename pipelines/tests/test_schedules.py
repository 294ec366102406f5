import json

import pytest
from django.core.exceptions import ValidationError
from django_celery_beat.models import PeriodicTask

from pipelines.models import Pipeline, PipelineRun, RunStatus, Trigger
from pipelines.tasks import trigger_scheduled_run


def test_a_schedule_is_kept_in_celery_beat(db):
    pipeline = Pipeline.objects.create(name="nightly", schedule="30 2 * * 1-5")
    task = PeriodicTask.objects.get(pk=pipeline.periodic_task_id)
    assert task.task == "pipelines.trigger_scheduled_run"
    assert json.loads(task.kwargs) == {"pipeline_id": pipeline.pk}
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "2", "1-5")
    assert task.enabled


def test_changing_disabling_and_clearing_the_schedule_follow_into_beat(db):
    pipeline = Pipeline.objects.create(name="nightly", schedule="0 1 * * *")
    pipeline.schedule, pipeline.enabled = "15 3 * * *", False
    pipeline.save()
    task = PeriodicTask.objects.get()
    assert (task.crontab.minute, task.crontab.hour, task.enabled) == ("15", "3", False)
    pipeline.schedule = ""
    pipeline.save()
    assert not PeriodicTask.objects.exists()
    assert Pipeline.objects.get().periodic_task is None


def test_deleting_a_pipeline_removes_its_beat_entry(db):
    Pipeline.objects.create(name="nightly", schedule="0 1 * * *").delete()
    assert not PeriodicTask.objects.exists()


@pytest.mark.parametrize(("expr", "message"), [("0 1 * *", "five fields"), ("99 1 * * *", "Invalid crontab")])
def test_a_bad_crontab_is_refused_on_save(db, expr, message):
    with pytest.raises(ValidationError, match=message):
        Pipeline(name="bad", schedule=expr).full_clean()


def test_the_beat_task_starts_a_scheduled_run_and_is_refused_while_one_is_active(wh, simple_pipeline):
    pipeline = simple_pipeline()
    run_id = trigger_scheduled_run(pipeline.pk)
    run = PipelineRun.objects.get(pk=run_id)
    assert run.trigger == Trigger.SCHEDULE
    PipelineRun.objects.filter(pk=run_id).update(status=RunStatus.RUNNING)
    assert trigger_scheduled_run(pipeline.pk) is None
    assert trigger_scheduled_run(999_999) is None
