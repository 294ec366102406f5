"""``manage.py retention``: apply retention, show who is past it, export the records of processing.

retention run [DATASET ...]            apply the policies (all enabled ones without names)
retention status [--refresh]           each policy and whether its dataset is past retention
retention records [--format csv|json] [--output FILE] [DATASET ...]   Art. 30 export
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from retention import records, services
from retention.models import RetentionPolicy, RetentionRun


class Command(BaseCommand):
    help = "Apply retention policies, show datasets past retention, export the records of processing (Art. 30)."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{run,status,records}")
        run = sub.add_parser(
            "run", help="Apply retention now (every enabled policy, or the named datasets')."
        )
        run.add_argument("datasets", nargs="*", metavar="DATASET")
        status = sub.add_parser(
            "status", help="Policies and whether their dataset holds rows past retention."
        )
        status.add_argument("--refresh", action="store_true", help="Check the warehouse first.")
        rec = sub.add_parser("records", help="Export the records of processing with the PII found.")
        rec.add_argument("datasets", nargs="*", metavar="DATASET")
        rec.add_argument("--format", choices=records.FORMATS, default="csv")
        rec.add_argument("--output", "-o", help="Write to this file instead of standard output.")

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, f"handle_{action}")(**options)

    def handle_run(self, *, datasets: list[str], **_) -> None:
        if datasets:
            try:
                policies = [services.policy_for(name) for name in datasets]
            except services.RetentionError as exc:
                raise CommandError(str(exc)) from exc
            runs = [
                services.apply_policy(p, trigger=RetentionRun.Trigger.CLI, actor="manage.py")
                for p in policies
            ]
        else:
            runs = services.apply_all(trigger=RetentionRun.Trigger.CLI, actor="manage.py").runs
            if not runs:
                self.stdout.write("No enabled retention policy.")
        for run in runs:
            line = (
                f"{run.dataset.name}: {run.status}, cutoff {run.cutoff:%Y-%m-%d %H:%M:%S %Z},"
                f" {run.rows_removed} rows removed ({run.method or '-'}), {run.partitions_dropped} partitions dropped"
            )
            if run.quarantine_rows_removed:
                line += f", {run.quarantine_rows_removed} quarantined records removed"
            if run.unparseable_rows:
                line += f"; {run.unparseable_rows} rows kept: their {run.column} does not parse as a timestamp"
            if run.status == RetentionRun.Status.SKIPPED:
                line += f" ({run.details.get('reason', '')})"
            if run.error:
                line += f": {run.error}"
            self.stdout.write(line)
        failed = [r for r in runs if r.status == RetentionRun.Status.FAILED]
        if failed:
            raise CommandError(f"Retention failed for {', '.join(r.dataset.name for r in failed)}.")

    def handle_status(self, *, refresh: bool, **_) -> None:
        if refresh:
            services.refresh_all()
        policies = RetentionPolicy.objects.select_related("dataset").order_by("dataset__name")
        if not policies:
            self.stdout.write("No retention policy.")
        for p in policies:
            extra = f", {p.expired_rows} rows past retention" if p.is_overdue else ""
            if p.unparseable_rows:
                extra += f", {p.unparseable_rows} unparseable"
            if p.status_error:
                extra += f": {p.status_error}"
            self.stdout.write(f"{p.dataset.name}: {p.get_status_display()} ({p.describe()}){extra}")

    def handle_records(self, *, datasets: list[str], format: str, output: str | None, **_) -> None:
        try:
            text = records.export_records(
                format, datasets=datasets or None, actor="manage.py", door="cli"
            )
        except records.ExportError as exc:
            raise CommandError(str(exc)) from exc
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stdout.write(f"Wrote {output}.")
        else:
            self.stdout.write(text, ending="")
