"""The warehouse: where Explore, Chart and Navigate tables live.

Reached only through a backend (one module per engine), the way Django's own
database backends work. Engine-specific SQL lives in the backend modules and
nowhere else.
"""

from __future__ import annotations

import threading

from django.conf import settings

from .base import LAYER_SCHEMAS, FileFormat, LoadResult, Warehouse, WarehouseError

__all__ = [
    "LAYER_SCHEMAS",
    "FileFormat",
    "LoadResult",
    "Warehouse",
    "WarehouseError",
    "get_warehouse",
    "reset_warehouses",
]

_lock = threading.Lock()
_cache: dict[str, Warehouse] = {}


def _resolve_url() -> str:
    url = settings.WAREHOUSE_URL
    if url:
        return url
    # Follow Django's default PostgreSQL database (tests rename it: read it live).
    db = __import__("django.db", fromlist=["connections"]).connections["default"].settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise WarehouseError("WAREHOUSE_URL is not set and the default database is not PostgreSQL.")
    from .postgresql import conninfo_from_django

    return conninfo_from_django(db)


def get_warehouse() -> Warehouse:
    """The configured warehouse backend (one instance per URL and process)."""
    url = _resolve_url()
    with _lock:
        wh = _cache.get(url)
        if wh is None:
            from . import registry

            try:
                wh = registry.connect(url)
            except registry.UnknownBackend as exc:
                raise WarehouseError(
                    f"Unsupported WAREHOUSE_URL {url!r}: use duckdb:///path, postgresql://... or sc://host:15002 ({exc})"
                ) from exc
            _cache[url] = wh
        return wh


def reset_warehouses() -> None:
    """Close every cached backend (tests, and after a fork)."""
    with _lock:
        for wh in _cache.values():
            wh.close()
        _cache.clear()
