"""Where Atlas's load spends its time (run when it is below the target, or with --profile).

Two views, both in one Django-configured process:

* **instrumented runs**: real ``execute_run`` calls with Atlas's own functions
  wrapped in timers at run time (no Atlas code is changed): content scan,
  ledger lookup, ``load_file`` and its parts, quarantine, publish (ATTACH
  PARTITION), dataset refresh; the rest is the runner's bookkeeping;
* **isolated sides** of the streamed load: DuckDB's parse alone, DuckDB →
  FIFO → Python with no PostgreSQL (the producer), and PostgreSQL ``COPY`` of
  DuckDB's CSV output from a file into tables of several shapes (the
  consumer): the floor's plain table, and the staging table as ``load_file``
  builds it (DDL mirrored here); then both at once, and what-if variants.

    python -m benchmarks.ingest.breakdown --file F --reps 3 [--engine duckdb]

With ``--engine duckdb`` only the instrumented runs are made, on the embedded default.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import psycopg
from psycopg import sql

from . import atlas_run, pg
from .cpu import CpuMeter, least_noisy, wait_until_quiet
from .floors import CHUNK

# --- instrumented runs ----------------------------------------------------------
PUBLISH = {
    "postgres": "publish_batches (ATTACH PARTITION + ledger)",
    "duckdb": "publish_batches (staging renamed into place, ledger)",
}
LOAD_REST = {
    "postgres": "load_file / rest (DDL, batch constants as column defaults)",
    "duckdb": "load_file / rest (staging INSERT … SELECT: DuckDB parse + write, on all its threads)",
}
TOP_LEVEL = (
    "ensure_schemas",
    "content scan (sha256 + layout; on PostgreSQL, COPY fed as it reads)",
    "ledger lookup",
    "load_file",
    "quarantine_rejects",
    "publish_batches",
    "refresh_dataset (columns; count(*) unless replaced)",
)
IN_LOAD_FILE = (
    "pipe finish (COPY's last chunks, verdict, batch constants)",
    "plan_scan",
    "ensure_explore_table",
    "pgcopy.load (direct COPY, parts side by side)",
    "_copy_through_fifo (DuckDB parse ∥ COPY)",
    "collect_rejects",
    "number_rows (_row_number = rowid + 1)",
)


class PhaseTimer:
    """Wraps functions in place (this process only) and sums their wall time per label."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.missing: list[str] = []

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        original = getattr(owner, attr, None)
        if original is None:  # Atlas changed: report, do not fail
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{attr}")
            return

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.totals[label] += time.perf_counter() - start

        setattr(owner, attr, timed)

    def wrap_enter(self, owner: Any, attr: str, label: str) -> None:
        """Time entering a context manager returned by ``owner.attr``."""
        original = getattr(owner, attr, None)
        if original is None:
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{attr}")
            return

        @contextlib.contextmanager
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            start = time.perf_counter()
            with original(*args, **kwargs) as value:
                self.totals[label] += time.perf_counter() - start
                yield value

        setattr(owner, attr, timed)

    def take(self) -> dict[str, float]:
        out = dict(self.totals)
        self.totals.clear()
        return out


def instrument(engine: str) -> PhaseTimer:
    from atlas.warehouse import base, filereader
    from pipelines import hygiene, runner

    if engine == "postgres":
        from atlas.warehouse import postgresql as module

        wh_cls: type = module.PostgresWarehouse
    else:
        from atlas.warehouse import duckdb as module

        wh_cls = module.DuckDBWarehouse
    timer = PhaseTimer()
    timer.wrap(base.Warehouse, "ensure_schemas", "ensure_schemas")
    # Files are made ready as the ingest takes them (the pipe feeds COPY meanwhile): time the preparation itself.
    timer.wrap(hygiene, "prepare", "content scan (sha256 + layout; on PostgreSQL, COPY fed as it reads)")
    timer.wrap(base.Warehouse, "loaded_batch", "ledger lookup")
    timer.wrap(wh_cls, "load_file", "load_file")
    timer.wrap(module, "plan_scan", "plan_scan")
    timer.wrap(base.Warehouse, "ensure_explore_table", "ensure_explore_table")
    if engine == "postgres":
        from atlas.warehouse import pgcopy

        timer.wrap(pgcopy, "load", "pgcopy.load (direct COPY, parts side by side)")
        timer.wrap(pgcopy.Pipe, "finish", "pipe finish (COPY's last chunks, verdict, batch constants)")
        timer.wrap(wh_cls, "_copy_through_fifo", "_copy_through_fifo (DuckDB parse ∥ COPY)")
    timer.wrap(filereader.FileScan, "collect_rejects", "collect_rejects")
    if engine == "duckdb":
        timer.wrap(module, "number_rows", "number_rows (_row_number = rowid + 1)")
    timer.wrap(base.Warehouse, "quarantine_rejects", "quarantine_rejects")
    # The class that defines it: the engine's own, or the generic one in base.
    publisher = wh_cls if "publish_batches" in vars(wh_cls) else base.Warehouse
    timer.wrap(publisher, "publish_batches", "publish_batches")
    timer.wrap(runner, "refresh_dataset", "refresh_dataset (columns; count(*) unless replaced)")
    return timer


