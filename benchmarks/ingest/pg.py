"""PostgreSQL plumbing shared by the contenders: the bench database and fair starting conditions."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/atlas_bench"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def ensure_database(url: str) -> None:
    """Create the benchmark database when missing (connecting to the ``postgres`` database)."""
    name = database_name(url)
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def checkpoint(conn: psycopg.Connection) -> None:
    """Flush dirty buffers before a timed load, so no contender pays for an earlier one's checkpoint."""
    conn.execute("CHECKPOINT")


def server_version(url: str) -> str:
    with connect(url) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])


def server_settings(url: str) -> dict[str, str]:
    names = ("shared_buffers", "max_wal_size", "wal_level", "synchronous_commit", "fsync")
    with connect(url) as conn:
        return {n: str(conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(n))).fetchone()[0]) for n in names}
