"""The ingest benchmark, one command: ``python -m benchmarks.ingest``.

1. prepares the clean CSV (generator's orders.csv minus its malformed lines) at
   ``--rows`` and ``--small-rows``;
2. PostgreSQL: the COPY floor and the real Atlas run, interleaved rep by rep;
   then pandas ``to_sql`` (once only when a rep exceeds ``--pandas-max-seconds``);
3. DuckDB: the CTAS floor and Atlas on the embedded default, interleaved;
4. peak memory of the Atlas processes at both file sizes;
5. when Atlas is below the target (0.8× its floor; or ``--profile always``), a
   breakdown of where its time goes, per engine;
6. writes ``benchmarks/results/ingest.{json,md}`` and prints the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import data, pg, report
from .children import AtlasChild, run_breakdown, run_pandas
from .cpu import least_noisy
from .floors import DuckDBFloor, PostgresFloor

Rep = Callable[[], dict[str, Any]]
_ROOT = Path(__file__).resolve().parent.parent.parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description="Atlas ingest benchmark.")
    p.add_argument("--rows", type=int, default=1_000_000, help="generator rows of the main file")
    p.add_argument("--small-rows", type=int, default=250_000, help="generator rows of the memory-check file")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--retries", type=int, default=2, help="re-run a rep disturbed by other processes (this many times)")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_DATABASE_URL", pg.DEFAULT_URL))
    p.add_argument("--pandas-max-seconds", type=float, default=120.0)
    p.add_argument("--skip-pandas", action="store_true")
    p.add_argument("--skip-duckdb", action="store_true")
    p.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                   help="breakdown of Atlas's PostgreSQL time (auto: when below the target)")
    p.add_argument("--no-quiet-wait", action="store_true", help="do not wait for a quiet machine before each rep")
    p.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="development run (also BENCH_QUICK=1): 2 reps, no warm-up or retries, no pandas, no breakdown,"
        " no quiet wait; writes benchmarks/data/ingest.quick.{json,md}, never the committed figures",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.warmup, args.retries = min(args.reps, 2), 0, 0
        args.skip_pandas, args.no_quiet_wait, args.profile = True, True, "never"
    return args


def interleave(reps: int, warmup: int, retries: int, contenders: dict[str, Rep], tag: str) -> dict[str, list[dict[str, Any]]]:
    """Round-robin repetitions (order alternating each round), so drift hits every contender alike."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    names = list(contenders)
    for i in range(warmup + reps):
        order = names if i % 2 == 0 else names[::-1]
        timed = i >= warmup
        last = {}
        for name in order:
            last[name] = least_noisy(contenders[name], retries) if timed else contenders[name]()
            if timed:
                out[name].append(last[name])
        label = f"rep {i - warmup + 1}/{reps}" if timed else f"warm-up {i + 1}/{warmup}"
        log(f"[{tag}] {label}: " + ", ".join(f"{n} {last[n]['seconds']:.2f} s" for n in names))
    return out


def _memory_entry(summary: dict[str, Any], rows: int) -> dict[str, Any]:
    keys = ("baseline_rss_mib", "peak_before_load_mib", "peak_rss_mib", "ru_maxrss_mib")
    return {"rows": rows, **{k: summary.get(k) for k in keys}}


def bench_postgres(args: argparse.Namespace, big: data.BenchFile) -> tuple[dict[str, list], dict[str, Any]]:
    """The file as generated (no quote character) and the same rows with every field quoted, interleaved."""
    quiet = not args.no_quiet_wait
    quoted = data.quoted(big)
    gz = data.gzipped(big)
    data.warm_cache(quoted.path)
    data.warm_cache(gz.path)
    floor = PostgresFloor(args.pg_url, big.path, big.columns, quiet)
    atlas = AtlasChild("postgres", big.path, args.pg_url, quiet)
    contenders = {
        "postgres_floor": floor.rep,
        "atlas_postgres": atlas.load,
        "postgres_floor_quoted": floor.on(quoted.path).rep,
        "atlas_postgres_quoted": lambda: atlas.load(quoted.path),
        "postgres_floor_gzip": floor.on(gz.path).rep,
        "atlas_postgres_gzip": lambda: atlas.load(gz.path),
    }
    try:
        samples = interleave(args.reps, args.warmup, args.retries, contenders, "postgres")
    finally:
        floor.close()
    return samples, atlas.finish()