def _phases(total: float, parts: dict[str, float], engine: str) -> dict[str, float]:
    out = {(PUBLISH[engine] if k == "publish_batches" else k): parts.get(k, 0.0) for k in TOP_LEVEL}
    out["runner bookkeeping (Django ORM, rest)"] = total - sum(out.values())
    load = parts.get("load_file", 0.0)
    inner = {f"load_file / {k}": parts[k] for k in IN_LOAD_FILE if k in parts}
    inner[LOAD_REST[engine]] = load - sum(inner.values())
    return {"total": total, **out, **inner}


def instrumented_runs(path: str, reps: int, database: str, engine: str) -> tuple[list[dict[str, Any]], list[str]]:
    pipeline = atlas_run.create_pipeline(path)
    timer = instrument(engine)

    def one() -> dict[str, Any]:
        atlas_run.reset_dataset()
        wait_until_quiet()
        timer.take()
        sample = atlas_run.load_once(pipeline, database)
        return {"seconds": sample["seconds"], "cpu": sample["cpu"], "phases": _phases(sample["seconds"], timer.take(), engine)}

    one()  # warm-up
    runs = []
    for i in range(reps):
        runs.append(least_noisy(one, retries=2))
        print(f"[breakdown/{engine}] instrumented run {i + 1}/{reps}: {runs[-1]['seconds']:.2f} s", file=sys.stderr, flush=True)
    return runs, timer.missing


# --- isolated sides ---------------------------------------------------------------
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux


