"""``manage.py scan_pii DATASET``: classify a dataset's columns now and print the findings."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from compliance.detection import scan_dataset
from compliance.models import PiiScan
from pipelines.models import Dataset


class Command(BaseCommand):
    help = "Scan a dataset for PII (sampled in the warehouse) and record the scan and its findings."

    def add_arguments(self, parser) -> None:
        parser.add_argument("dataset", help="Dataset name, or layer.table (e.g. explore.customers).")
        parser.add_argument("--sample-size", type=int, default=None, help="Distinct values per column.")

    def handle(self, *args, dataset: str, sample_size: int | None, **options) -> None:
        found = Dataset.objects.filter(name=dataset).first()
        if found is None and "." in dataset:
            layer, table = dataset.split(".", 1)
            found = Dataset.objects.filter(layer=layer, table=table).first()
        if found is None:
            raise CommandError(f"Unknown dataset {dataset!r}; give a dataset name or layer.table.")
        if sample_size is not None and sample_size < 1:
            raise CommandError("--sample-size must be at least 1.")
        scan = scan_dataset(found, trigger=PiiScan.Trigger.CLI, sample_size=sample_size)
        if scan.status != "succeeded":
            raise CommandError(f"{scan}: {scan.error}")
        self.stdout.write(f"{scan}: {scan.columns_scanned} column(s), {scan.findings_count} finding(s).")
        for f in scan.findings.order_by("column", "entity"):
            kind = " (in free text)" if f.free_text else ""
            self.stdout.write(
                f"  {f.column}: {f.entity}{kind} [{f.status}] confidence {f.confidence:.2f}, share {f.share:.0%}, score {f.mean_score:.2f},"
                f" {f.sample_size} values{'; ' + f.name_evidence if f.name_evidence else ''}"
            )
