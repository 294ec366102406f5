"""What may identify a data subject: the values that never do, and every form an identifier takes.

An identifier is a value that identifies ONE subject. Some values stored in
key columns never do, whoever asks and whatever column holds them:

* empty and common values: NULL, ``''``, ``N/A``, ``unknown``, ``none``, ``-``...
  (:data:`COMMON_VALUES`, compared trimmed and case-insensitively);
* placeholders left by anonymisation: ``<EMAIL_ADDRESS>``, ``[REDACTED]``, ``{masked}``;
* masked forms: ``***1234``, ``####``, ``••••``, ``XXXX-1234``;
* hashes of common values: the HMAC pseudonym (current and every retained key),
  MD5, SHA-1 and SHA-256 of each common value — a hashed column full of the
  pseudonym of ``''`` must not link every row holding it.

:func:`non_identifier` says why a value is not an identifier (None when it may
be one); requests refuse such values, and expansion never follows them.

:func:`hash_forms` gives the pseudonyms of a value under the current
``PII_HASH_KEY`` and every key in ``PII_HASH_PREVIOUS_KEYS`` (rotation): a Chart
table written before a rotation still holds the old tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

from django.conf import settings

COMMON_VALUES = frozenset({
    "", "n/a", "na", "n.a.", "none", "null", "nil", "nan", "unknown", "unk", "-", "--", "---", "?", "0", "00",
    "tbd", "todo", "test", "x", "xx", "xxx", "redacted", "anonymous", "anonymised", "anonymized", "masked",
    "hidden", "not provided", "not available", "no email", "noemail", "no phone", "undefined", "default",
    "empty", "blank", "missing", "withheld", "private",
})
# <EMAIL_ADDRESS>, [REDACTED], {masked}, (hidden): a value wrapped whole in brackets is a placeholder.
PLACEHOLDER_RE = re.compile(r"^\s*(<[^<>]*>|\[[^\[\]]*\]|\{[^{}]*\})\s*$")
# ***1234, 12**34, ####, ••••, XXXX-1234, xxx@xxx: two or more mask characters in a row.
MASK_RE = re.compile(r"[*#•●]{2,}|(?<![a-z0-9])[xX]{3,}(?![a-wyz0-9])")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


def _hmac(key: str, value: str) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def hash_keys() -> list[str]:
    """The PII hash keys whose tokens may still be stored: the current one, then the retained ones."""
    keys = [settings.PII_HASH_KEY] if settings.PII_HASH_KEY else []
    previous = getattr(settings, "PII_HASH_PREVIOUS_KEYS", []) or []
    if isinstance(previous, str):
        previous = previous.split(",")
    return keys + [k.strip() for k in previous if k.strip() and k.strip() not in keys]


def hash_forms(value: str) -> set[str]:
    """The pseudonyms of ``value`` under every hash key (as ``compliance.policies.pseudonym`` writes them)."""
    return {_hmac(k, value) for k in hash_keys()}


@lru_cache(maxsize=8)
def _common_hashes(keys: tuple[str, ...]) -> frozenset[str]:
    out: set[str] = set()
    for value in COMMON_VALUES:
        for form in {value, value.upper(), value.title()}:
            data = form.encode()
            out.update({hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(),  # noqa: S324 (recognition only)
                        hashlib.sha256(data).hexdigest()})
            out.update(_hmac(k, form) for k in keys)
    return frozenset(out)


def common_hashes() -> frozenset[str]:
    """Hashes (HMAC under every key, MD5, SHA-1, SHA-256) of the common values: never identifiers."""
    return _common_hashes(tuple(hash_keys()))


def non_identifier(value: object) -> str | None:
    """Why ``value`` cannot identify a subject (a short reason, no value in it), or None if it may."""
    if value is None:
        return "empty"
    text = str(value).strip()
    low = text.lower()
    if low in COMMON_VALUES:
        return "empty or common value" if low else "empty"
    if PLACEHOLDER_RE.match(text):
        return "placeholder"
    if MASK_RE.search(text):
        return "masked value"
    if low in common_hashes():
        return "hash of a common value"
    return None


def is_identifier(value: object) -> bool:
    return non_identifier(value) is None
