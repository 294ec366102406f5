"""Where Atlas's load spends its time (run when it is below the target, or with --profile).

Two views, both in one Django-configured process:

* **instrumented runs**: real ``execute_run`` calls with Atlas's own functions
  wrapped in timers at run time (no Atlas code is changed): content scan,
  ledger lookup, ``load_file`` and its parts, quarantine, publish (ATTACH
  PARTITION), dataset refresh; the rest is the runner's bookkeeping;
* **isolated sides** of the streamed load: DuckDB's parse alone, DuckDB →
  FIFO → Python with no PostgreSQL (the producer), and PostgreSQL ``COPY`` of
  DuckDB's CSV output from a file into tables of several shapes (the
  consumer): the floor's plain table, the staging table as ``load_file``
  builds it (DDL mirrored here), and what-if variants of it.

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
    "duckdb": "publish_batches (INSERT … SELECT from staging, DROP, ledger)",
}
LOAD_REST = {
    "postgres": "load_file / rest (DDL, sequence)",
    "duckdb": "load_file / rest (CTAS staging: DuckDB parse + write + row_number)",
}
TOP_LEVEL = (
    "ensure_schemas",
    "content scan (sha256 + long lines)",
    "ledger lookup",
    "load_file",
    "quarantine_rejects",
    "publish_batches",
    "refresh_dataset (columns + count(*))",
)
IN_LOAD_FILE = (
    "plan_scan",
    "ensure_explore_table",
    "_copy_through_fifo (DuckDB parse ∥ COPY)",
    "collect_rejects",
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
    from pipelines import ingest, runner

    if engine == "postgres":
        from atlas.warehouse import postgresql as module

        wh_cls: type = module.PostgresWarehouse
    else:
        from atlas.warehouse import duckdb as module

        wh_cls = module.DuckDBWarehouse
    timer = PhaseTimer()
    timer.wrap(base.Warehouse, "ensure_schemas", "ensure_schemas")
    timer.wrap_enter(ingest, "source_files", "content scan (sha256 + long lines)")
    timer.wrap(base.Warehouse, "loaded_batch", "ledger lookup")
    timer.wrap(wh_cls, "load_file", "load_file")
    timer.wrap(module, "plan_scan", "plan_scan")
    timer.wrap(base.Warehouse, "ensure_explore_table", "ensure_explore_table")
    if engine == "postgres":
        timer.wrap(wh_cls, "_copy_through_fifo", "_copy_through_fifo (DuckDB parse ∥ COPY)")
    timer.wrap(filereader.FileScan, "collect_rejects", "collect_rejects")
    timer.wrap(base.Warehouse, "quarantine_rejects", "quarantine_rejects")
    # The class that defines it: the engine's own, or the generic one in base.
    publisher = wh_cls if "publish_batches" in vars(wh_cls) else base.Warehouse
    timer.wrap(publisher, "publish_batches", "publish_batches")
    timer.wrap(runner, "refresh_dataset", "refresh_dataset (columns + count(*))")
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


def duckdb_settings() -> dict[str, str]:
    """The DuckDB configuration Atlas's PostgreSQL backend parses with."""
    try:
        from atlas.warehouse.duckdb import duckdb_config
    except ImportError:  # older Atlas: a fixed limit
        return {"memory_limit": "512MB"}
    return dict(duckdb_config())


