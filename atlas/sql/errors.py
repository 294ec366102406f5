"""The one error the toolkit raises."""

from __future__ import annotations


class SQLRefused(ValueError):
    """The SQL is refused; the message says why and what to write instead.

    Messages name relations, columns and functions (identifiers), never the
    values written in the SQL: a literal may hold a secret or personal data.
    """
