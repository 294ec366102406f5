"""Check kinds as a registry: one class per kind (validate, compile, outcome, describe).

A new kind is one :class:`Kind` subclass decorated with :func:`register` (and its
value in ``CheckKind``); :func:`get_kind` answers an unknown one with
:class:`UnknownCheckKind`. Importing this package registers the built-in kinds.
"""

from __future__ import annotations

from . import rows, table  # noqa: F401  (registers the built-in kinds)
from .base import (
    ALIAS,
    COLUMNS,
    NO_COLUMNS,
    ONE_COLUMN,
    REGISTRY,
    Kind,
    RowCheck,
    TableCheck,
    Target,
    UnknownCheckKind,
    get_kind,
    qualify,
    register,
)

__all__ = [
    "ALIAS",
    "COLUMNS",
    "NO_COLUMNS",
    "ONE_COLUMN",
    "REGISTRY",
    "Kind",
    "RowCheck",
    "TableCheck",
    "Target",
    "UnknownCheckKind",
    "describe",
    "get_kind",
    "qualify",
    "register",
]


def describe(check) -> str:
    """The check's rule in one sentence; an unknown kind says so rather than failing a page."""
    try:
        return get_kind(check.kind).describe(check)
    except UnknownCheckKind as exc:
        return str(exc)
    except (KeyError, TypeError, IndexError, AttributeError):
        return f"A {check.kind} check (its definition is incomplete)."
