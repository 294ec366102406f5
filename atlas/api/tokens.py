"""API tokens: hashed (django-rest-knox), every one with an expiry, revocable.

DRF's own ``authtoken`` kept each key in clear in the database: whoever read
a backup held every integrator's access, for ever. knox keeps a SHA-512
digest and a 15-character lookup prefix; the key itself is shown once, when
made. Each token expires (``ATLAS_API_TOKEN_DAYS``, at most
``ATLAS_API_TOKEN_MAX_DAYS``); revoking deletes it, and an expired one is
deleted at its next use. Making and revoking tokens are audited.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.settings import CONSTANTS

from atlas import audit

OLD_TABLE = "authtoken_token"  # rest_framework.authtoken's table of clear keys


class TokenError(ValueError):
    """A token request that cannot be honoured (unknown user, bad lifetime)."""


def _days(days: int | None) -> int:
    days = settings.ATLAS_API_TOKEN_DAYS if days is None else days
    if days < 1 or days > settings.ATLAS_API_TOKEN_MAX_DAYS:
        raise TokenError(f"A token lives 1 to {settings.ATLAS_API_TOKEN_MAX_DAYS} day(s) (ATLAS_API_TOKEN_MAX_DAYS); got {days}.")
    return days


def create_token(username: str, *, days: int | None = None, actor: Any = None) -> tuple[AuthToken, str]:
    """A new token for ``username``: the record (digest only) and the key, which is never stored."""
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
    if user is None:
        raise TokenError(f"No user named {username!r}.")
    if not user.is_active:
        raise TokenError(f"User {username!r} is inactive: an inactive user's token would be refused.")
    lifetime = _days(days)
    token, key = AuthToken.objects.create(user=user, expiry=timedelta(days=lifetime))
    audit.record("api_token.created", actor=actor, target=user, token=token.digest[:12], expires_at=token.expiry)
    return token, key


def revoke_tokens(username: str, *, actor: Any = None) -> int:
    """Delete every token of ``username``; returns how many there were."""
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
    if user is None:
        raise TokenError(f"No user named {username!r}.")
    digests = list(AuthToken.objects.filter(user=user).values_list("digest", flat=True))
    AuthToken.objects.filter(digest__in=digests).delete()
    audit.record("api_token.revoked", actor=actor, target=user, tokens=[d[:12] for d in digests])
    return len(digests)


def migrate_clear_tokens(schema_editor: Any, token_model: Any = AuthToken, *, days: int | None = None) -> int:
    """Turn DRF's clear-text tokens into knox digests, then drop their table; returns how many moved.

    Integrators keep their key (knox looks a token up by its first 15
    characters and compares the digest), now with an expiry; the clear keys
    are gone from the database. Without the old table, nothing to do.
    """
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return 0
    expiry = timezone.now() + timedelta(days=settings.ATLAS_API_TOKEN_DAYS if days is None else days)
    with connection.cursor() as cur:
        cur.execute(f"SELECT {connection.ops.quote_name('key')}, user_id FROM {OLD_TABLE}")
        rows = cur.fetchall()
    for key, user_id in rows:
        token_model.objects.using(connection.alias).get_or_create(
            digest=hash_token(key),
            defaults={"token_key": key[: CONSTANTS.TOKEN_KEY_LENGTH], "user_id": user_id, "expiry": expiry},
        )
    schema_editor.execute(f"DROP TABLE {OLD_TABLE}")
    return len(rows)
