"""MySQL and MariaDB as sources (never the warehouse): a query's rows streamed to CSV.

``mysql://user@host:3306/db`` or ``mariadb://…`` in ``ATLAS_SOURCE_DATABASES``. PyMySQL
(pure Python) with an unbuffered cursor (``SSCursor``): rows come off the socket a batch
at a time, so memory stays bounded whatever the table's size. Each read runs in its own
session, ``SET SESSION TRANSACTION READ ONLY`` then ``START TRANSACTION READ ONLY`` (give
the user only SELECT as well), with ``time_zone = '+00:00'``.

Explore keeps every value as text. Values are written as PostgreSQL's ``COPY … TO`` writes
the same types, so one table read from either engine loads the same text:

===============================  ===============================================
MySQL / MariaDB type             text in Explore
===============================  ===============================================
integers, DECIMAL, FLOAT, YEAR   the server's own text (``12.50``, ``-3``, ``1e+20``)
TINYINT(1) (``BOOLEAN``)         ``t`` / ``f`` for 1 / 0; any other value as its number
BIT(n)                           its n binary digits (``0101``)
DATE, DATETIME, TIME             ``2024-03-01``, ``2024-03-01 10:00:00[.fff]`` (a fraction
                                 without its trailing zeros, as PostgreSQL writes it)
TIMESTAMP (stored in UTC)        ``2024-03-01 10:00:00+00`` (as ``timestamptz`` in UTC)
zero dates                       NULL: a date or datetime whose month or day is 0
                                 (``0000-00-00``, ``2024-00-10``) names no day
CHAR, TEXT, ENUM, SET, JSON      the text (utf8mb4)
BINARY, VARBINARY, BLOB, spatial ``\\x`` and lowercase hex (as ``bytea``)
NULL                             an empty unquoted field
===============================  ===============================================
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

SCHEMES = ("mysql", "mariadb")
BATCH = 5_000
CONNECT_TIMEOUT = 10

# Field types (pymysql.constants.FIELD_TYPE), named here so the module reads without it.
TINY, TIMESTAMP, DATE, TIME, DATETIME, NEWDATE, BIT = 1, 7, 10, 11, 12, 14, 16
BINARY_CHARSET = 63
# CHAR, VARCHAR, the BLOBs and TEXTs, GEOMETRY: bytes when of the binary charset.
STRING_TYPES = frozenset({15, 249, 250, 251, 252, 253, 254, 255})


class SourceURLError(ValueError):
    """A MySQL/MariaDB URL that cannot be used (its text never quoted: it may hold a password)."""


def connect_kwargs(url: str) -> dict[str, Any]:
    """PyMySQL's connection arguments from ``mysql://user:password@host:port/database?charset=…``."""
    try:
        parts = urlsplit(url)
        port = parts.port or 3306
    except ValueError as exc:
        raise SourceURLError("The MySQL/MariaDB URL is malformed (mysql://user@host:3306/database).") from exc
    if parts.scheme.lower() not in SCHEMES:
        raise SourceURLError("Not a MySQL/MariaDB URL (mysql:// or mariadb://).")
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not database:
        raise SourceURLError("A MySQL/MariaDB URL names a host and a database: mysql://user@host:3306/database.")
    query = dict(parse_qsl(parts.query))
    unknown = set(query) - {"charset", "password", "connect_timeout", "ssl_ca", "unix_socket"}
    if unknown:
        raise SourceURLError(f"Unknown MySQL/MariaDB URL parameter(s): {', '.join(sorted(unknown))}.")
    kwargs: dict[str, Any] = {
        "host": parts.hostname,
        "port": port,
        "user": unquote(parts.username or ""),
        "password": query.get("password") or unquote(parts.password or ""),
        "database": database,
        "charset": query.get("charset", "utf8mb4"),
        "connect_timeout": int(query.get("connect_timeout", CONNECT_TIMEOUT)),
        "autocommit": False,
    }
    if query.get("ssl_ca"):
        kwargs["ssl"] = {"ca": query["ssl_ca"]}
    if query.get("unix_socket"):
        kwargs["unix_socket"] = query["unix_socket"]
    return kwargs


def _connect(url: str, *, typed: bool):
    """A read-only session; ``typed``: values as Python objects (else as the server's text)."""
    import pymysql
    from pymysql import converters

    conv = None if typed else {k: v for k, v in converters.conversions.items() if not isinstance(k, int)}
    con = pymysql.connect(**connect_kwargs(url), conv=conv, cursorclass=pymysql.cursors.SSCursor)
    try:
        with con.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute("SET SESSION TRANSACTION READ ONLY")
            cur.execute("START TRANSACTION READ ONLY")
    except BaseException:
        con.close()
        raise
    return con


def _args(params: Sequence[Any] | None) -> tuple | None:
    # PyMySQL reads %s (and %%) only when given arguments: the caller escapes ``%`` only then.
    return None if params is None else tuple(params)


def source_rows(url: str, query: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Columns and rows (Python values) of a small ``query``: a watermark's bounds, a LIMIT 0."""
    con = _connect(url, typed=True)
    try:
        with con.cursor() as cur:
            cur.execute(query, _args(params))
            rows = cur.fetchall()
            return [d[0] for d in cur.description or []], list(rows)
    finally:
        con.close()


# --- text as PostgreSQL writes the same types -----------------------------------------------------
def _boolean(v):
    return "t" if v == "1" else "f" if v == "0" else v


def _fraction(v):
    # DATETIME(3) is sent as 10:00:00.000; PostgreSQL writes seconds' fractions without trailing zeros.
    return v.rstrip("0").rstrip(".") if "." in v else v


def _zero_date(v):
    # YYYY-MM-DD…: a month or day of 00 names no day.
    return None if v[5:7] == "00" or v[8:10] == "00" else _fraction(v)


def _timestamp(v):
    v = _zero_date(v)
    return None if v is None else v + "+00"


def _hex(v):
    return "\\x" + v.hex()


def _bits(length: int) -> Callable[[bytes], str]:
    return lambda v: format(int.from_bytes(v, "big"), f"0{length}b")


def column_writer(field) -> Callable[[Any], Any] | None:
    """How one column's value becomes its text (None: as the server sent it)."""
    code, charset, length = field.type_code, field.charsetnr, field.length
    if code == TINY and length == 1:
        return _boolean
    if code == TIMESTAMP:
        return _timestamp
    if code in (DATE, DATETIME, NEWDATE):
        return _zero_date
    if code == TIME:
        return _fraction
    if code == BIT:
        return _bits(length)
    if charset == BINARY_CHARSET and code in STRING_TYPES:
        return _hex  # binary strings and blobs come as bytes (numbers and times come as ASCII text)
    return None


def export_query_csv(url: str, query: str, path: str, params: Sequence[Any] | None = None) -> None:
    """Stream ``query``'s rows to ``path`` as CSV with a header, ``BATCH`` rows at a time."""
    con = _connect(url, typed=False)
    try:
        with con.cursor() as cur, open(path, "w", newline="", encoding="utf-8") as out:
            cur.execute(query, _args(params))
            fields = cur._result.fields  # type, charset and length of each column
            writers = [(i, w) for i, f in enumerate(fields) if (w := column_writer(f)) is not None]
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow([f.name for f in fields])
            while rows := cur.fetchmany(BATCH):
                if writers:
                    rows = [_converted(row, writers) for row in rows]
                writer.writerows(rows)
    finally:
        con.close()


def _converted(row: tuple, writers: list[tuple[int, Callable]]) -> list:
    out = list(row)
    for i, w in writers:
        if out[i] is not None:
            out[i] = w(out[i])
    return out