def _duck(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection configured as Atlas's PostgreSQL backend configures it."""
    con = duckdb.connect(config={**duckdb_settings(), "preserve_insertion_order": True})
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def _select_sql(path: str, duck: duckdb.DuckDBPyConnection) -> str:
    from django.conf import settings

    from atlas.warehouse.filereader import plan_scan

    max_line = settings.ATLAS_INGEST_MAX_LINE_BYTES
    return plan_scan(path, "csv", {"columns": []}, tag="load", max_line_bytes=max_line, duck=duck).select_sql


def parse_only(path: str) -> int:
    duck = _duck()
    try:
        return int(duck.execute(f"SELECT count(*) FROM ({_select_sql(path, duck)})").fetchone()[0])
    finally:
        duck.close()


@dataclass(frozen=True)
class Stream:
    """How DuckDB's rows reach the reader: DuckDB threads, extra SELECT columns, FIFO buffer size."""

    threads: int | None = None
    extra_select: str = ""
    pipe_size: int | None = None


@contextlib.contextmanager
def _fifo() -> Iterator[str]:
    tmpdir = tempfile.mkdtemp(prefix="atlas-bench-fifo-")
    fifo = os.path.join(tmpdir, "rows.csv")
    os.mkfifo(fifo)
    try:
        yield fifo
    finally:
        os.unlink(fifo)
        os.rmdir(tmpdir)


def stream_through_fifo(path: str, consume: Callable[[Any], int], how: Stream = Stream()) -> int:
    """DuckDB writes the file's rows as CSV into a FIFO (a thread), as load_file does; ``consume`` reads it."""
    duck = _duck(how.threads)
    select = _select_sql(path, duck)
    if how.extra_select:
        select = f"SELECT *, {how.extra_select} FROM ({select})"
    with _fifo() as fifo:
        producer = threading.Thread(
            target=lambda: duck.execute(f"COPY ({select}) TO '{fifo}' (FORMAT csv, HEADER false)"), daemon=True
        )
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


def duckdb_to_file(path: str, out: str) -> None:
    duck = _duck()
    try:
        duck.execute(f"COPY ({_select_sql(path, duck)}) TO '{out}' (FORMAT csv, HEADER false)")
    finally:
        duck.close()


# Staging table shapes: the columns after the source's text columns, with their defaults.
BATCH = "b0123456789abcdef"
_CHECK = f", CHECK (_batch_id = '{BATCH}')"
_FIXED = f", _batch_id text NOT NULL DEFAULT '{BATCH}', _ingested_at timestamptz NOT NULL DEFAULT now()"
SHAPES: dict[str, str] = {
    "plain": "",
    "atlas": _FIXED + ", _source text DEFAULT {source}, _row_number bigint DEFAULT nextval('atlas_bench_seq')" + _CHECK,
    "no_seq": _FIXED + ", _source text DEFAULT {source}, _row_number bigint" + _CHECK,
    "no_source": _FIXED + ", _source text, _row_number bigint DEFAULT nextval('atlas_bench_seq')" + _CHECK,
    "lean": _FIXED + ", _source text, _row_number bigint" + _CHECK,
}
SHAPE_LABELS = {
    "plain": "the floor's plain table",
    "atlas": "Atlas's staging table, as load_file builds it",
    "no_seq": "… without the nextval() default on _row_number",
    "no_source": "… without the file label in _source on every row",
    "lean": "… without either",
}
STAGING = "bench_breakdown_staging"
ROW_NUMBER = "row_number() OVER () AS _row_number"


def _create_staging(conn: psycopg.Connection, columns: list[str], shape: str, source: str) -> None:
    cols = ", ".join(f'"{c}" text' for c in columns)
    extra = SHAPES[shape].replace("{source}", "'" + source.replace("'", "''") + "'")
    conn.execute(f"DROP TABLE IF EXISTS {STAGING}")
    conn.execute("DROP SEQUENCE IF EXISTS atlas_bench_seq")
    conn.execute("CREATE SEQUENCE atlas_bench_seq")
    conn.execute(f"CREATE TABLE {STAGING} ({cols}{extra})")


def _copy_from(conn: psycopg.Connection, reader: Any, columns: list[str]) -> int:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(STAGING), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with conn.cursor() as cur:
        with cur.copy(stmt) as copy:
            while chunk := reader.read(CHUNK):
                copy.write(chunk)
        return int(cur.rowcount)


def _copy_file(conn: psycopg.Connection, path: str, columns: list[str]) -> int:
    with open(path, "rb") as fh:
        return _copy_from(conn, fh, columns)


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
    """DuckDB's side with no PostgreSQL: parse only, then parse → CSV → FIFO → Python."""
    nothing: Callable[[], None] = lambda: None  # noqa: E731
    return {
        "producer: DuckDB parse only (count(*))": _median_of(reps, nothing, lambda: parse_only(path), database),
        "producer: DuckDB → CSV → FIFO → Python, no PostgreSQL": _median_of(
            reps, nothing, lambda: stream_through_fifo(path, _drain), database
        ),
        "producer: same, DuckDB threads=1": _median_of(
            reps, nothing, lambda: stream_through_fifo(path, _drain, Stream(threads=1)), database
        ),
        "producer: same, 1 MiB FIFO buffer": _median_of(
            reps, nothing, lambda: stream_through_fifo(path, _drain, Stream(pipe_size=CHUNK)), database
        ),
    }


def consumer_alone(conn: psycopg.Connection, path: str, columns: list[str], reps: int, database: str) -> dict[str, Any]:
    """PostgreSQL's side with no DuckDB: COPY of DuckDB's CSV output, read from a file, per table shape."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
        produced = os.path.join(tmp, "duckdb-output.csv")
        duckdb_to_file(path, produced)
        for shape, label in SHAPE_LABELS.items():
            out[f"consumer: COPY from a file into {label}"] = _median_of(
                reps,
                lambda shape=shape: (_create_staging(conn, columns, shape, path), pg.checkpoint(conn)),
                lambda: _copy_file(conn, produced, columns),
                database,
            )
    return out


def streamed(conn: psycopg.Connection, path: str, columns: list[str], reps: int, database: str) -> dict[str, Any]:
    """Both sides at once (DuckDB → FIFO → COPY, as load_file does), into several shapes."""
    variants: dict[str, tuple[str, list[str], Stream]] = {
        "stream into Atlas's staging table (load_file's core)": ("atlas", columns, Stream()),
        "stream into the floor's plain table (the cost of the DuckDB hop)": ("plain", columns, Stream()),
        "stream, lean staging (_row_number from DuckDB, no _source per row)": (
            "lean", [*columns, "_row_number"], Stream(extra_select=ROW_NUMBER)
        ),
        "… and a 1 MiB FIFO buffer": ("lean", [*columns, "_row_number"], Stream(extra_select=ROW_NUMBER, pipe_size=CHUNK)),
        "… and DuckDB threads=1": (
            "lean", [*columns, "_row_number"], Stream(threads=1, extra_select=ROW_NUMBER, pipe_size=CHUNK)
        ),
    }
    out = {}
    for label, (shape, cols, how) in variants.items():
        out[label] = _median_of(
            reps,
            lambda shape=shape: (_create_staging(conn, columns, shape, path), pg.checkpoint(conn)),
            lambda cols=cols, how=how: stream_through_fifo(path, lambda r: _copy_from(conn, r, cols), how),
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
        conn.execute("DROP SEQUENCE IF EXISTS atlas_bench_seq")
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
