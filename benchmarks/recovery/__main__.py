"""``python -m benchmarks.recovery``: time from a killed worker to its run resumed, with a real worker, beat and Redis.

On PostgreSQL (metadata and warehouse), Redis as broker, two solo workers and beat
(the reaper at the heartbeat cadence): a two-step pipeline's ingest pauses after
staging, the worker executing it is sent SIGKILL, and the clock runs until the lost
attempt is recorded, the run is resumed by the other worker, and it has finished.
Two configurations: a short heartbeat (1 s) and the default (10 s). Writes
benchmarks/results/recovery.json and .md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import redis

from benchmarks import ROOT, fresh_postgres, run_child, write_results

PG_DB = "atlas_bench_recovery"
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/2")
CONFIGS = [("1", "3"), ("10", "3")]  # heartbeat seconds, samples


def main() -> None:
    results = []
    for heartbeat, samples in CONFIGS:
        database = fresh_postgres(PG_DB)
        redis.Redis.from_url(BROKER).flushdb()
        with tempfile.TemporaryDirectory(prefix="atlas-bench-recovery-") as tmp:
            env = {
                "ATLAS_VAR_DIR": tmp,
                "DEBUG": "true",
                "DATABASE_URL": database,
                "WAREHOUSE_URL": "",
                "CELERY_BROKER_URL": BROKER,
                "ATLAS_RUN_HEARTBEAT_SECONDS": heartbeat,
                "BENCH_SAMPLES": samples,
            }
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env={**os.environ, **env},
                           check=True)
            results.append(run_child("benchmarks.recovery.bench", env))
    lines = [
        "# Recovery: from a killed worker to its run resumed",
        "",
        "`python -m benchmarks.recovery` — PostgreSQL, Redis, two solo workers and beat; the worker executing",
        "the run is sent SIGKILL after its ingest staged; seconds from the kill (median, max of the samples).",
        "",
        "| heartbeat | lost after | samples | lost attempt recorded | run resumed (attempt 2 claimed) | run finished |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        m, x = r["medians"], r["max"]
        lines.append(
            f"| {r['heartbeat_seconds']:g} s | {r['lost_seconds']:g} s | {len(r['samples'])}"
            f" | {m['lost_recorded']:.1f} s (max {x['lost_recorded']:.1f}) | {m['resumed']:.1f} s (max {x['resumed']:.1f})"
            f" | {m['finished']:.1f} s (max {x['finished']:.1f}) |"
        )
    lines += [
        "",
        "- *lost after* is `ATLAS_RUN_LOST_SECONDS` (two heartbeats by default); beat runs the reaper every",
        "  heartbeat, so a kill is noticed between *lost after* and *lost after* + one heartbeat after the",
        "  last beat the dead worker wrote (which itself is up to one heartbeat before the kill).",
        "- *run resumed*: the reaper queued the run again and sent it; the other worker claimed attempt 2,",
        "  which resumes at the interrupted step (the ingest is staged again; the published steps are not redone).",
        "- *run finished*: the two steps done by attempt 2 (2,000 rows), including the worker's task pickup.",
        "- The killed worker is restarted at once in every sample, but the resume does not wait for it.",
    ]
    write_results("recovery", results, lines)


if __name__ == "__main__":
    main()
