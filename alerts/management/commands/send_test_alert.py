"""``manage.py send_test_alert RULE [--queue]``: send a test alert with a rule, now, and say what happened."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from alerts import outbox, service
from alerts.models import AlertRule, Delivery


class Command(BaseCommand):
    help = "Send a test alert with an alert rule (its webhook, Slack-compatible webhook or e-mail) and report the outcome."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("rule", help="the alert rule's name")
        parser.add_argument("--queue", action="store_true", help="only queue it for the delivery task")

    def handle(self, *args, rule: str, queue: bool, **opts) -> None:
        try:
            found = AlertRule.objects.get(name=rule)
        except AlertRule.DoesNotExist:
            names = ", ".join(AlertRule.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(f"No alert rule named {rule!r} (rules: {names}).") from None
        delivery = service.send_test(found)
        if queue:
            self.stdout.write(f"Test alert queued as delivery #{delivery.pk}; the delivery task sends it.")
            return
        outbox.deliver_pending(only=[delivery.pk])
        delivery.refresh_from_db()
        if delivery.status == Delivery.Status.DELIVERED:
            self.stdout.write(self.style.SUCCESS(f"Test alert delivered with rule {found.name} ({found.channel})."))
            return
        then = "it will be retried by the delivery task" if delivery.status == Delivery.Status.PENDING else "gave up"
        raise CommandError(f"Test alert not delivered: {delivery.last_error} ({then}; delivery #{delivery.pk}).")