def _duck(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection configured as Atlas's PostgreSQL backend configures its parser."""
    from atlas.warehouse.duckdb import parser_config

    config = parser_config()
    if threads:
        config["threads"] = int(threads)
    return duckdb.connect(config=config)


def _scan(path: str, duck: duckdb.DuckDBPyConnection) -> Any:
    from django.conf import settings

    from atlas.warehouse.filereader import plan_scan

    max_line = settings.ATLAS_INGEST_MAX_LINE_BYTES
    return plan_scan(path, "csv", {"columns": []}, tag="load", max_line_bytes=max_line, duck=duck)


def _producer_sql(path: str, duck: duckdb.DuckDBPyConnection, out: str, fmt: str) -> str:
    """DuckDB's COPY statement: Atlas's own (numbered rows), or the source columns alone."""
    from atlas.warehouse.postgresql import copy_csv_to, copy_select

    scan = _scan(path, duck)
    if fmt == "numbered":
        return copy_csv_to(copy_select(scan.select_sql), out)
    return copy_csv_to(scan.select_sql, out)


def parse_only(path: str) -> int:
    duck = _duck()
    try:
        return int(duck.execute(f"SELECT count(*) FROM ({_scan(path, duck).select_sql})").fetchone()[0])
    finally:
        duck.close()


@dataclass(frozen=True)
class Stream:
    """How DuckDB's rows reach the reader: numbered (as load_file) or not, DuckDB threads, FIFO buffer."""

    fmt: str = "numbered"
    threads: int | None = None
    pipe_size: int | None = CHUNK


@contextlib.contextmanager
def _fifo() -> Iterator[str]:
    tmpdir = tempfile.mkdtemp(prefix="atlas-bench-fifo-")
    fifo = os.path.join(tmpdir, "rows")
    os.mkfifo(fifo)
    try:
        yield fifo
    finally:
        os.unlink(fifo)
        os.rmdir(tmpdir)


def stream_through_fifo(path: str, consume: Callable[[Any], int], how: Stream = Stream()) -> int:
    """DuckDB writes the file's rows into a FIFO (a thread), as load_file does; ``consume`` reads it."""
    duck = _duck(how.threads)
    with _fifo() as fifo:
        statement = _producer_sql(path, duck, fifo, how.fmt)
        producer = threading.Thread(target=lambda: duck.execute(statement), daemon=True)
        producer.start()
        try:
            fd = os.open(fifo, os.O_RDONLY)
            if how.pipe_size:
                fcntl.fcntl(fd, F_SETPIPE_SZ, how.pipe_size)
            with os.fdopen(fd, "rb") as reader:
                result = consume(reader)
        finally:
            producer.join()
            duck.close()
    return result


def _drain(reader: Any) -> int:
    total = 0
    while chunk := reader.read(CHUNK):
        total += len(chunk)
    return total


def duckdb_to_file(path: str, out: str, fmt: str) -> None:
    duck = _duck()
    try:
        duck.execute(_producer_sql(path, duck, out, fmt))
    finally:
        duck.close()


BATCH = "b0123456789abcdef"
STAGING = "bench_breakdown_staging"


@dataclass(frozen=True)
class Shape:
    """A target table: the floor's plain one, or the staging table as load_file builds it (DDL mirrored)."""

    atlas: bool
    fmt: str  # what COPY reads: CSV with numbered rows (as load_file), or the source columns alone

    def copy_columns(self, columns: list[str]) -> list[str]:
        return [*columns, "_row_number"] if self.fmt == "numbered" else columns


SHAPES = {
    "the floor's plain table": Shape(atlas=False, fmt="csv"),
    "Atlas's staging table, as load_file builds it (numbered rows, FREEZE, batch constants as defaults)": Shape(
        atlas=True, fmt="numbered"
    ),
}


def _create(conn: psycopg.Connection, columns: list[str], shape: Shape) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {STAGING}")
    cols = ", ".join(f'"{c}" text' for c in columns)
    if shape.fmt == "numbered":
        cols += ", _row_number bigint"
    if shape.atlas:
        cols += f", _batch_id text NOT NULL DEFAULT '{BATCH}' CHECK (_batch_id = '{BATCH}')"
    conn.execute(f"CREATE TABLE {STAGING} ({cols})")


def _load(conn: psycopg.Connection, reader: Any, columns: list[str], shape: Shape, source: str) -> int:
    """Create the table and COPY into it in one transaction (as load_file does), then add the batch constants."""
    cols = shape.copy_columns(columns)
    options = "FORMAT csv, FREEZE" if shape.atlas else "FORMAT csv"
    stmt = sql.SQL("COPY {} ({}) FROM STDIN ({})").format(
        sql.Identifier(STAGING), sql.SQL(", ").join(sql.Identifier(c) for c in cols), sql.SQL(options)
    )
    with conn.transaction(), conn.cursor() as cur:
        _create(conn, columns, shape)
        with cur.copy(stmt) as copy:
            while chunk := reader.read(CHUNK):
                copy.write(chunk)
        rows = int(cur.rowcount)
        if shape.atlas:
            label = "'" + source.replace("'", "''") + "'"
            cur.execute(
                f"ALTER TABLE {STAGING} ADD COLUMN _ingested_at timestamptz NOT NULL DEFAULT now(),"
                f" ADD COLUMN _source text DEFAULT {label}"
            )
    return rows


def _median_of(
    reps: int, setup: Callable[[], object], fn: Callable[[], object], database: str, retries: int = 2
) -> dict[str, Any]:
    def one() -> dict[str, Any]:
        setup()
        wait_until_quiet()
        with CpuMeter(database) as meter:
            fn()
        return {"seconds": meter.use.wall_s, "cpu": meter.use.to_dict()}

    samples = [least_noisy(one, retries) for _ in range(reps)]
    seconds = [s["seconds"] for s in samples]
    return {
        "median_s": round(statistics.median(seconds), 4),
        "samples_s": [round(s, 4) for s in seconds],
        "noisy_samples": sum(s["noisy"] for s in samples),
        "cpu": [s["cpu"] for s in samples],
    }


def producer_alone(path: str, reps: int, database: str) -> dict[str, Any]:
    """DuckDB's side with no PostgreSQL: parse only, then parse → FIFO → Python."""
    nothing: Callable[[], None] = lambda: None  # noqa: E731
    return {
        "producer: DuckDB parse only (count(*))": _median_of(reps, nothing, lambda: parse_only(path), database),
        "producer: DuckDB → CSV with row numbers → FIFO → Python, no PostgreSQL (as load_file)": _median_of(
            reps, nothing, lambda: stream_through_fifo(path, _drain), database
        ),
        "producer: same, without the row numbers": _median_of(
            reps, nothing, lambda: stream_through_fifo(path, _drain, Stream(fmt="csv")), database
        ),
        "producer: same as load_file, DuckDB threads=2": _median_of(
            reps, nothing, lambda: stream_through_fifo(path, _drain, Stream(threads=2)), database
        ),
    }


def _reset(conn: psycopg.Connection) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {STAGING}")
    pg.checkpoint(conn)


def consumer_alone(conn: psycopg.Connection, path: str, columns: list[str], reps: int, database: str) -> dict[str, Any]:
    """PostgreSQL's side with no DuckDB: COPY of DuckDB's output, read from a file, per table shape."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
        produced = {fmt: os.path.join(tmp, f"duckdb-output.{fmt}.csv") for fmt in ("csv", "numbered")}
        for fmt, out_path in produced.items():
            duckdb_to_file(path, out_path, fmt)
        for label, shape in SHAPES.items():

            def load(shape: Shape = shape) -> int:
                with open(produced[shape.fmt], "rb") as fh:
                    return _load(conn, fh, columns, shape, path)

            out[f"consumer: COPY from a file into {label}"] = _median_of(reps, lambda: _reset(conn), load, database)
    return out


def streamed(conn: psycopg.Connection, path: str, columns: list[str], reps: int, database: str) -> dict[str, Any]:
    """Both sides at once (DuckDB → FIFO → COPY), as load_file does, and into the floor's table."""
    variants: dict[str, tuple[Shape, Stream]] = {
        "stream into Atlas's staging table (load_file's core)": (
            SHAPES["Atlas's staging table, as load_file builds it (numbered rows, FREEZE, batch constants as defaults)"],
            Stream(),
        ),
        "… with DuckDB threads=2": (
            SHAPES["Atlas's staging table, as load_file builds it (numbered rows, FREEZE, batch constants as defaults)"],
            Stream(threads=2),
        ),
        "stream into the floor's plain table (the cost of the DuckDB hop)": (
            SHAPES["the floor's plain table"],
            Stream(fmt="csv"),
        ),
    }
    out = {}
    for label, (shape, how) in variants.items():
        out[label] = _median_of(
            reps,
            lambda: _reset(conn),
            lambda shape=shape, how=how: stream_through_fifo(path, lambda r: _load(conn, r, columns, shape, path), how),
            database,
        )
    return out


def isolated_sides(path: str, columns: list[str], url: str, reps: int) -> dict[str, Any]:
    database = pg.database_name(url)
    out = producer_alone(path, reps, database)
    with pg.connect(url) as conn:
        out.update(consumer_alone(conn, path, columns, reps, database))
        out.update(streamed(conn, path, columns, reps, database))
        conn.execute(f"DROP TABLE IF EXISTS {STAGING}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pg-url", default=pg.DEFAULT_URL)
    parser.add_argument("--engine", choices=("postgres", "duckdb"), default="postgres",
                        help="duckdb: the instrumented runs only (the isolated sides are PostgreSQL's)")
    args = parser.parse_args(argv)
    path = os.path.abspath(args.file)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")  # our answer; anything else printed goes to stderr
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with tempfile.TemporaryDirectory(prefix="atlas-bench-var-") as var_dir:
        atlas_run.configure_django(args.engine, args.pg_url, var_dir)
        runs, missing = instrumented_runs(path, args.reps, pg.database_name(args.pg_url), args.engine)
        atlas_run.reset_dataset()
        sides = {}
        if args.engine == "postgres":
            with open(path, encoding="utf-8") as fh:
                columns = fh.readline().rstrip("\r\n").split(",")
            sides = isolated_sides(path, columns, args.pg_url, args.reps)
    phases = {k: round(statistics.median(r["phases"][k] for r in runs), 4) for k in runs[0]["phases"]}
    out.write(json.dumps({"engine": args.engine, "phases_median_s": phases, "runs": runs, "not_instrumented": missing, "sides": sides}) + "\n")
    out.close()


if __name__ == "__main__":
    main()
