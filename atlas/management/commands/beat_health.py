"""``manage.py beat_health``: the container health check of celery beat (docker-compose.yml).

Beat has no port to probe; what shows it alive is that the periodic tasks it sends are not
overdue. It records every schedule (settings.CELERY_BEAT_SCHEDULE and the pipelines') in
django-celery-beat's table when it starts and their last run as it sends them (saved every few
minutes), so: no enabled schedule at all means beat never started against this database, and a
schedule overdue by more than ``--max-lag`` means beat stopped sending. The same lag is
``atlas_beat_schedule_lag_seconds`` (alert AtlasScheduleLate, deploy/prometheus/alerts.yml).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from atlas.metrics import schedule_lags

DEFAULT_MAX_LAG_SECONDS = 600.0


class Command(BaseCommand):
    help = "Exit non-zero when celery beat is not sending its periodic tasks (a container health check)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--max-lag",
            type=float,
            default=DEFAULT_MAX_LAG_SECONDS,
            help=f"Seconds a schedule may be overdue (default {DEFAULT_MAX_LAG_SECONDS:.0f}).",
        )

    def handle(self, *args, max_lag: float, **options) -> None:
        if max_lag <= 0:
            raise CommandError(f"--max-lag must be a positive number of seconds, not {max_lag:g}.")
        lags = schedule_lags()
        if not lags:
            raise CommandError("No enabled periodic task is recorded: celery beat has not started against this database.")
        late = {name: seconds for name, seconds in lags.items() if seconds > max_lag}
        if late:
            worst = sorted(late.items(), key=lambda item: -item[1])[:5]
            listed = "; ".join(f"{name!r} {seconds:.0f} s" for name, seconds in worst)
            raise CommandError(f"{len(late)} of {len(lags)} schedules overdue by more than {max_lag:g} s: {listed}. Is celery beat running?")
        self.stdout.write(f"Beat is on time: {len(lags)} schedules, none overdue by more than {max_lag:g} s.")
