"""``python -m benchmarks.beat``: 200 pipelines due in the same minute on two workers.

PostgreSQL (metadata and warehouse), Redis, beat with django-celery-beat's scheduler
and two solo workers: the delay from the due minute to each run queued (beat's
trigger taken by a worker) and started, against the target of every run started
within 10 s; and beat's own CPU, idle (per tick) and while dispatching. Writes
benchmarks/results/beat.json and .md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import redis

from benchmarks import ROOT, fresh_postgres, run_child, write_results

PG_DB = "atlas_bench_beat"
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/3")


def main() -> None:
    database = fresh_postgres(PG_DB)
    redis.Redis.from_url(BROKER).flushdb()
    with tempfile.TemporaryDirectory(prefix="atlas-bench-beat-") as tmp:
        env = {"ATLAS_VAR_DIR": tmp, "DEBUG": "true", "DATABASE_URL": database, "WAREHOUSE_URL": "",
               "CELERY_BROKER_URL": BROKER, "PII_SCAN_AFTER_INGEST": "false"}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env={**os.environ, **env},
                       check=True)
        r = run_child("benchmarks.beat.bench", env)
    q, s, idle = r["queued_after_due"], r["started_after_due"], r["beat_idle"]
    lines = [
        "# Beat: 200 pipelines due in the same minute",
        "",
        f"`python -m benchmarks.beat` — {r['pipelines']} pipelines of one small aggregate step, one crontab minute,",
        f"beat (django-celery-beat's DatabaseScheduler) and {r['workers']} solo workers on Redis and PostgreSQL;"
        f" load average during the run {r['load_average'][0]:.1f} on 2 CPUs.",
        "",
        "| seconds after the due minute | median | p95 | max | within 10 s |",
        "| --- | --- | --- | --- | --- |",
        f"| run queued (beat's trigger taken) | {q['median']:.1f} | {q['p95']:.1f} | {q['max']:.1f}"
        f" | {q['within_10s']} of {r['runs']} |",
        f"| run started by a worker | {s['median']:.1f} | {s['p95']:.1f} | {s['max']:.1f}"
        f" | {s['within_10s']} of {r['runs']} |",
        "",
        f"Beat's own CPU: {idle['cpu']:.2f} s over {idle['seconds']:.0f} s idle ({idle['ticks']} ticks,"
        f" {idle['cpu_per_tick'] * 1000:.0f} ms per tick); {r['beat_dispatch_cpu']:.2f} s while it sent the"
        f" {r['pipelines']} due entries. {r['succeeded']} of {r['runs']} runs succeeded.",
    ]
    write_results("beat", r, lines)


if __name__ == "__main__":
    main()
