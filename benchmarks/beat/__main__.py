"""``python -m benchmarks.beat``: 200 pipelines due in the same minute on two workers.

PostgreSQL (metadata and warehouse), Redis, beat with django-celery-beat's scheduler
and two workers started with docker-compose.yml's worker command: the delay from the due minute to each run queued (beat's
trigger taken by a worker) and started, against the target of every run started
within 10 s; and beat's own CPU, idle (per tick) and while dispatching. Writes
benchmarks/results/beat.json and .md.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import redis

from benchmarks import ROOT, fresh_postgres, run_child, write_results

PG_DB = "atlas_bench_beat"


@contextmanager
def broker():
    """``BENCH_BROKER_URL`` (flushed) when set; otherwise a redis-server of this benchmark's own on a free port."""
    if url := os.environ.get("BENCH_BROKER_URL"):
        redis.Redis.from_url(url).flushdb()
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
        env = {"ATLAS_VAR_DIR": tmp, "DEBUG": "true", "DATABASE_URL": database, "WAREHOUSE_URL": "",
               "CELERY_BROKER_URL": url, "PII_SCAN_AFTER_INGEST": "false", "ATLAS_DATA_ROOTS": tmp}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env={**os.environ, **env},
                       check=True)
        r = run_child("benchmarks.beat.bench", env)
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
        f" {r['load_average'][0]:.1f} on 2 CPUs.",
        "",
        "| seconds after the due minute | median | p95 | max | within 10 s |",
        "| --- | --- | --- | --- | --- |",
        f"| run queued (created by beat's trigger) | {q['median']:.1f} | {q['p95']:.1f} | {q['max']:.1f}"
        f" | {q['within_10s']} of {r['runs']} |",
        f"| run started (running on a worker) | {s['median']:.1f} | {s['p95']:.1f} | {s['max']:.1f}"
        f" | {s['within_10s']} of {r['runs']} |",
        "",
        f"Beat's own CPU: {idle['cpu']:.2f} s over {idle['seconds']:.0f} s idle ({idle['ticks']} ticks,"
        f" {idle['cpu_per_tick'] * 1000:.0f} ms per tick); {r['beat_dispatch_cpu']:.2f} s while it triggered the"
        f" {r['pipelines']} due entries (their runs created, their tasks sent). {r['succeeded']} of {r['runs']} runs succeeded; at most"
        f" {r['database_connections_peak']} connections to the database at once (every process).",
    ]
    return lines


if __name__ == "__main__":
    main()
