"""Data intervals: which span of time a run is about, from a crontab or a stated interval.

A scheduled run covers the interval that just ended (like Airflow's data
interval): for ``0 2 * * *`` the run fired at 02:00 on the 3rd covers
[02:00 on the 2nd, 02:00 on the 3rd). Its logical date is the interval's start.
A backfill cuts a date range into the same intervals (or into a stated
``N minutes|hours|days|weeks``), one run each.

Crontab fields mean what they mean to Celery beat (which fires the schedule):
a time fires when its minute, hour, day of month, month and day of week all
match, in ``settings.TIME_ZONE``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass

from celery.schedules import crontab
from django.conf import settings

from .schedules import parse_crontab

EVERY_RE = re.compile(r"^\s*(\d+)\s*(minute|hour|day|week)s?\s*$", re.IGNORECASE)
UNITS = {"minute": "minutes", "hour": "hours", "day": "days", "week": "weeks"}
# How far back a crontab is searched for its previous time (29 February fires once in 4 years).
LOOKBACK_DAYS = 366 * 8 + 2
MAX_INTERVALS = 10_000


@dataclass(frozen=True)
class Interval:
    start: dt.datetime
    end: dt.datetime


def _tz() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def parse_every(spec: str) -> dt.timedelta | None:
    """``'6 hours'`` as a timedelta; None when ``spec`` is not of that form."""
    match = EVERY_RE.match(spec or "")
    if not match:
        return None
    count = int(match.group(1))
    if count <= 0:
        raise ValueError(f"An interval must be longer than zero; {spec!r} is not.")
    return dt.timedelta(**{UNITS[match.group(2).lower()]: count})


def check_spec(spec: str) -> None:
    """Refuse what is neither a five-field crontab nor ``N minutes|hours|days|weeks``."""
    if parse_every(spec) is not None:
        return
    try:
        parse_crontab(spec or "")
    except ValueError as exc:
        raise ValueError(
            f"{exc} Give the pipeline's crontab or an interval such as '1 day', '6 hours' or '15 minutes'."
        ) from exc


class Cron:
    """The times a five-field crontab fires (Celery's meaning of the fields)."""

    def __init__(self, expr: str) -> None:
        c = crontab(**parse_crontab(expr))
        self.minutes = sorted(c.minute)
        self.hours = sorted(c.hour)
        self.days, self.months, self.weekdays = c.day_of_month, c.month_of_year, c.day_of_week
        self.tz = _tz()

    def _day_matches(self, day: dt.date) -> bool:
        # Celery counts weekdays from Sunday = 0; Python from Monday = 0.
        return day.day in self.days and day.month in self.months and (day.weekday() + 1) % 7 in self.weekdays

    def _times_on(self, day: dt.date) -> Iterator[dt.datetime]:
        for hour in self.hours:
            for minute in self.minutes:
                local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.tz)
                yield local.astimezone(dt.UTC)

    def times(self, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
        """Every time in [start, end], ascending."""
        day = start.astimezone(self.tz).date() - dt.timedelta(days=1)
        last = end.astimezone(self.tz).date() + dt.timedelta(days=1)
        while day <= last:
            if self._day_matches(day):
                for t in self._times_on(day):
                    if start <= t <= end:
                        yield t
            day += dt.timedelta(days=1)

    def previous(self, at: dt.datetime, *, strictly: bool = False) -> dt.datetime | None:
        """The latest time at or before ``at`` (before it when ``strictly``)."""
        day = at.astimezone(self.tz).date() + dt.timedelta(days=1)
        for _ in range(LOOKBACK_DAYS):
            if self._day_matches(day):
                for t in sorted(self._times_on(day), reverse=True):
                    if t < at or (t == at and not strictly):
                        return t
            day -= dt.timedelta(days=1)
        return None


def intervals(spec: str, start: dt.datetime, end: dt.datetime) -> list[Interval]:
    """The intervals of ``spec`` inside [start, end), in order; refuses a range with too many."""
    if end <= start:
        raise ValueError(f"The end ({end.isoformat()}) must be after the start ({start.isoformat()}).")
    every = parse_every(spec)
    if every is not None:
        bounds = []
        t = start
        while t <= end and len(bounds) <= MAX_INTERVALS + 1:
            bounds.append(t)
            t += every
    else:
        check_spec(spec)
        bounds = []
        for t in Cron(spec).times(start, end):
            bounds.append(t)
            if len(bounds) > MAX_INTERVALS + 1:
                break
    if len(bounds) > MAX_INTERVALS + 1:
        raise ValueError(f"The range holds more than {MAX_INTERVALS} intervals; backfill it in parts.")
    return [Interval(a, b) for a, b in itertools.pairwise(bounds)]


def scheduled_interval(expr: str, at: dt.datetime) -> Interval | None:
    """The interval a run of crontab ``expr`` triggered at ``at`` covers: the one that just ended."""
    cron = Cron(expr)
    end = cron.previous(at.replace(second=0, microsecond=0))
    start = cron.previous(end, strictly=True) if end else None
    return Interval(start, end) if start and end else None


def default_interval(schedule: str, trigger: str, now: dt.datetime) -> tuple[dt.datetime, Interval]:
    """A run's logical date and data interval when its door states none.

    Beat's run (``trigger == "schedule"``) covers the interval of the pipeline's crontab that
    just ended, its logical date the interval's start. Any other door runs "now": the logical
    date is ``now``; the interval is the crontab's last complete one when the pipeline has a
    schedule (what a scheduled run now would cover), else the empty interval [now, now).
    """
    last = scheduled_interval(schedule, now) if schedule else None
    if trigger == "schedule" and last is not None:
        return last.start, last
    return now, last or Interval(now, now)
