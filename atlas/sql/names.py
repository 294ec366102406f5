"""Identifiers as PostgreSQL reads them: unquoted names fold to lower case, quoted ones do not."""

from __future__ import annotations

from sqlglot import exp


def normalized(identifier: exp.Expression | str | None) -> str:
    """The name PostgreSQL resolves: ``Orders`` is ``orders``, ``"Orders"`` stays ``Orders``."""
    if identifier is None:
        return ""
    if isinstance(identifier, str):
        return identifier.lower()
    if isinstance(identifier, exp.Identifier):
        return identifier.this if identifier.quoted else identifier.this.lower()
    return identifier.name.lower()


def display(name: str) -> str:
    """A name for a message; identifiers only, never values."""
    return name if len(name) <= 80 else name[:77] + "..."
