"""The warehouse's errors (a module of their own: every backend module and mixin imports them)."""

from __future__ import annotations


class WarehouseError(Exception):
    """A warehouse operation that cannot go on; the message is for the operator."""


class NotSupported(WarehouseError):
    """This engine cannot do that at all (its ``features`` say so); callers check the feature first."""


class StatementTimeout(WarehouseError):
    """One of Atlas's own statements ran past ``ATLAS_WAREHOUSE_STATEMENT_TIMEOUT_SECONDS`` (never retried)."""
