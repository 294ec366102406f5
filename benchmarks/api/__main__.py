"""``python -m benchmarks.api``: the API under 20 concurrent clients, on PostgreSQL behind gunicorn.

1,000 datasets (each with columns, checks, results, some PII findings) and 100,000 runs,
seeded by :mod:`benchmarks.api.seed`. Atlas runs as in production (``DEBUG`` off,
gunicorn with the shipped configuration when there is one, one worker per CPU); a
closed loop of 20 client threads reads each endpoint for a fixed time. The floor is
the same page built by one hand-written SQL query (``json_agg``) over psycopg: what
the database alone costs for the rows the page shows.

Writes benchmarks/results/api.json and .md.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests

from benchmarks import write_results

ROOT = Path(__file__).resolve().parents[2]
PG_DB = os.environ.get("BENCH_API_DB", "atlas_bench_api")
REUSE = os.environ.get("BENCH_API_REUSE") == "1"  # keep a database seeded by an earlier run (profiling)


def _free_port() -> int:
    import socket

    with socket.socket() as s:  # the machine is shared: never a fixed port
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = int(os.environ.get("BENCH_API_PORT") or _free_port())
CLIENTS = 20
SECONDS = float(os.environ.get("BENCH_API_SECONDS", "15"))
DATASETS, RUNS = 1000, 100_000
METRICS_TOKEN = "bench-metrics-token-not-secret"


def env(tmp: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{PG_DB}",
        "ATLAS_VAR_DIR": tmp,
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-not-secret-" + "x" * 40,
        "ATLAS_AUDIT_KEY": "bench-audit-key-not-secret-" + "y" * 30,
        "PII_HASH_KEY": "bench-pii-key-not-secret-" + "z" * 30,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "ATLAS_API_THROTTLE_USER": "100000000/day",
        "ATLAS_METRICS_TOKEN": METRICS_TOKEN,
        "LOG_LEVEL": "WARNING",
        # As the image runs: a cache shared by every worker (throttles, the API page cache, /metrics).
        "CACHE_URL": os.environ.get("BENCH_API_CACHE_URL", f"redis://127.0.0.1:6379/1?key_prefix={PG_DB}-{os.getpid()}"),
    }


TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(master: int) -> float:
    """CPU seconds (user + system) used so far by gunicorn's master and every worker, those it already
    replaced included: the server's own cost, which the load of other work on the machine does not
    distort (wall times it does). Redis and PostgreSQL are not in it."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        if pid == master:  # its own time, and that of the workers it reaped (restarted after max_requests)
            total += sum(int(v) for v in fields[11:15]) / TICKS
        elif ppid == master:
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def workers(master: int) -> set[int]:
    """The pids of gunicorn's workers now (a new pid after a load: a worker replaced after max_requests)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        found.add(int(entry))
            except OSError:
                continue
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def load(url: str, headers: dict[str, str], master: int) -> dict:
    """``CLIENTS`` keep-alive connections, each a closed loop (the next request once the last answered),
    for ``SECONDS``: wrk, a C load generator that costs a few per cent of one CPU, where a Python one
    took a CPU of the two the server needs. Its CPU time and the load average are part of the result."""
    if not shutil.which("wrk"):
        raise SystemExit("benchmarks.api needs wrk (a C HTTP load generator): apt-get install wrk")
    cmd = ["wrk", "--threads", "2", "--connections", str(CLIENTS), "--duration", f"{SECONDS:g}s", "--timeout", "30s",
           "--script", str(Path(__file__).with_name("report.lua"))]
    for name, value in headers.items():
        cmd += ["--header", f"{name}: {value}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before, pids_before = server_cpu_seconds(master), workers(master)
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout
    server_after, pids_after = server_cpu_seconds(master), workers(master)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = json.loads(out.strip().splitlines()[-1])
    wall = r["duration_us"] / 1e6
    return {
        "requests": r["requests"], "errors": r["socket_errors"] + r["non_2xx"], "rps": r["requests"] / wall,
        "p50_ms": r["p50_us"] / 1000, "p95_ms": r["p95_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "load_generator_cpu_share": ((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)) / wall,
        "server_cpu_ms_per_request": 1000 * (server_after - server_before) / max(1, r["requests"]),
        "server_cpu_share": (server_after - server_before) / wall,
        "workers_replaced": len(pids_after - pids_before),
        "load_average_1min_after": os.getloadavg()[0],
    }


def single(url: str, headers: dict[str, str], master: int, n: int = 30) -> tuple[float, float]:
    """One client, one request at a time: the median wall time, and the server's CPU per request (ms)."""
    session = requests.Session()
    times = []
    cpu_before = server_cpu_seconds(master)
    for _ in range(n):
        t0 = time.perf_counter()
        session.get(url, headers=headers, timeout=60).raise_for_status()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), 1000 * (server_cpu_seconds(master) - cpu_before) / n


FLOOR_SQL = {
    "/api/v1/datasets/": """
        SELECT json_agg(d) FROM (
          SELECT ds.id, ds.name, ds.layer, ds."table", ds.row_count, ds.last_loaded_at,
                 (SELECT json_agg(json_build_object('name', c.name, 'type', c.data_type) ORDER BY c.position)
                    FROM pipelines_datasetcolumn c WHERE c.dataset_id = ds.id) AS columns,
                 (SELECT json_agg(r.outcome) FROM quality_checkresult r
                    JOIN quality_checkrun cr ON cr.id = r.check_run_id WHERE cr.dataset_id = ds.id) AS checks,
                 (SELECT count(*) FROM compliance_piifinding f WHERE f.dataset_id = ds.id) AS pii
          FROM pipelines_dataset ds ORDER BY ds.name LIMIT 50) d""",
    "/api/v1/runs/": """
        SELECT json_agg(r) FROM (SELECT * FROM pipelines_pipelinerun ORDER BY created_at DESC, id DESC LIMIT 50) r""",
}


