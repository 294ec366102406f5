"""What a delivery says, per channel: built from the event's names, counts and statuses only.

No row values and no error text from the warehouse ever reach an event (see
:mod:`atlas.alerting`); here the text is assembled from the event's title and
facts, with a link into the admin (``ATLAS_EXTERNAL_URL`` + the event's path).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from atlas.alerting import EVENT_KINDS

from .models import AlertEvent, AlertRule


def link(event: AlertEvent) -> str:
    """The admin page of what the event is about, absolute when ``ATLAS_EXTERNAL_URL`` is set."""
    if not event.admin_path:
        return ""
    base = str(settings.ATLAS_EXTERNAL_URL or "").rstrip("/")
    return f"{base}{event.admin_path}"


def _suppressed_line(count: int, rule: AlertRule) -> str:
    if not count:
        return ""
    return (f"{count} more alert(s) of rule {rule.name} were suppressed by its rate limit"
            f" ({rule.max_per_window} per {rule.window_minutes} min); see the alert deliveries in the admin.")


def subject(event: AlertEvent) -> str:
    return f"[Atlas {event.severity}] {event.title}"[:250]


def text(event: AlertEvent, rule: AlertRule, suppressed: int = 0) -> str:
    """Plain text: the title, one line per fact, the link, the suppressed count."""
    lines = [subject(event), EVENT_KINDS.get(event.kind, event.kind) + "."]
    lines += [f"{name}: {value}" for name, value in event.facts.items() if value not in (None, "")]
    if url := link(event):
        lines.append(f"Open in Atlas: {url}")
    if line := _suppressed_line(suppressed, rule):
        lines.append(line)
    lines.append(f"(Alert rule: {rule.name})")
    return "\n".join(lines)


def webhook_payload(event: AlertEvent, rule: AlertRule, suppressed: int = 0) -> dict[str, Any]:
    return {
        "source": "atlas",
        "event_id": event.pk,
        "kind": event.kind,
        "severity": event.severity,
        "title": event.title,
        "facts": event.facts,
        "pipeline": event.pipeline.name if event.pipeline_id and event.pipeline else None,
        "link": link(event),
        "rule": rule.name,
        "suppressed": suppressed,
        "created_at": event.created_at.isoformat(),
    }


def slack_payload(event: AlertEvent, rule: AlertRule, suppressed: int = 0) -> dict[str, Any]:
    """Slack's incoming-webhook shape (Mattermost, Rocket.Chat and Teams' Slack mode read it too)."""
    title = f"*{event.title}*"
    url = link(event)
    if url:
        title = f"*<{url}|{_escape(event.title)}>*"
    facts = "\n".join(f"• {name}: {_escape(str(value))}" for name, value in event.facts.items() if value not in (None, ""))
    body = "\n".join(part for part in (title, facts, _suppressed_line(suppressed, rule)) if part)
    return {"text": body}


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, default=str, ensure_ascii=False).encode()
