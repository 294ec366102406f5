"""``manage.py beat_health``: beat's container health check (docker-compose.yml)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

pytestmark = pytest.mark.django_db


def beat_health(*args: str) -> str:
    out = io.StringIO()
    call_command("beat_health", *args, stdout=out)
    return out.getvalue()


def schedule(name: str, every_seconds: int, last_run_ago: timedelta | None, *, enabled: bool = True) -> PeriodicTask:
    interval, _ = IntervalSchedule.objects.get_or_create(every=every_seconds, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(name=name, task="lineage.deliver_events", interval=interval, enabled=enabled)
    # date_changed is set on every save: last_run_at alone says when beat last sent it
    PeriodicTask.objects.filter(pk=task.pk).update(
        last_run_at=None if last_run_ago is None else timezone.now() - last_run_ago,
        start_time=None,
    )
    return task


def test_beat_that_stopped_sending_is_unhealthy():
    schedule("deliver events", 30, timedelta(hours=2))
    schedule("reap runs", 300, timedelta(seconds=10))
    with pytest.raises(CommandError, match=r"1 of 2 schedules overdue by more than 600 s: 'deliver events' 71\d\d s"):
        beat_health()


def test_beat_that_never_started_is_unhealthy():
    schedule("switched off", 30, timedelta(hours=2), enabled=False)
    with pytest.raises(CommandError, match="celery beat has not started"):
        beat_health()


def test_beat_on_time_is_healthy():
    schedule("deliver events", 30, timedelta(seconds=200))  # beat saves last runs every few minutes
    schedule("daily", 86400, timedelta(hours=20))
    assert "Beat is on time: 2 schedules" in beat_health()


def test_the_allowed_lag_is_an_option():
    schedule("deliver events", 30, timedelta(seconds=200))
    with pytest.raises(CommandError, match="overdue by more than 60 s"):
        beat_health("--max-lag", "60")


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_lag_that_is_not_positive_is_refused(value):
    with pytest.raises(CommandError, match="--max-lag must be a positive number of seconds"):
        beat_health("--max-lag", value)
