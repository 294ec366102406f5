"""Sending one message on a rule's channel: the answer is :class:`Sent` (or :class:`NotSent`, with why).

Webhooks go through the outbound URL guard (``pipelines.netguard``: the address
is checked at connect time, no redirects); a URL or header that is a secret is
a reference ``env:NAME`` resolved here, at send time, by ``pipelines.credentials``.
E-mail goes through Django's mail backend. Errors say what happened (a status,
a timeout, a refused connection), never the URL, a header or an answer's body.
"""

from __future__ import annotations

from dataclasses import dataclass

import urllib3
from django.conf import settings
from django.core import mail

from pipelines import credentials, netguard

from . import messages
from .models import AlertEvent, AlertRule, split_recipients

RETRYABLE_STATUSES = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class NotSent(Exception):
    """Why a message was not sent; ``retry``: whether trying again later may help."""

    reason: str
    retry: bool = True
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.reason


def send(rule: AlertRule, event: AlertEvent, suppressed: int = 0) -> None:
    """Send ``event`` on ``rule``'s channel; raises :class:`NotSent`."""
    if rule.channel == AlertRule.Channel.EMAIL:
        return _email(rule, event, suppressed)
    if rule.channel == AlertRule.Channel.SLACK:
        payload = messages.slack_payload(event, rule, suppressed)
    else:
        payload = messages.webhook_payload(event, rule, suppressed)
    return _post(rule, messages.encode(payload))


def _resolved(rule: AlertRule) -> tuple[str, dict[str, str]]:
    refs = {"url": rule.url} if rule.url.startswith("env:") else {}
    if rule.auth_header_ref:
        refs["Authorization"] = rule.auth_header_ref
    try:
        values = credentials.resolve(refs)
    except credentials.CredentialError as exc:  # its message names the variable, never a value
        raise NotSent(str(exc), retry=False) from None
    url = values.pop("url", rule.url)
    return url, values


def _post(rule: AlertRule, body: bytes) -> None:
    url, headers = _resolved(rule)
    headers["Content-Type"] = "application/json"
    try:
        answer = netguard.post(url, body, headers, timeout=settings.ATLAS_ALERTS_HTTP_TIMEOUT_SECONDS)
    except netguard.URLRefused as exc:
        raise NotSent(f"Refused by the outbound URL guard: {exc}", retry=False) from None
    except urllib3.exceptions.NewConnectionError:  # (a subclass of ConnectTimeoutError, for history's sake)
        raise NotSent("Connection failed (refused or unreachable).") from None
    except urllib3.exceptions.TimeoutError:
        raise NotSent(f"No answer within {settings.ATLAS_ALERTS_HTTP_TIMEOUT_SECONDS:g} s (timeout).") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise NotSent(f"Connection failed ({type(exc).__name__}).") from None
    if 200 <= answer.status < 300:
        return None
    if answer.status in RETRYABLE_STATUSES:
        raise NotSent(f"HTTP {answer.status}.", retry=True, retry_after=answer.retry_after)
    if 300 <= answer.status < 400:
        raise NotSent(f"HTTP {answer.status}: the webhook redirects; give its final URL.", retry=False)
    raise NotSent(f"HTTP {answer.status}: refused; fix the rule, then retry from the admin.", retry=False)


def _email(rule: AlertRule, event: AlertEvent, suppressed: int) -> None:
    import smtplib

    try:
        connection = mail.get_connection(timeout=settings.ATLAS_ALERTS_EMAIL_TIMEOUT_SECONDS)
        message = mail.EmailMessage(
            subject=messages.subject(event),
            body=messages.text(event, rule, suppressed),
            from_email=settings.ATLAS_ALERTS_FROM_EMAIL,
            to=split_recipients(rule.recipients),
            connection=connection,
        )
        message.send()
    except smtplib.SMTPRecipientsRefused:
        raise NotSent("The mail server refused every recipient; fix the rule's addresses.", retry=False) from None
    except TimeoutError:
        raise NotSent(f"The mail server did not answer within {settings.ATLAS_ALERTS_EMAIL_TIMEOUT_SECONDS:g} s.") from None
    except smtplib.SMTPResponseException as exc:
        raise NotSent(f"The mail server answered {exc.smtp_code}.", retry=400 <= exc.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise NotSent(f"Mail not sent ({type(exc).__name__}).") from None
