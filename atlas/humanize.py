"""Values as people read them: local times with their age, rounded numbers, shares in per cent.

Plain functions (tested directly) and the template filters of ``atlas_format`` call them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.utils import timezone
from django.utils.html import format_html


def age(when: datetime, now: datetime | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 days ago'; 'in 40 min' for a time ahead."""
    now = now or timezone.now()
    seconds = (now - when).total_seconds()
    ahead = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now" if not ahead else "in under a minute"
    if seconds < 3600:
        text = f"{round(seconds / 60)} min"
    elif seconds < 86400 * 2:
        text = f"{round(seconds / 3600)} h"
    else:
        text = f"{round(seconds / 86400)} days"
    return f"in {text}" if ahead else f"{text} ago"


def local_time(when: datetime | None, now: datetime | None = None) -> str:
    """``2026-12-03 23:12 (5 min ago)`` in the site's time zone, in a ``<time>`` with the exact instant."""
    if when is None:
        return "—"
    local = timezone.localtime(when) if timezone.is_aware(when) else when
    return format_html(
        '<time datetime="{}" title="{}">{} <span class="atlas-age">({})</span></time>',
        when.isoformat(), local.strftime("%Y-%m-%d %H:%M:%S %Z"), local.strftime("%Y-%m-%d %H:%M"), age(when, now),
    )


def number(value: object, digits: int = 3) -> str:
    """A number for reading: thousands separated, at most ``digits`` significant decimals, no float noise."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        if abs(v) >= 1000:
            return f"{v:,.0f}" if abs(v) >= 100_000 else f"{v:,.1f}"
        if abs(v) < 1:
            return f"{v:.{digits}g}"
        text = f"{v:,.{max(digits - len(str(int(abs(v)))), 0)}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def exact_number(value: float | Decimal) -> str:
    """A float as :func:`number` rounds it, the exact stored value on hover when rounding changed it.

    ``0.30000000000000004`` reads ``0.3`` with ``title="0.30000000000000004"``; ``12.5`` stays ``12.5``.
    """
    shown = number(value)
    exact = repr(float(value)) if isinstance(value, float) else str(value)
    try:
        same = float(shown.replace(",", "")) == float(value)
    except ValueError:
        same = False
    if shown == exact or same:
        return shown
    return format_html('<span class="atlas-number" title="{}">{}</span>', exact, shown)


def boolean_icon(value: bool | None) -> str:
    """A yes/no as a mark: a green ✓ for yes, a quiet grey ✗ for no (no is no fault: red is kept for
    failures), a dash when unknown; the word in its title and for screen readers."""
    word, mark, kind = {True: ("yes", "✓", "yes"), False: ("no", "✗", "no"), None: ("unknown", "–", "unknown")}[value]
    return format_html('<span class="atlas-bool atlas-bool-{}" role="img" aria-label="{}" title="{}">{}</span>',
                       kind, word, word, mark)


def percent(share: float | None) -> str:
    """A share 0..1 as '12.5 %' ('0 %' and '100 %' exact; '<0.1 %' for tiny non-zero shares)."""
    if share is None:
        return "—"
    p = float(share) * 100
    if 0 < abs(p) < 0.1:
        return "<0.1 %"
    if round(p, 1).is_integer():
        return f"{p:.0f} %"
    return f"{p:.1f} %"


# The audit log's actions (``area.thing.verb``) in words; the verb leads, the rest names what it acted on.
AUDIT_VERBS = {
    "created": "Created", "updated": "Changed", "changed": "Changed", "deleted": "Deleted", "set": "Set",
    "run": "Ran", "cancel": "Cancelled", "confirmed": "Confirmed", "dismissed": "Dismissed", "verified": "Verified",
    "downloaded": "Downloaded", "revoked": "Revoked", "applied": "Applied", "failed": "Failed", "scan": "Scanned",
"reprocess": "Re-processed", "exported": "Exported", "assigned": "Assigned",
    "refused": "Refused", "retained": "Retained", "rebuilt": "Rebuilt", "review": "Sent for review",
    "error": "Error in", "repaired": "Repaired", "change": "Changed",
}
AUDIT_AREAS = {"pii": "PII", "dsr": "data-subject", "api_token": "API token", "auth": "", "pipelines": "",
               "quality": "quality", "retention": "retention", "lineage": "lineage", "audit": "audit"}


AUDIT_PHRASES = {"pii.view_clear": "Viewed PII in clear", "dsr.tombstones": "Recorded erasure tombstones"}


def audit_action(action: str) -> str:
    """``pipelines.dataset.created`` -> 'Created dataset'; ``pii.finding.confirmed`` -> 'Confirmed PII finding'."""
    if action in AUDIT_PHRASES:
        return AUDIT_PHRASES[action]
    parts = [p for p in (action or "").split(".") if p]
    if not parts:
        return ""
    verb_key = next((p for p in reversed(parts) if p in AUDIT_VERBS), None)
    if verb_key is None:
        verb_key = next((k for k in AUDIT_VERBS if parts[-1].endswith("_" + k)), None)
        if verb_key is None:
            return " ".join(p.replace("_", " ") for p in parts).capitalize()
        parts = [*parts[:-1], parts[-1][: -len(verb_key) - 1], verb_key]
    rest = [p for p in parts if p != verb_key]
    words = [AUDIT_AREAS.get(p, p.replace("_", " ")) for p in rest]
    text = " ".join(w for w in words if w)
    return f"{AUDIT_VERBS[verb_key]} {text}".strip()


def install_admin_times() -> None:
    """Every date-time the admin shows — list cells and read-only fields, of any app — as :func:`local_time`;
    every float as :func:`exact_number` (rounded, the exact value in its title); every yes/no as
    :func:`boolean_icon` (Django's icons put a red ✗ on a plain "no").

    Django's admin words a date-time through ``display_for_field`` / ``display_for_value``
    (``django.contrib.admin.utils``), imported by name by its list and form helpers and offering no
    hook: the three names are wrapped once, here (``AtlasConfig.ready``). Anything else passes through.
    """
    from django.contrib.admin import helpers, utils
    from django.contrib.admin.templatetags import admin_list
    from django.db import models

    if getattr(utils.display_for_field, "atlas_local_time", False):
        return
    field_display, value_display = utils.display_for_field, utils.display_for_value

    def display_for_field(value, field, empty_value_display, *args, **kwargs):
        if isinstance(field, models.DateTimeField) and isinstance(value, datetime) and not getattr(field, "flatchoices", None):
            return local_time(value)
        if isinstance(field, models.FloatField) and isinstance(value, float) and not getattr(field, "flatchoices", None):
            return exact_number(value)
        return field_display(value, field, empty_value_display, *args, **kwargs)

    def display_for_value(value, empty_value_display, *args, **kwargs):
        if isinstance(value, datetime) and timezone.is_aware(value):
            return local_time(value)
        if isinstance(value, float):
            return exact_number(value)
        return value_display(value, empty_value_display, *args, **kwargs)

    display_for_field.atlas_local_time = display_for_value.atlas_local_time = True
    # Django's list cells, read-only fields and ``@admin.display(boolean=True)`` all import the icon from
    # here when they draw one (``from ...admin_list import _boolean_icon`` at call time)
    admin_list._boolean_icon = boolean_icon
    for module in (utils, helpers, admin_list):
        if hasattr(module, "display_for_field"):
            module.display_for_field = display_for_field
        if hasattr(module, "display_for_value"):
            module.display_for_value = display_for_value