def bench_duckdb(args: argparse.Namespace, big: data.BenchFile) -> tuple[dict[str, list], dict[str, Any]]:
    quiet = not args.no_quiet_wait
    workdir = Path(tempfile.mkdtemp(prefix="atlas-bench-duckdb-"))
    try:
        floor = DuckDBFloor(big.path, workdir, quiet)
        atlas = AtlasChild("duckdb", big.path, args.pg_url, quiet)
        samples = interleave(args.reps, args.warmup, args.retries, {"duckdb_floor": floor.rep, "atlas_duckdb": atlas.load}, "duckdb")
        return samples, atlas.finish()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def atlas_small(args: argparse.Namespace, engine: str, small: data.BenchFile) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The same Atlas process on the small file: its timings, and its peak memory to compare.

    On PostgreSQL it also loads the small file's quoted copy, as the big file's
    process does, so that both peaks cover both load paths.
    """
    child = AtlasChild(engine, small.path, args.pg_url, not args.no_quiet_wait)
    contenders = {f"atlas_{engine}_small": child.load}
    if engine == "postgres":
        quoted = data.quoted(small)
        contenders["atlas_postgres_small_quoted"] = lambda: child.load(quoted.path)
    samples = interleave(args.reps, args.warmup, 0, contenders, f"{engine} small")
    return samples[f"atlas_{engine}_small"], child.finish()


def _relative(path: str) -> str:
    try:
        return str(Path(path).relative_to(_ROOT))
    except ValueError:
        return path


def machine(pg_url: str) -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")), "")
    return {
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres": pg.server_version(pg_url),
        "postgres_settings": pg.server_settings(pg_url),
    }


def rows_check(contenders: dict[str, dict[str, Any]], expected: int) -> dict[str, Any]:
    loaded = {k: c["rows"] for k, c in contenders.items()}
    ok = all(v == expected for v in loaded.values())
    detail = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in loaded.items())
    verdict = "all equal the file's" if ok else "MISMATCH against the file's"
    return {"expected": expected, "loaded": loaded, "all_equal": ok, "detail": f"{detail} — {verdict} {expected:,} rows"}


def notes(args: argparse.Namespace, results: dict[str, Any]) -> list[str]:
    out = [
        "Atlas reps: each is a first load into an empty dataset — untimed, the Explore table and its quarantine"
        " table are dropped and the batch ledger cleared with `forget_batches`; timed: `start_run(dispatch=False)`"
        " + `execute_run` (content scan/checksum, parse, load, publish, ledger, dataset refresh, bookkeeping).",
        "Every rep starts after a CHECKPOINT on an empty table, once the machine is quiet (up to"
        f" {os.environ.get('BENCH_QUIET_TIMEOUT', '30')} s wait); a rep during which other processes used more"
        f" than 20% of a core is re-run up to {args.retries} times and the least disturbed attempt kept"
        " (`noisy`, `attempts` and `cpu.other_cpu_s` in ingest.json).",
        "Peak memory: VmHWM of the Atlas process (whole life: Django setup, migrate, all reps) and the kernel's"
        " ru_maxrss from wait4. On PostgreSQL, DuckDB parses in-process with memory_limit"
        f" {results.get('parser_memory_limit', '?')} and {results.get('parser_threads', '?')} thread(s)"
        " (ATLAS_INGEST_PARSER_MEMORY_LIMIT, ATLAS_INGEST_PARSER_THREADS); the embedded warehouse has"
        f" memory_limit {results.get('duckdb_memory_limit', '?')} (ATLAS_DUCKDB_MEMORY_LIMIT), which its"
        " buffer pool fills with the table just written before it evicts.",
        "Atlas runs the ingest alone: no step hooks (ATLAS_STEP_HOOKS empty; the default hooks add the PII scan,"
        " quality gates and lineage events after the load). BENCH_ATLAS_HOOKS=dotted,paths measures with hooks.",
        "The DuckDB floor's time includes closing (checkpointing) the fresh database file.",
        "Client CPU: the contender's own process, every thread (for Atlas, DuckDB's parser threads included);"
        " PostgreSQL CPU: the backends of the bench database and the shared WAL/checkpoint/background writers, and"
        " backends that ended meanwhile (Atlas's direct COPY opens a connection per part; the postmaster's reaped"
        " children, of any database: on a busy server this over-counts).",
        "Atlas on PostgreSQL: the file has no quote character, so it takes the direct path (PostgreSQL's COPY parses"
        " it); the every-field-quoted copy of the same rows has only simple quotes (each opens or closes a whole"
        " field), which COPY reads as DuckDB does, so it takes the direct path too (issue 16). Each file, plain or"
        " gzip, is fed to COPY while the content scan reads it (`pgcopy.Pipe`, one pass; the gzip copy inflated once"
        " by ISA-L in a thread beside the scan, never written to disk), cut into segments of a fixed number of lines"
        f" (about {results.get('copy_segment_bytes', '?')} bytes) dealt in turn to up to"
        f" {results.get('copy_streams', '?')} connections side by side (ATLAS_INGEST_COPY_STREAMS), each segment one"
        " COPY numbered from where it starts; the load kept once the scan's checksum, layout and record count allow"
        f" it (ATLAS_INGEST_COPY_PIPE={results.get('copy_pipe', '?')}).",
    ]
    pandas = results["contenders"].get("pandas_to_sql")
    if pandas and pandas.get("capped_after_one"):
        out.append(f"pandas took more than {args.pandas_max_seconds:.0f} s per rep: measured once only.")
    if (results["machine"]["cpu_count"] or 0) <= 2:
        out.append(
            "This machine has ≤ 2 CPUs: Atlas's parts (or, on the DuckDB path, its parser and the PostgreSQL backend)"
            " compete for them; expect a higher ratio with more cores."
        )
    return out


def versions(atlas_summaries: list[dict[str, Any]], pandas: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for s in atlas_summaries:
        out.update(s.get("versions", {}))
    if pandas:
        out.update(pandas.get("versions", {}))
    return out


def profile(args: argparse.Namespace, big: data.BenchFile, ratios: dict[str, Any]) -> dict[str, Any]:
    """Breakdowns of Atlas's time, per engine below the target (or all with --profile always)."""
    out: dict[str, Any] = {}
    below = {
        "postgres": ratios.get("atlas_vs_floor_postgres", 1.0) < report.TARGET,
        "duckdb": ratios.get("atlas_vs_floor_duckdb", 1.0) < report.TARGET,
    }
    for engine, is_below in below.items():
        if engine == "duckdb" and args.skip_duckdb:
            continue
        if args.profile == "always" or (args.profile == "auto" and is_below):
            log(f"[breakdown] profiling Atlas on {engine}…")
            out[engine] = run_breakdown(big.path, args.pg_url, max(3, args.reps // 2), engine)
    return out


def _check_pandas_installed(args: argparse.Namespace) -> None:
    """Fail at the start, not after the other contenders ran: pandas needs the bench extras."""
    if args.skip_pandas:
        return
    import importlib.util

    missing = [m for m in ("pandas", "sqlalchemy") if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(
            f"The pandas contender needs {', '.join(missing)}: install the bench extras"
            " (`make bench`, or `pip install -e '.[bench]'`), or pass --skip-pandas."
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _check_pandas_installed(args)
    if args.no_quiet_wait:  # the breakdown's child process waits too, unless told not to
        os.environ["BENCH_QUIET_TIMEOUT"] = "0"
    big, small = data.prepare(args.rows), data.prepare(args.small_rows)
    pg.ensure_database(args.pg_url)
    for f in (big, small):
        data.warm_cache(f.path)
    log(f"[bench] {big.rows:,} rows, {big.size_bytes / 1e6:.1f} MB: {big.path}")

    samples, pg_summary = bench_postgres(args, big)
    summaries, memory = [pg_summary], {}
    small_pg, small_pg_summary = atlas_small(args, "postgres", small)
    memory["Atlas on PostgreSQL"] = [_memory_entry(pg_summary, big.rows), _memory_entry(small_pg_summary, small.rows)]
    if not args.skip_duckdb:
        duck_samples, duck_summary = bench_duckdb(args, big)
        samples.update(duck_samples)
        small_duck, small_duck_summary = atlas_small(args, "duckdb", small)
        summaries.append(duck_summary)
        memory["Atlas on DuckDB"] = [_memory_entry(duck_summary, big.rows), _memory_entry(small_duck_summary, small.rows)]
    pandas = None
    if not args.skip_pandas:
        log("[pandas] read_csv + to_sql (slow)…")
        pandas = run_pandas(big.path, args.pg_url, args.reps, args.pandas_max_seconds, not args.no_quiet_wait)
        samples["pandas_to_sql"] = pandas["samples"]
        memory["pandas read_csv + to_sql"] = [_memory_entry(pandas, big.rows)]

    contenders = {k: report.summarise(v, big.size_bytes) for k, v in samples.items()}
    if pandas:
        contenders["pandas_to_sql"]["capped_after_one"] = pandas["capped_after_one"]
    results: dict[str, Any] = {
        "benchmark": "ingest",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.ingest" + (" " + " ".join(argv or sys.argv[1:])).rstrip(),
        "machine": machine(args.pg_url),
        "versions": versions(summaries, pandas),
        "file": {**big.to_dict(), "path_relative": _relative(big.path)},
        "small_file": {**small.to_dict(), "path_relative": _relative(small.path)},
        "reps": args.reps,
        "warmup": args.warmup,
        "contenders": contenders,
        "small_file_atlas": {
            "atlas_postgres": report.summarise(small_pg, small.size_bytes),
            **({"atlas_duckdb": report.summarise(small_duck, small.size_bytes)} if not args.skip_duckdb else {}),
        },
        "memory": memory,
        "duckdb_memory_limit": pg_summary.get("duckdb_memory_limit"),
        "parser_memory_limit": pg_summary.get("parser_memory_limit"),
        "parser_threads": pg_summary.get("parser_threads"),
        "copy_streams": pg_summary.get("copy_streams"),
        "copy_pipe": pg_summary.get("copy_pipe"),
        "copy_segment_bytes": pg_summary.get("copy_segment_bytes"),
    }
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["ratios"] = report.ratios(contenders)
    results["rows_check"] = rows_check(contenders, big.rows)
    results["breakdown"] = profile(args, big, results["ratios"])
    results["notes"] = notes(args, results)
    if args.quick:  # beside the cached data (git-ignored), never over the committed figures
        json_path, md_path = report.write(results, data.DATA_DIR, name="ingest.quick")
    else:
        json_path, md_path = report.write(results)
    print(md_path.read_text())
    log(f"[bench] wrote {_relative(str(json_path))} and {_relative(str(md_path))}")


if __name__ == "__main__":
    main()
