"""Which backend serves a URL: one table of schemes, the way Django maps ``ENGINE`` to a backend.

``get_warehouse`` builds the warehouse from it, and a SQL source's query is
exported through the same backends. A third engine is one more entry — from
``register_backend`` or the ``ATLAS_WAREHOUSE_BACKENDS`` setting
(``{"scheme": "dotted.path.Class"}``) — and no app changes.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.module_loading import import_string

from . import mysqlsource
from .base import WarehouseError

if TYPE_CHECKING:
    from .base import Warehouse

BUILTIN_BACKENDS: dict[str, str] = {
    "duckdb": "atlas.warehouse.duckdb.DuckDBWarehouse",
    "postgres": "atlas.warehouse.postgresql.PostgresWarehouse",
    "postgresql": "atlas.warehouse.postgresql.PostgresWarehouse",
    "sc": "atlas.warehouse.spark.SparkWarehouse",  # Spark Connect: sc://host:15002
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
@dataclass(frozen=True)
class SourceSQL:
    """How a source database's SQL quotes a name and marks a bound value (incremental extraction).

    ``paramstyle``: ``qmark`` (``?``) or ``format`` (``%s``; every other ``%`` of the text doubled,
    as psycopg and MySQL drivers read it). A MySQL/MariaDB reader is ``SourceSQL("`", "format")``.
    """

    quote_char: str = '"'
    paramstyle: str = "qmark"
    dialect: str = "postgres"  # sqlglot's, to check the operator's query is one SELECT

    def quote(self, name: str) -> str:
        q = self.quote_char
        return q + name.replace(q, q + q) + q

    @property
    def param(self) -> str:
        return "?" if self.paramstyle == "qmark" else "%s"

    def text(self, sql: str) -> str:
        """Operator text made safe to send beside parameters."""
        return sql.replace("%", "%%") if self.paramstyle == "format" else sql


SOURCE_SQL: dict[str, SourceSQL] = {
    "sqlite": SourceSQL(),
    "duckdb": SourceSQL(),
    "postgres": SourceSQL(paramstyle="format"),
    "postgresql": SourceSQL(paramstyle="format"),
    "mysql": SourceSQL("`", "format", "mysql"),
    "mariadb": SourceSQL("`", "format", "mysql"),
}


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def source_sql(url: str) -> SourceSQL:
    """How SQL is written for the source database at ``url``; refuses a scheme without a reader."""
    scheme = _scheme(url)
    if scheme not in SOURCE_SQL:
        raise UnknownBackend(f"No source reader serves {scheme or 'a URL without scheme'!r} URLs (known: {', '.join(source_schemes())}).")
    return SOURCE_SQL[scheme]


def _sqlite_connect(url: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{url.split('://', 1)[1]}?mode=ro", uri=True)


def _rows_sqlite(url: str, query: str, params: Sequence[Any]) -> tuple[list[str], list[tuple]]:
    con = _sqlite_connect(url)
    try:
        cur = con.execute(query, list(params))
        return [d[0] for d in cur.description or []], cur.fetchall()
    finally:
        con.close()


def query_rows(url: str, query: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Columns and rows of ``query`` (small: a watermark's bounds, a LIMIT 0) on the source database, read-only.

    ``params`` given (even empty): a ``format`` dialect's ``%`` in ``query`` is doubled (``SourceSQL.text``).
    """
    if _scheme(url) == "sqlite":
        return _rows_sqlite(url, query, params or ())
    if _scheme(url) in mysqlsource.SCHEMES:
        return mysqlsource.source_rows(url, query, params)
    return backend_class(url).operations_class.source_rows(url, query, params)


def _export_sqlite(url: str, query: str, path: str, params: Sequence[Any] = ()) -> None:
    """SQLite is a source only (never the warehouse): its rows are written by Python's csv."""
    con = _sqlite_connect(url)
    try:
        cur = con.execute(query, list(params))
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow([d[0] for d in cur.description])
            while rows := cur.fetchmany(10_000):
                writer.writerows(rows)
    finally:
        con.close()


SOURCE_ONLY = {
    "sqlite": _export_sqlite,
    **{scheme: mysqlsource.export_query_csv for scheme in mysqlsource.SCHEMES},
}


def source_schemes() -> list[str]:
    return sorted({*schemes(), *SOURCE_ONLY})


def export_query(url: str, query: str, path: str, params: Sequence[Any] | None = None) -> None:
    """Run ``query`` read-only on the database at ``url``; its rows to ``path`` as CSV with a header.

    ``params``: values bound by the driver (``source_sql(url).param`` marks them in ``query``).
    """
    scheme = _scheme(url)
    if scheme in SOURCE_ONLY:
        SOURCE_ONLY[scheme](url, query, path, *([params] if params is not None else []))
        return
    ops = backend_class(url).operations_class
    if params is None:
        ops.export_query_csv(url, query, path)
    else:
        ops.export_query_csv(url, query, path, params)
