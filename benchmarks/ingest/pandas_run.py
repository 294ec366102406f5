"""What many users do: ``pandas.read_csv(dtype=str)`` then ``DataFrame.to_sql(method="multi")``.

Run by ``benchmarks.ingest`` in a subprocess (so its peak memory is its own)::

    python -m benchmarks.ingest.pandas_run --file F --reps 5 --max-seconds 120

A repetition slower than ``--max-seconds`` ends the series: it is then
measured once only (the result says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pandas as pd
import sqlalchemy

from . import memory, pg
from .cpu import CpuMeter, wait_until_quiet

TABLE = "bench_pandas_orders"


def sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def load(engine: sqlalchemy.Engine, path: str) -> int:
    frame = pd.read_csv(path, dtype=str)
    frame.to_sql(TABLE, engine, if_exists="replace", index=False, method="multi", chunksize=10_000)
    return len(frame)


def reset(engine: sqlalchemy.Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {TABLE}"))
        conn.commit()
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sqlalchemy.text("CHECKPOINT"))


def table_rows(engine: sqlalchemy.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sqlalchemy.text(f"SELECT count(*) FROM {TABLE}")).scalar_one())


def measure(url: str, path: str, reps: int, max_seconds: float, quiet: bool) -> dict[str, Any]:
    engine = sqlalchemy.create_engine(sqlalchemy_url(url))
    samples: list[dict[str, Any]] = []
    capped = False
    for i in range(reps):
        reset(engine)
        if quiet:
            wait_until_quiet()
        with CpuMeter(pg.database_name(url)) as meter:
            rows = load(engine, path)
        sample = {"seconds": meter.use.wall_s, "rows": rows, "table_rows": table_rows(engine), "cpu": meter.use.to_dict()}
        samples.append(sample)
        print(f"[pandas] rep {i + 1}/{reps}: {sample['seconds']:.1f} s, {rows:,} rows", file=sys.stderr, flush=True)
        if sample["seconds"] > max_seconds and i + 1 < reps:
            capped = True
            print(f"[pandas] slower than {max_seconds:.0f} s: measured once only", file=sys.stderr, flush=True)
            break
    reset(engine)
    engine.dispose()
    return {
        "samples": samples,
        "capped_after_one": capped,
        "peak_rss_mib": memory.peak_mib(),
        "versions": {"pandas": pd.__version__, "sqlalchemy": sqlalchemy.__version__},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--pg-url", default=pg.DEFAULT_URL)
    parser.add_argument("--no-quiet-wait", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.pg_url, args.file, args.reps, args.max_seconds, not args.no_quiet_wait)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
