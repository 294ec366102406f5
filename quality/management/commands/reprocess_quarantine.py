"""``manage.py reprocess_quarantine DATASET [--check-run ID ...]``: quarantined rows through the same checks again."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from pipelines.models import Dataset
from quality.reprocess import ReprocessError, reprocess


class Command(BaseCommand):
    help = (
        "Re-process a dataset's check-quarantined rows after a fix: rows passing every drop and fail check are"
        " published, the others stay quarantined with their new reasons. Default: the rows of the published"
        " table as it is; --check-run selects the rows of given check runs."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("dataset", help="Dataset name (or layer.table).")
        parser.add_argument("--check-run", type=int, action="append", dest="check_runs", metavar="ID",
                            help="Only the rows this check run quarantined (repeatable).")

    def handle(self, *args, dataset: str, check_runs: list[int] | None, **options) -> None:
        ds = Dataset.objects.filter(name=dataset).first()
        if ds is None and "." in dataset:
            layer, _, table = dataset.partition(".")
            ds = Dataset.objects.filter(layer=layer, table=table).first()
        if ds is None:
            raise CommandError(f"Unknown dataset {dataset!r}.")
        try:
            done = reprocess(ds, check_run_ids=check_runs)
        except ReprocessError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{ds.name}: {done}" + (f" (check run {done.check_run.pk})" if done.check_run else ""))
