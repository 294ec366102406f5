"""Data subjects' identifiers, masked for whoever was not granted ``privacy.view_identifiers_clear``.

A request's identifiers (the e-mail, the customer id the person gave) are
the most direct PII Atlas holds. Auditors read every request to check that
deadlines and erasures were met; they need the kinds and the counts, not
the values. The admin and the API both render requests through these
functions, so the two doors cannot disagree. Identifiers already replaced
by their HMAC hashes (an erased subject) are not values and stay as they are.
"""

from __future__ import annotations

from typing import Any

IDENTIFIERS_CLEAR = "privacy.view_identifiers_clear"
MASKED = "***"


def may_see_identifiers(user: Any) -> bool:
    return bool(user is not None and getattr(user, "is_active", False) and user.has_perm(IDENTIFIERS_CLEAR))


def mask_identifiers(identifiers: dict[str, list[str]]) -> dict[str, list[str]]:
    """Kinds and how many of each, every value replaced by :data:`MASKED`."""
    return {kind: [MASKED for _ in values] for kind, values in (identifiers or {}).items()}


def redact(text: str, identifiers: dict[str, list[str]]) -> str:
    """``text`` (an error message) with every identifier value in it replaced by :data:`MASKED`."""
    values = sorted({str(v) for vs in (identifiers or {}).values() for v in vs if str(v)}, key=len, reverse=True)
    for value in values:
        text = text.replace(value, MASKED)
    return text


def identifiers_for(user: Any, req: Any) -> dict[str, list[str]]:
    """The request's identifiers as ``user`` may see them."""
    if req.identifiers_hashed or may_see_identifiers(user):
        return req.identifiers
    return mask_identifiers(req.identifiers)


def error_for(user: Any, req: Any) -> str:
    if req.identifiers_hashed or may_see_identifiers(user):
        return req.error
    return redact(req.error or "", req.identifiers)
