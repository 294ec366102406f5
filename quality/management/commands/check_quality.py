"""``manage.py check_quality DATASET``: run a dataset's checks on its published table and print them."""

from __future__ import annotations

from django.core import checks
from django.core.management.base import BaseCommand, CommandError

from pipelines.models import Dataset
from quality.models import CheckRun


class Command(BaseCommand):
    help = "Run a dataset's enabled checks against its published table; exit 1 when a fail check fails."
    # The models' checks only: the others (URLs, admin, templates, security) are about serving
    # pages and import every view; ``manage.py check`` runs them all (README "Commands").
    requires_system_checks = [checks.Tags.models]

    def add_arguments(self, parser) -> None:
        parser.add_argument("dataset", help="Dataset name (or layer.table).")

    def handle(self, *args, dataset: str, **options) -> None:
        ds = Dataset.objects.filter(name=dataset).first()
        if ds is None and "." in dataset:
            layer, _, table = dataset.partition(".")
            ds = Dataset.objects.filter(layer=layer, table=table).first()
        if ds is None:
            raise CommandError(f"Unknown dataset {dataset!r}.")
        # The checks' engine loads once the dataset is known (start-up).
        from quality.service import run_checks

        run = run_checks(ds, trigger=CheckRun.Trigger.CLI, apply_drops=False)
        self.stdout.write(f"Checks on {run.table_shown}: {run.status} ({run.rows_checked} rows, {run.queries} queries)")
        for r in run.results.all():
            failing = "" if r.failing_rows is None else f" {r.failing_rows} failing"
            self.stdout.write(f"  {r.outcome:5}  {r.check_name:30} {r.severity:4}{failing}  {r.message}")
        if run.error:
            self.stderr.write(run.error)
        if run.status in (CheckRun.Status.FAILED, CheckRun.Status.ERROR):
            raise CommandError(f"Quality checks on {run.table_shown} {run.status}.")
