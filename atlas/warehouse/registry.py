"""Which backend serves a URL: one table of schemes, the way Django maps ``ENGINE`` to a backend.

``get_warehouse`` builds the warehouse from it, and a SQL source's query is
exported through the same backends. A third engine is one more entry — from
``register_backend`` or the ``ATLAS_WAREHOUSE_BACKENDS`` setting
(``{"scheme": "dotted.path.Class"}``) — and no app changes.
"""

from __future__ import annotations

import csv
import sqlite3
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.module_loading import import_string

from .base import WarehouseError

if TYPE_CHECKING:
    from .base import Warehouse

BUILTIN_BACKENDS: dict[str, str] = {
    "duckdb": "atlas.warehouse.duckdb.DuckDBWarehouse",
    "postgres": "atlas.warehouse.postgresql.PostgresWarehouse",
    "postgresql": "atlas.warehouse.postgresql.PostgresWarehouse",
}
_registered: dict[str, type[Warehouse] | str] = {}


class UnknownBackend(WarehouseError):
    """A URL whose scheme no backend serves."""


def register_backend(scheme: str, backend: type[Warehouse] | str) -> None:
    """Serve ``scheme://`` URLs with ``backend`` (a Warehouse subclass or its dotted path)."""
    if not scheme or "://" in scheme:
        raise ValueError(f"Give a URL scheme without '://', not {scheme!r}.")
    _registered[scheme.lower()] = backend


def unregister_backend(scheme: str) -> None:
    _registered.pop(scheme.lower(), None)


def schemes() -> list[str]:
    return sorted({*BUILTIN_BACKENDS, *settings.ATLAS_WAREHOUSE_BACKENDS, *_registered})


def backend_class(url: str) -> type[Warehouse]:
    """The backend class for ``url`` (by its scheme)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    backend = _registered.get(scheme) or settings.ATLAS_WAREHOUSE_BACKENDS.get(scheme)
    backend = backend or BUILTIN_BACKENDS.get(scheme)
    if backend is None:
        raise UnknownBackend(f"No warehouse backend serves {scheme or 'a URL without scheme'!r} URLs (known: {', '.join(schemes())}).")
    return import_string(backend) if isinstance(backend, str) else backend


def connect(url: str) -> Warehouse:
    """A new backend instance for ``url``."""
    return backend_class(url).from_url(url)


# --- sources: a query on a named database, exported as CSV -----------------------------------
def _export_sqlite(url: str, query: str, path: str) -> None:
    """SQLite is a source only (never the warehouse): its rows are written by Python's csv."""
    con = sqlite3.connect(f"file:{url.split('://', 1)[1]}?mode=ro", uri=True)
    try:
        cur = con.execute(query)
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow([d[0] for d in cur.description])
            while rows := cur.fetchmany(10_000):
                writer.writerows(rows)
    finally:
        con.close()


SOURCE_ONLY = {"sqlite": _export_sqlite}


def source_schemes() -> list[str]:
    return sorted({*schemes(), *SOURCE_ONLY})


def export_query(url: str, query: str, path: str) -> None:
    """Run ``query`` read-only on the database at ``url``; its rows to ``path`` as CSV with a header."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in SOURCE_ONLY:
        SOURCE_ONLY[scheme](url, query, path)
        return
    backend_class(url).operations_class.export_query_csv(url, query, path)
