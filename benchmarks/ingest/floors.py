"""The physical limits: the fastest plain load each engine offers, with nothing around it.

PostgreSQL: psycopg 3 ``COPY ... FROM STDIN (FORMAT csv, HEADER true)`` into a
plain table of text columns, the file streamed in 1 MiB chunks. DuckDB:
``CREATE TABLE AS SELECT * FROM read_csv(..., all_varchar=true)`` in a fresh
database file (closed, so checkpointed, before the clock stops).

Each ``rep`` is one timed load into an empty table created untimed, after a
CHECKPOINT, on a quiet machine; it returns ``seconds``, ``rows`` and ``cpu``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import psycopg
from psycopg import sql

from . import pg
from .cpu import CpuMeter, wait_until_quiet

CHUNK = 1 << 20
PG_TABLE = "bench_floor_orders"


def copy_file(conn: psycopg.Connection, path: str, table: str = PG_TABLE) -> int:
    """Stream ``path`` into ``table`` with COPY; return the rows PostgreSQL counted."""
    stmt = sql.SQL("COPY {} FROM STDIN (FORMAT csv, HEADER true)").format(sql.Identifier(table))
    with open(path, "rb") as fh, conn.cursor() as cur:
        with cur.copy(stmt) as copy:
            while chunk := fh.read(CHUNK):
                copy.write(chunk)
        return int(cur.rowcount)


def copy_gzip(conn: psycopg.Connection, path: str, table: str = PG_TABLE) -> int:
    """``gzip -dc path | COPY``: the decompressor in its own process, its output streamed into COPY."""
    import subprocess

    stmt = sql.SQL("COPY {} FROM STDIN (FORMAT csv, HEADER true)").format(sql.Identifier(table))
    with subprocess.Popen(["gzip", "-dc", path], stdout=subprocess.PIPE) as proc, conn.cursor() as cur:
        assert proc.stdout is not None
        with cur.copy(stmt) as copy:
            while chunk := proc.stdout.read(CHUNK):
                copy.write(chunk)
        if proc.wait() != 0:
            raise RuntimeError(f"gzip -dc {path} failed")
        return int(cur.rowcount)


class PostgresFloor:
    """psycopg COPY into a plain table with the file's columns, all text."""

    def __init__(self, url: str, path: str, columns: list[str], quiet: bool = True) -> None:
        self.url, self.path, self.columns, self.quiet = url, path, columns, quiet
        self.conn = pg.connect(url)

    def on(self, path: str) -> PostgresFloor:
        """The same floor (connection) loading another file with the same columns."""
        other = object.__new__(PostgresFloor)
        other.url, other.path, other.columns, other.quiet, other.conn = self.url, path, self.columns, self.quiet, self.conn
        return other

    def _recreate_table(self) -> None:
        cols = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in self.columns)
        self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(PG_TABLE)))
        self.conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(PG_TABLE), cols))

    def rep(self) -> dict[str, Any]:
        self._recreate_table()
        pg.checkpoint(self.conn)
        waited = wait_until_quiet() if self.quiet else 0.0
        with CpuMeter(pg.database_name(self.url)) as meter:
            rows = (copy_gzip if self.path.endswith(".gz") else copy_file)(self.conn, self.path)
        return {"seconds": meter.use.wall_s, "rows": rows, "cpu": meter.use.to_dict(), "waited_for_quiet_s": round(waited, 1)}

    def close(self) -> None:
        self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(PG_TABLE)))
        self.conn.close()


def _duckdb_ctas(db_file: Path, path: str) -> int:
    con = duckdb.connect(str(db_file))
    try:
        con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?, all_varchar = true)", [path])
        rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        con.close()  # checkpoints: the load is on disk when the clock stops
    return int(rows)


class DuckDBFloor:
    """CREATE TABLE AS SELECT * FROM read_csv(all_varchar) into a fresh DuckDB file per rep."""

    def __init__(self, path: str, workdir: Path, quiet: bool = True) -> None:
        self.path, self.workdir, self.quiet = path, workdir, quiet
        self._n = 0

    def rep(self) -> dict[str, Any]:
        self._n += 1
        db_file = self.workdir / f"floor-{self._n}.duckdb"
        waited = wait_until_quiet() if self.quiet else 0.0
        try:
            with CpuMeter() as meter:
                rows = _duckdb_ctas(db_file, self.path)
        finally:
            db_file.unlink(missing_ok=True)
            Path(f"{db_file}.wal").unlink(missing_ok=True)
        return {"seconds": meter.use.wall_s, "rows": rows, "cpu": meter.use.to_dict(), "waited_for_quiet_s": round(waited, 1)}
