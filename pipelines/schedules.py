"""Pipeline schedules are kept in django-celery-beat, so ``celery beat`` runs them
(its scheduler, ``pipelines.beat.Scheduler``, triggers them in beat itself)."""

from __future__ import annotations

import json
import re

from celery.schedules import crontab
from django.conf import settings
from django_celery_beat.models import CrontabSchedule, PeriodicTask

TASK_NAME = "pipelines.trigger_scheduled_run"
# One crontab field, by allowlist: comma-separated items, each ``*``, a number or a three-letter
# name (jan, mon), or a range of them, with an optional ``/step``. Celery checks the values;
# this keeps what it never expected (``-1`` sent its parser into endless recursion) out.
_ATOM = r"(?:\d{1,2}|[a-z]{3})"
_ITEM = rf"(?:\*|{_ATOM}(?:-{_ATOM})?)(?:/\d{{1,2}})?"
FIELD = re.compile(rf"{_ITEM}(?:,{_ITEM}){{0,59}}", re.IGNORECASE)


def parse_crontab(expr: str) -> dict[str, str]:
    """Split a five-field crontab and let Celery validate each field."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f"A crontab has five fields (minute hour day-of-month month day-of-week); {expr!r} has {len(fields)}."
        )
    parts = dict(zip(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), fields, strict=True))
    for name, value in parts.items():
        if not FIELD.fullmatch(value):
            raise ValueError(
                f"Invalid crontab {expr!r}: the {name.replace('_', ' ')} field {value[:40]!r} is not *, a number,"
                " a name (jan, mon), a range (1-5) or a step (*/15), or a comma-separated list of them."
            )
    try:
        crontab(**parts)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"Invalid crontab {expr!r}: {exc}") from exc
    return parts


def sync_schedule(pipeline) -> PeriodicTask | None:
    """Create, update or remove the beat entry that triggers ``pipeline``."""
    task = pipeline.periodic_task
    if not pipeline.schedule:
        if task is not None:
            type(pipeline).objects.filter(pk=pipeline.pk).update(periodic_task=None)
            pipeline.periodic_task = None
            task.delete()
        return None
    cron, _ = CrontabSchedule.objects.get_or_create(**parse_crontab(pipeline.schedule), timezone=settings.TIME_ZONE)
    values = {
        "name": f"atlas pipeline {pipeline.pk}: {pipeline.name}"[:200],
        "task": TASK_NAME,
        "crontab": cron,
        "interval": None,
        "kwargs": json.dumps({"pipeline_id": pipeline.pk}),
        "enabled": pipeline.enabled,
        "description": f"Runs the Atlas pipeline {pipeline.name!r} (managed by Atlas; edit the pipeline instead).",
    }
    if task is None:
        task = PeriodicTask.objects.create(**values)
        type(pipeline).objects.filter(pk=pipeline.pk).update(periodic_task=task)
        pipeline.periodic_task = task
    else:
        for key, value in values.items():
            setattr(task, key, value)
        task.save()
    return task
