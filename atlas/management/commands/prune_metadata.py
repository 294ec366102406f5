"""``manage.py prune_metadata``: delete run history, check results, scans and events past their keep period."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from atlas.housekeeping import prune_metadata


class Command(BaseCommand):
    help = (
        "Delete records past their keep period (ATLAS_KEEP_*_DAYS; the ATLAS_KEEP_LATEST most recent of each "
        "pipeline or dataset stay). The daily beat job does the same."
    )

    def handle(self, *args, **options) -> None:
        for what, count in prune_metadata().items():
            self.stdout.write(f"{what}: {count} deleted")
