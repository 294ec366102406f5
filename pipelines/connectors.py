"""The connector kinds of sources (object storage, JSON APIs): their options and validation, in one place.

``Source.clean`` and ``Source.kind_option_keys`` ask here, so the admin form and the
API serializer (both run ``full_clean``) refuse the same inputs with the same words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import httpapi, objectstore

if TYPE_CHECKING:
    from .models import Source


def option_keys(kind: str) -> set[str]:
    if kind == "s3":
        return set(objectstore.OPTION_KEYS)
    if kind == "api":
        return set(httpapi.OPTION_KEYS)
    return set()


def clean(source: Source) -> dict[str, str]:
    """Validation errors by field for an s3 or api source (its location, format and own options)."""
    options = source.options if isinstance(source.options, dict) else {}
    if source.kind == "s3":
        return objectstore.clean(source.location, options)
    errors = httpapi.clean(source.location, options)
    if source.format != "jsonl":
        errors.setdefault("format", "An API source's records are written as JSON Lines: set format to jsonl.")
    return errors
