"""Alert rules, the events they match, and the outbox of deliveries.

An :class:`AlertEvent` is written where the thing happened (the run's end, the
condition poll), in that transaction; one :class:`Delivery` per matching
enabled rule waits in the outbox until the delivery task sends it
(:mod:`alerts.outbox`), with retries and a rate limit per rule.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.utils import timezone

from atlas.alerting import ERROR, EVENT_KINDS, WARNING
from atlas.history import DefinitionHistory
from pipelines import credentials
from pipelines.models import Pipeline

EVENT_CHOICES = [(k, v) for k, v in EVENT_KINDS.items()]
RULE_EVENTS = [k for k in EVENT_KINDS if k != "test"]  # "test" goes to the one rule tested
SEVERITY_ORDER = {WARNING: 0, ERROR: 1}
MAX_RECIPIENTS = 50


class AlertSeverity(models.TextChoices):
    WARNING = WARNING, "Warning"
    ERROR = ERROR, "Error"


def split_recipients(text: str) -> list[str]:
    return [r for r in re.split(r"[\s,;]+", text or "") if r]


class AlertRule(models.Model):
    """Which events go where: per pipeline (or every pipeline and the global conditions), one channel."""

    class Channel(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (JSON)"
        SLACK = "slack", "Slack-compatible webhook"
        EMAIL = "email", "E-mail"

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    pipeline = models.ForeignKey(
        Pipeline, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules",
        help_text="Only this pipeline's events (its runs, its datasets' freshness); empty: every event.",
    )
    events = models.JSONField(default=list, help_text=f"Event kinds, e.g. [\"run_failed\"]; from: {', '.join(RULE_EVENTS)}.")
    min_severity = models.CharField(
        max_length=7, choices=AlertSeverity.choices, default=WARNING,
        help_text="error: only events of severity error (e.g. a freshness error age, not its warn age).",
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    url = models.CharField(
        max_length=500, blank=True,
        help_text="Webhook URL, or a reference env:NAME to it when the URL holds a secret (Slack's do).",
    )
    auth_header_ref = models.CharField(
        max_length=200, blank=True, help_text="Webhook: the Authorization header, by reference env:NAME; never in clear."
    )
    recipients = models.TextField(blank=True, help_text="E-mail: addresses separated by commas or lines.")
    max_per_window = models.PositiveIntegerField(default=10, help_text="Rate limit: at most this many messages ...")
    window_minutes = models.PositiveIntegerField(default=60, help_text="... per this many minutes; the rest are counted.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = DefinitionHistory()

    class Meta:
        ordering = ["name"]
        verbose_name = "alert rule"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        events = self.events
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            errors["events"] = f"A list of event kinds, e.g. [\"run_failed\"]; from: {', '.join(RULE_EVENTS)}."
        elif unknown := sorted(set(events) - set(RULE_EVENTS)):
            errors["events"] = f"Unknown event kind(s) {', '.join(unknown)}; from: {', '.join(RULE_EVENTS)}."
        elif len(set(events)) != len(events):
            errors["events"] = "An event kind is listed twice."
        if self.channel in (self.Channel.WEBHOOK, self.Channel.SLACK):
            if problem := url_problem(self.url):
                errors["url"] = problem
            elif self.channel == self.Channel.SLACK and not self.url.startswith("env:"):
                errors["url"] = (
                    "A Slack webhook URL is itself the secret: put it in an environment variable named"
                    f" {credentials.prefix()}… and give env:NAME here."
                )
            if self.recipients:
                errors["recipients"] = "Recipients are for e-mail rules; a webhook rule has a URL."
            if self.auth_header_ref and (problem := reference_problem("auth_header_ref", self.auth_header_ref)):
                errors["auth_header_ref"] = problem
        elif self.channel == self.Channel.EMAIL:
            addresses = split_recipients(self.recipients)
            if not addresses:
                errors["recipients"] = "Give at least one e-mail address."
            elif len(addresses) > MAX_RECIPIENTS:
                errors["recipients"] = f"At most {MAX_RECIPIENTS} addresses."
            else:
                for address in addresses:
                    try:
                        validate_email(address)
                    except ValidationError:
                        errors["recipients"] = f"{address!r} is not an e-mail address."
                        break
            if self.url or self.auth_header_ref:
                errors["url"] = "An e-mail rule has recipients, not a URL or header."
        if not self.max_per_window:
            errors["max_per_window"] = "At least 1 message per window."
        if not self.window_minutes:
            errors["window_minutes"] = "A window of at least 1 minute."
        elif self.window_minutes > 7 * 24 * 60:
            errors["window_minutes"] = "A window of at most a week (10080 minutes)."
        if errors:
            raise ValidationError(errors)

    def matches(self, kind: str, severity: str, pipeline_id: int | None) -> bool:
        if not self.enabled or kind not in self.events:
            return False
        if SEVERITY_ORDER.get(severity, 1) < SEVERITY_ORDER[self.min_severity]:
            return False
        return self.pipeline_id is None or self.pipeline_id == pipeline_id


def reference_problem(field: str, value: str) -> str | None:
    """Why ``value`` is not a usable ``env:NAME`` reference (the credentials module's rules), or None."""
    match = credentials.REF_RE.match(value or "")
    if not match:
        return f"{field} must be a reference env:{credentials.prefix()}NAME, never the secret itself."
    if not match.group(1).startswith(credentials.prefix()):
        return f"{field} may only reference environment variables named {credentials.prefix()}…"
    return None


def url_problem(url: str) -> str | None:
    """Why a rule's URL (or its reference) cannot be used; None when it can. Never repeats the URL."""
    if not url:
        return "Give the webhook URL (or env:NAME of the variable holding it)."
    if url.startswith("env:"):
        return reference_problem("url", url)
    if not re.match(r"^https?://", url):
        return "The URL must start with http:// or https://."
    if problem := credentials.url_credential_problem(url):
        return problem
    return None


class AlertEvent(models.Model):
    """Something alerted on: names, counts and statuses only (never row values or warehouse errors)."""

    kind = models.CharField(max_length=30, choices=EVENT_CHOICES)
    severity = models.CharField(max_length=7, choices=AlertSeverity.choices, default=ERROR)
    title = models.CharField(max_length=300)
    key = models.CharField(max_length=200, blank=True, db_index=True, help_text="A polled condition's identity.")
    pipeline = models.ForeignKey(Pipeline, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    admin_path = models.CharField(max_length=300, blank=True)
    facts = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "alert event"

    def __str__(self) -> str:
        return f"{self.kind}: {self.title}"


class Condition(models.Model):
    """A polled condition that holds (it has alerted once); deleted when it clears, so it can fire again."""

    key = models.CharField(max_length=200, unique=True)
    source = models.CharField(max_length=200, help_text="The contributed source that reports it.")
    event = models.ForeignKey(AlertEvent, null=True, on_delete=models.SET_NULL, related_name="+")
    opened_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["opened_at", "id"]
        verbose_name = "open alert condition"

    def __str__(self) -> str:
        return self.key


class Delivery(models.Model):
    """One event to one rule's channel: the outbox row, retried with backoff until sent or given up."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up; retry from the admin)"
        SUPPRESSED = "suppressed", "Suppressed (rate limit; counted in the next message)"

    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="deliveries")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True, db_index=True)
    suppressed_count = models.PositiveIntegerField(default=0, help_text="Suppressed alerts this message reported.")
    reported_in = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reported",
        help_text="Suppressed: the delivered message that counted it.",
    )

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"]), models.Index(fields=["rule", "status"])]
        verbose_name = "alert delivery"
        verbose_name_plural = "alert deliveries"

    def __str__(self) -> str:
        return f"{self.event.kind} to {self.rule.name} ({self.status})"
