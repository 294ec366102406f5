"""``manage.py verify_audit_log``: prove the audit log was not edited, or say where it was."""

from django.core.management.base import BaseCommand, CommandError

from atlas.audit import verify
from atlas.models import AuditEvent


class Command(BaseCommand):
    help = "Check the audit log's hash chain; exit non-zero if an event was edited, inserted or deleted."

    def handle(self, *args, **options) -> None:
        problems = list(verify())
        if problems:
            for p in problems:
                self.stderr.write(f"event #{p.seq}: {p.reason}")
            raise CommandError(f"The audit log does not verify: {len(problems)} problem(s).")
        self.stdout.write(self.style.SUCCESS(f"The audit log verifies: {AuditEvent.objects.count()} events, chain intact."))