def floor(sql: str, n: int = 30) -> float:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{PG_DB}") as conn:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            conn.execute(sql).fetchone()
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    load_before = os.getloadavg()[0]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DB]).fetchone()
        reuse = REUSE and exists
        if not reuse:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {PG_DB}")
    with tempfile.TemporaryDirectory(prefix="atlas-bench-api-") as tmp:
        e = env(tmp)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=e, check=True)
        t0 = time.monotonic()
        seed = [sys.executable, "-m", "benchmarks.api.seed"] + (["--token-only"] if reuse else [str(DATASETS), str(RUNS)])
        token = subprocess.run(seed, cwd=ROOT, env=e, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        seeded = time.monotonic() - t0
        workers = os.cpu_count() or 2
        config = ROOT / "gunicorn.conf.py"  # the image's own configuration (gthread workers)
        cmd = [sys.executable, "-m", "gunicorn", "atlas.wsgi", "--bind", f"127.0.0.1:{PORT}", "--workers", str(workers)]
        if config.exists():
            cmd[3:3] = ["--config", str(config)]
        server = subprocess.Popen(cmd, cwd=ROOT, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  start_new_session=True)
        try:
            base = f"http://127.0.0.1:{PORT}"
            for _ in range(300):
                if server.poll() is not None:
                    raise SystemExit(f"gunicorn stopped: {server.stderr.read().decode()[-2000:]}")
                try:
                    if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.2)
            auth = {"Authorization": f"Token {token}"}
            endpoints = {
                "/api/v1/datasets/": auth,
                "/api/v1/runs/": auth,
                "/metrics": {"Authorization": f"Bearer {METRICS_TOKEN}"},
            }
            results = {}
            for path, headers in endpoints.items():
                for _ in range(20):  # warm every worker (each connection new: the kernel spreads them) and caches
                    requests.get(base + path, headers=headers, timeout=60).raise_for_status()
                one, one_cpu = single(base + path, headers, server.pid, n=200)
                results[path] = {"single_client_p50_ms": one, "single_client_server_cpu_ms": one_cpu,
                                 **load(base + path, headers, server.pid)}
                if path in FLOOR_SQL:
                    results[path]["floor_ms"] = floor(FLOOR_SQL[path])
                    results[path]["single_vs_floor"] = one / results[path]["floor_ms"]
                print(path, json.dumps(results[path]), flush=True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    report = {
        "datasets": DATASETS, "runs": RUNS, "clients": CLIENTS, "seconds_per_endpoint": SECONDS,
        "gunicorn_workers": workers, "cpus": os.cpu_count(), "seed_seconds": seeded,
        "load_average_before": load_before, "load_average_after": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M"), "endpoints": results,
    }
    lines = [
        f"# API under load: {CLIENTS} concurrent clients, {DATASETS:,} datasets, {RUNS:,} runs (PostgreSQL, gunicorn)",
        "",
        f"`python -m benchmarks.api` — {workers} gunicorn workers (the image's `gunicorn.conf.py`) on"
        f" {os.cpu_count()} CPUs, each endpoint read for {SECONDS:.0f} s by {CLIENTS} keep-alive connections of"
        " `wrk` (each a closed loop) on the same machine; default page size (50). The floor is the same page as"
        " one hand-written SQL query (`json_agg`) over psycopg. \"load gen CPU\": the share of one CPU wrk used.",
        "",
        "| endpoint | one client p50 | server CPU / request (one client) | floor | one client / floor"
        " | req/s (20 clients) | p50 | p95 | p99 | max | server CPU / request (20 clients) | errors | load gen CPU"
        " | load avg after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for path, r in results.items():
        fl = f"{r['floor_ms']:.1f} ms" if "floor_ms" in r else "—"
        ratio = f"{r['single_vs_floor']:.1f}×" if "single_vs_floor" in r else "—"
        lines.append(
            f"| `{path}` | {r['single_client_p50_ms']:.1f} ms | {r['single_client_server_cpu_ms']:.2f} ms | {fl} | {ratio}"
            f" | {r['rps']:.0f} | {r['p50_ms']:.1f} ms | {r['p95_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['max_ms']:.0f} ms"
            f" | {r['server_cpu_ms_per_request']:.2f} ms | {r['errors']}"
            f" | {100 * r['load_generator_cpu_share']:.0f} % | {r['load_average_1min_after']:.1f} |"
        )
    replaced = sum(r.get("workers_replaced", 0) for r in results.values())
    lines += ["", f"Load average (1 min) before the run: {load_before:.1f}, after: {report['load_average_after']:.1f}"
              " (2 CPUs shared with other work: figures are only as good as the machine was quiet).",
              "", "\"server CPU / request\": user + system CPU of gunicorn's master and workers (those replaced"
              " included) divided by the requests answered; Redis and PostgreSQL not included. Gunicorn replaced"
              f" {replaced} worker(s) during the loads (`GUNICORN_MAX_REQUESTS`), each a start-up's CPU and a pause."]
    write_results("api", report, lines)


if __name__ == "__main__":
    main()
