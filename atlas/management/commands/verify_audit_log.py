"""``manage.py verify_audit_log``: prove the audit log was not edited, or say where it was.

Checks the keyed chain in the database, the head row and the anchor outside the
database (``atlas.audit_anchor``); exits 1 naming the first bad event.
``--anchor-tail`` anchors the events a crash left unanchored at the end of the chain,
when nothing else is wrong (``atlas.audit.anchor_unanchored_tail``), then verifies.
"""

from django.core.management.base import BaseCommand, CommandError

from atlas.audit import AnchorRepairRefused, anchor_unanchored_tail, first_bad_event, verify
from atlas.audit_anchor import get_sink
from atlas.models import AuditEvent


class Command(BaseCommand):
    help = (
        "Check the audit log's keyed hash chain and its anchor outside the database; exit 1 if an "
        "event was edited, inserted or deleted, the table truncated, or the anchor deleted or cut."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--anchor-tail",
            action="store_true",
            help="First anchor the events at the end of the chain whose anchor write was lost in a crash "
            "(refused if anything else is wrong); the repair is recorded in the log.",
        )

    def handle(self, *args, **options) -> None:
        if options["anchor_tail"]:
            try:
                repaired = anchor_unanchored_tail()
            except AnchorRepairRefused as exc:
                raise CommandError(str(exc)) from exc
            if repaired:
                self.stdout.write(f"Anchored {len(repaired)} event(s): #{repaired[0]}..#{repaired[-1]}.")
            else:
                self.stdout.write("No unanchored event to anchor.")
        problems = verify()
        if problems:
            for p in problems:
                where = f"event #{p.seq}" if p.seq is not None else "anchor"
                self.stderr.write(f"{where}: {p.reason}")
            first = first_bad_event(problems)
            at = f" First bad event: #{first}." if first is not None else ""
            raise CommandError(f"The audit log does not verify: {len(problems)} problem(s).{at}")
        count = AuditEvent.objects.count()
        self.stdout.write(
            self.style.SUCCESS(
                f"The audit log verifies: {count} events, chain intact, "
                f"anchored in the {get_sink().describe()}."
            )
        )
