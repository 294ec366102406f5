"""The key of the audit log's HMAC chain, read from the environment, never the database.

With the key outside the database, someone who can write the database can still
edit an event, but cannot recompute its hash (nor any later one) so that
``verify_audit_log`` passes: the chain is keyed.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger("atlas.audit")

MIN_KEY_CHARS = 32
_warned = False


def audit_key() -> bytes:
    """The configured key; a clear error when production runs without a usable one."""
    global _warned
    key = getattr(settings, "ATLAS_AUDIT_KEY", "") or ""
    if not key:
        raise ImproperlyConfigured(
            "ATLAS_AUDIT_KEY is not set, so the audit log cannot be written or verified. "
            "Generate one (python3 -c 'import secrets; print(secrets.token_urlsafe(48))'), "
            "keep it in your secret store like SECRET_KEY and set it in the environment "
            "of every web, worker and beat process."
        )
    development = getattr(settings, "ATLAS_AUDIT_KEY_IS_DEVELOPMENT", False)
    if not development and len(key) < MIN_KEY_CHARS:
        raise ImproperlyConfigured(
            f"ATLAS_AUDIT_KEY is too short ({len(key)} characters): "
            f"use at least {MIN_KEY_CHARS} random characters."
        )
    if development and not _warned:
        _warned = True
        logger.warning(
            "ATLAS_AUDIT_KEY is not set: the audit log is chained with a DEVELOPMENT key "
            "derived from SECRET_KEY (DEBUG/tests only). "
            "Set ATLAS_AUDIT_KEY before this runs in production."
        )
    return key.encode()


def previous_audit_keys() -> list[bytes]:
    """Keys the log was chained with before the last rotation, oldest first.

    ``ATLAS_AUDIT_PREVIOUS_KEYS`` (comma-separated): rotating means moving the current
    key to the end of that list and setting a new ``ATLAS_AUDIT_KEY``. Verification
    accepts an older key only up to the first event chained with a newer one, so a
    retired key that leaks cannot sign events after the rotation.
    """
    raw = getattr(settings, "ATLAS_AUDIT_PREVIOUS_KEYS", []) or []
    if isinstance(raw, str):
        raw = raw.split(",")
    return [k.strip().encode() for k in raw if k.strip()]


def check_audit_key(app_configs=None, **kwargs) -> list:
    """System check: production without the key is told at start, not only at the first write."""
    from django.core.checks import Warning

    if getattr(settings, "ATLAS_AUDIT_KEY", ""):
        return []
    return [
        Warning(
            "ATLAS_AUDIT_KEY is not set: every audit write (so every audited change) will fail.",
            hint="Set ATLAS_AUDIT_KEY (32+ random characters) in the environment of every process.",
            id="atlas.W101",
        )
    ]
