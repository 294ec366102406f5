"""``python -m benchmarks.beat``: 200 pipelines due in the same minute on two workers.

PostgreSQL (metadata and warehouse), Redis, beat with django-celery-beat's scheduler
and two workers started with docker-compose.yml's worker command: the delay from the due minute to each run queued (beat's
trigger taken by a worker) and started, against the target of every run started
within 10 s; and beat's own CPU, idle (per tick) and while dispatching. Writes
benchmarks/results/beat.json and .md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import redis

from benchmarks import ROOT, fresh_postgres, run_child, write_results

PG_DB = "atlas_bench_beat"
# As docker-compose.yml's x-atlas environment runs Atlas: DEBUG off, its three secrets set (values for this
# benchmark only, never a deployment's), and CACHE_URL on the broker's Redis (another database, as compose).
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "benchmark-only-secret-key-" + "b" * 40,
    "ATLAS_AUDIT_KEY": "benchmark-only-audit-key-" + "a" * 40,
    "PII_HASH_KEY": "benchmark-only-pii-hash-key-" + "p" * 40,
}


SETTINGS_NOTE = ("as docker-compose.yml's x-atlas environment: DEBUG=false, SECRET_KEY, ATLAS_AUDIT_KEY and"
                 " PII_HASH_KEY set (benchmark-only values), CACHE_URL on the benchmark's Redis (the database after"
                 " the broker's; every metadata write bumps the API page cache's generation there)")


def cache_url(broker_url: str) -> str:
    """The broker's Redis, the database after the broker's (compose: broker /0, cache /1)."""
    base, _, db = broker_url.rpartition("/")
    return f"{base}/{int(db or 0) + 1}"


@contextmanager
def broker():
    """``BENCH_BROKER_URL`` (flushed, and the cache's database after it) when set; otherwise a redis-server of this benchmark's own on a free port."""
    if url := os.environ.get("BENCH_BROKER_URL"):
        for db in (url, cache_url(url)):
            redis.Redis.from_url(db).flushdb()
        yield url
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


def main() -> None:
    database = fresh_postgres(PG_DB)
    with tempfile.TemporaryDirectory(prefix="atlas-bench-beat-") as tmp, broker() as url:
        env = {"ATLAS_VAR_DIR": tmp, **PRODUCTION, "DATABASE_URL": database, "WAREHOUSE_URL": "",
               "CELERY_BROKER_URL": url, "CACHE_URL": cache_url(url), "PII_SCAN_AFTER_INGEST": "false",
               "ATLAS_DATA_ROOTS": tmp}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env={**os.environ, **env},
                       check=True)
        r = run_child("benchmarks.beat.bench", env)
    r["settings"] = SETTINGS_NOTE
    if repeats := os.environ.get("BENCH_REPEATS"):  # earlier runs' results (beat.json files), this run last
        r["repeats"] = [summary(json.loads(Path(f).read_text())) for f in repeats.split(",")] + [summary(r)]
    if before := os.environ.get("BENCH_BEFORE_JSON"):  # the same benchmark run on the code before a change
        r["before"] = {k: v for k, v in json.loads(Path(before).read_text()).items() if k != "before"}
        r["before"]["code"] = os.environ.get("BENCH_BEFORE_LABEL", before)
    write_results("beat", r, render(r))


def render(r: dict) -> list[str]:
    """The results' tables (``python -m benchmarks.beat`` writes them; they can be drawn again from beat.json)."""
    q, s, idle = r["queued_after_due"], r["started_after_due"], r["beat_idle"]
    lines = [
        "# Beat: 200 pipelines due in the same minute",
        "",
        f"`python -m benchmarks.beat` — {r['pipelines']} pipelines of one small aggregate step, one crontab minute,",
        f"beat (`pipelines.beat`: django-celery-beat's DatabaseScheduler, the due pipelines triggered in one batch)"
        f" and {r['workers']} workers started with docker-compose.yml's"
        f" command (`{r['worker_command']}`) on Redis and PostgreSQL; load average during the run"
        f" {r['load_average'][0]:.1f} on 2 CPUs."
        + (f" Settings {r['settings']}." if "settings" in r else ""),
        "",
        "| seconds after the due minute | median | p95 | max | within 10 s |",
        "| --- | --- | --- | --- | --- |",
        f"| run queued (created by beat's trigger) | {q['median']:.1f} | {q['p95']:.1f} | {q['max']:.1f}"
        f" | {q['within_10s']} of {r['runs']} |",
        f"| run started (running on a worker) | {s['median']:.1f} | {s['p95']:.1f} | {s['max']:.1f}"
        f" | {s['within_10s']} of {r['runs']} |",
    ]
    if "finished_after_due" in r:
        f = r["finished_after_due"]
        lines.append(f"| run ended | {f['median']:.1f} | {f['p95']:.1f} | {f['max']:.1f} | {f['within_10s']} of {r['runs']} |")
    lines += [
        "",
        f"Beat's own CPU: {idle['cpu']:.2f} s over {idle['seconds']:.0f} s idle ({idle['ticks']} ticks,"
        f" {idle['cpu_per_tick'] * 1000:.0f} ms per tick); {r['beat_dispatch_cpu']:.2f} s while it triggered the"
        f" {r['pipelines']} due entries (their runs created, their tasks sent). {r['succeeded']} of {r['runs']} runs succeeded; at most"
        f" {r['database_connections_peak']} connections to the database at once (every process).",
    ]
    if "solo" in r:
        lines += ["", *cost_table(r)]
    if "repeats" in r:
        lines += ["", *repeats_table(r["repeats"])]
    return lines


def summary(r: dict) -> dict:
    """One run's figures for :func:`repeats_table` (``BENCH_REPEATS``: the results of the runs it repeats)."""
    s = r["started_after_due"]
    return {"within_10s": s["within_10s"], "runs": r["runs"], "median": s["median"], "max": s["max"],
            "runs_per_second": r["runs_per_second"], "workers_cpu_per_run": r["workers_cpu_per_run"],
            "machine_cpu_per_run": r["machine_cpu_per_run"], "queries": r["solo"]["metadata_queries_median"],
            "load_average": r["load_average"][0]}


def repeats_table(repeats: list[dict]) -> list[str]:
    """The same benchmark run several times on the same tree, one after the other: each run's figures."""
    out = ["The same tree, run one after the other (the tables above are the last run's):", "",
           "| run | started within 10 s | start delay median / max, s | runs/s | workers' CPU s per run"
           " | machine's busy CPU s per run | metadata queries (one-step run alone) | load average (1 min, end) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, x in enumerate(repeats, 1):
        out.append(f"| {i} | {x['within_10s']} of {x['runs']} | {x['median']:.1f} / {x['max']:.1f} | {x['runs_per_second']:.1f}"
                   f" | {x['workers_cpu_per_run']:.3f} | {x['machine_cpu_per_run']:.3f} | {x['queries']:.0f}"
                   f" | {x['load_average']:.1f} |")
    return out


def cost_table(r: dict) -> list[str]:
    """A run's fixed cost, and the burst's throughput; before and after when the results hold both."""
    runs = [("before", r["before"]), ("after", r)] if "solo" in r.get("before", {}) else [("now", r)]
    head = "| | " + " | ".join(name for name, _ in runs) + (" | after ÷ before |" if len(runs) == 2 else " |")
    rows = [
        ("one-step run, alone: wall s (median)", lambda x: x["solo"]["wall_median"], "{:.3f}"),
        ("one-step run, alone: CPU s of its process (median)", lambda x: x["solo"]["cpu_median"], "{:.3f}"),
        ("one-step run, alone: busy CPU s of the machine per run (database included)",
         lambda x: x["solo"]["machine_cpu_per_run"], "{:.3f}"),
        ("one-step run, alone: metadata queries", lambda x: x["solo"]["metadata_queries_median"], "{:.0f}"),
        ("burst: runs ended per second (first start to last end)", lambda x: x["runs_per_second"], "{:.1f}"),
        ("burst: workers' CPU s per run", lambda x: x["workers_cpu_per_run"], "{:.3f}"),
        ("burst: machine's busy CPU s per run (database, beat, load)", lambda x: x["machine_cpu_per_run"], "{:.3f}"),
        ("burst: run started, s after due (median / max)",
         lambda x: (x["started_after_due"]["median"], x["started_after_due"]["max"]), "{:.1f} / {:.1f}"),
        ("burst: started within 10 s", lambda x: x["started_after_due"]["within_10s"], "{} of 200"),
        ("load average (1 min, at the end)", lambda x: x["load_average"][0], "{:.1f}"),
    ]
    out = [
        "A one-step run's fixed cost (`BENCH_SOLO_RUNS` runs of their own one-step pipelines, one after"
        " the other in the benchmark's process before the burst) and the burst's throughput"
        + (f"; before: {r['before'].get('code', 'the code before')}, after: this tree, one after the other" if len(runs) == 2 else "")
        + ".",
        "",
        head,
        "| --- " * (len(runs) + 1 + (len(runs) == 2)) + "|",
    ]
    for label, get, fmt in rows:
        values = [get(x) for _, x in runs]
        cells = [fmt.format(*v) if isinstance(v, tuple) else fmt.format(v) for v in values]
        ratio = ""
        if len(runs) == 2:
            a, b = values[0], values[1]
            ratio = f" {b / a:.2f} |" if not isinstance(a, tuple) and a else " |"
        out.append(f"| {label} | " + " | ".join(cells) + (" |" + ratio if len(runs) == 2 else " |"))
    return out


if __name__ == "__main__":
    main()
