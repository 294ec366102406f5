"""``manage.py backfill PIPELINE --start --end [--interval]``: run a pipeline over a past date range."""

from __future__ import annotations

import datetime as dt
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from pipelines import backfills
from pipelines.models import Backfill, Pipeline


def parse_when(value: str, flag: str) -> dt.datetime:
    """An ISO date or date-time; without a zone it is in TIME_ZONE."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"Invalid {flag} {value!r}: give an ISO date or date-time (2024-03-01, 2024-03-01T06:00Z).") from exc
    return timezone.make_aware(when) if timezone.is_naive(when) else when


class Command(BaseCommand):
    help = (
        "Backfill a pipeline: one run per interval of its schedule (or of --interval) between --start and"
        " --end, one at a time. Waits for the end unless --no-wait; exits non-zero when an interval failed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("pipeline", help="Pipeline name")
        parser.add_argument("--start", required=True, help="Start of the range (ISO date or date-time).")
        parser.add_argument("--end", required=True, help="End of the range, excluded (ISO date or date-time).")
        parser.add_argument("--interval", default="", help="A crontab or '1 day', '6 hours'... (default: the schedule).")
        parser.add_argument("--sync", action="store_true", help="Run the intervals in this process instead of workers.")
        parser.add_argument("--no-wait", action="store_true", help="Create the backfill and return at once.")
        parser.add_argument("--timeout", type=float, default=24 * 3600.0, help="Seconds to wait for the end.")

    def handle(self, *args, pipeline: str, start: str, end: str, interval: str, sync: bool, no_wait: bool,
               timeout: float, **options) -> None:
        found = Pipeline.objects.filter(name=pipeline).first()
        if found is None:
            known = ", ".join(Pipeline.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No pipeline named {pipeline!r} (known: {known}).")
        begin, finish = parse_when(start, "--start"), parse_when(end, "--end")
        try:
            backfill = backfills.create_backfill(found, begin, finish, interval=interval, dispatch=False)
        except backfills.BackfillRefused as exc:
            raise CommandError(str(exc)) from exc
        count = backfill.intervals.count()
        self.stdout.write(f"Backfill #{backfill.pk} of {found.name}: {count} intervals of {backfill.interval!r}.")
        if sync or settings.CELERY_TASK_ALWAYS_EAGER:
            backfill = backfills.run_inline(backfill)
        else:
            backfills.advance_backfills()  # workers run the intervals; each run's end starts the next
            if no_wait:
                return
            self._wait(backfill, timeout)
        self._report(backfill)

    def _wait(self, backfill: Backfill, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            backfill.refresh_from_db()
            if backfill.status != Backfill.Status.RUNNING:
                return
            if time.monotonic() > deadline:
                raise CommandError(f"Backfill #{backfill.pk} still running after {timeout:.0f} s (is a worker running?).")
            time.sleep(1.0)

    def _report(self, backfill: Backfill) -> None:
        counts = backfills.summary(backfill)
        line = f"Backfill #{backfill.pk} {backfill.status}: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        if backfill.status != Backfill.Status.SUCCEEDED:
            for iv in backfill.intervals.exclude(status=backfills.Status.SUCCEEDED):
                self.stdout.write(f"  [{iv.start.isoformat()}, {iv.end.isoformat()}) {iv.status}: {iv.error}")
            raise CommandError(f"{line}. Re-run the failed intervals from the admin or the API.")
        self.stdout.write(self.style.SUCCESS(line))
