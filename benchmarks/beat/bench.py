"""The beat benchmark's measurement, in a process of its own (Django settings are per process).

200 pipelines of one small step, all due at the same minute (crontab, beat's
DatabaseScheduler), two solo workers and beat on Redis and PostgreSQL. Prints one JSON
line: per run, the seconds from the due minute to (1) the run created by the scheduled
trigger (accepted, queued) and (2) the run started by a worker; beat's CPU seconds
while idle (per tick) and while it dispatched the 200 entries.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import django

ROOT = Path(__file__).resolve().parents[2]
TICKS = re.compile(rb"beat: Waking up")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far, every process (``/proc/stat``: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def solo_runs(n: int, source_table: str) -> dict:
    """``n`` one-step runs, one after the other in this process (each its pipeline's first run, as in the burst).

    Per run: wall seconds, this process's CPU seconds (user + system), and the metadata queries
    (Django's database); the machine's busy CPU over all of them, per run (the database server's
    share included, and whatever else the machine ran meanwhile: see the load).
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from pipelines import runner
    from pipelines.models import Dataset, Pipeline, Step

    runs = []
    for i in range(n):
        out = Dataset.objects.create(name=f"solo_{i}", layer="navigate", table=f"solo_{i}")
        pipeline = Pipeline.objects.create(name=f"solo_{i}")
        Step.objects.create(pipeline=pipeline, name="one", kind="aggregate", output=out,
                            sql=f"SELECT {i} AS pipeline, count(*) AS n FROM {source_table}")
        runs.append(runner.start_run(pipeline, dispatch=False))
    walls, cpus, queries = [], [], []
    counters = database_counters()
    machine_from, load_from = machine_cpu_seconds(), os.getloadavg()[0]
    for run in runs:
        t0, c0 = time.perf_counter(), time.process_time()
        with CaptureQueriesContext(connection) as captured:
            runner.execute_run(run.pk)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        queries.append(len(captured.captured_queries))
        run.refresh_from_db()
        if run.status != "succeeded":
            raise SystemExit(f"a one-step run failed: {run.error}")
    machine = (machine_cpu_seconds() - machine_from) / n
    return {
        "runs": n,
        **counters_since(counters, n),
        "wall_median": statistics.median(walls),
        "cpu_median": statistics.median(cpus),
        "machine_cpu_per_run": machine,
        "metadata_queries_median": statistics.median(queries),
        "load_average": [load_from, os.getloadavg()[0]],
    }


def ticks(log: Path) -> int:
    return len(TICKS.findall(log.read_bytes())) if log.exists() else 0


def worker_command() -> list[str]:
    """The worker service's command in docker-compose.yml, its ``${VAR:-default}`` from the environment or the default."""
    import yaml

    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]["command"]
    return [re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m[1], m[2]), arg) for arg in command]


def database_connections() -> int:
    """Connections to this database now, every process's (pg_stat_activity)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cur.fetchone()[0]


def database_counters() -> dict[str, int]:
    """This database's sessions opened and transactions committed so far, every process's (pg_stat_database).

    PostgreSQL forks a backend per session: sessions per run count the connections a run opens.
    The figures are flushed by each backend about once a second, so they are read after a pause.
    """
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT sessions, xact_commit FROM pg_stat_database WHERE datname = current_database()")
        sessions, commits = cur.fetchone()
    return {"sessions": sessions, "commits": commits}


def counters_since(before: dict[str, int], runs: int) -> dict[str, float]:
    time.sleep(2)  # the backends' figures flushed (at most once a second each, and as they end)
    now = database_counters()
    return {f"{k}_per_run": (now[k] - before[k]) / runs for k in before}


def profile_workers(pids: list[int]) -> list[subprocess.Popen]:
    """``BENCH_PROFILE_DIR``: py-spy samples each worker (every thread) while the burst runs; nothing otherwise."""
    if not (out := os.environ.get("BENCH_PROFILE_DIR")):
        return []
    Path(out).mkdir(parents=True, exist_ok=True)
    spy = os.environ.get("BENCH_PY_SPY", "py-spy")
    return [subprocess.Popen([spy, "record", "-p", str(pid), "-r", "100", "-f", "raw", "-o",
                              str(Path(out) / f"worker-{n}.txt"), "--nonblocking"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for n, pid in enumerate(pids)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    django.setup()
    from django.conf import settings
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    from pipelines import runner
    from pipelines.models import Dataset, Pipeline, PipelineRun, Source, Step

    count = int(os.environ.get("BENCH_PIPELINES", "200"))
    workers = int(os.environ.get("BENCH_WORKERS", "2"))
    tz = ZoneInfo(settings.TIME_ZONE)
    work = Path(tempfile.mkdtemp(prefix="atlas-bench-beat-", dir=os.environ.get("ATLAS_DATA_ROOTS")))
    # What every pipeline reads: chart.beat_source, from a producer pipeline run once here.
    (work / "source.csv").write_text("n\n1\n2\n3\n")
    source = Source.objects.create(name="beat_source", location=str(work / "source.csv"))
    raw = Dataset.objects.create(name="beat_raw", layer="explore", table="beat_raw")
    chart = Dataset.objects.create(name="beat_source", layer="chart", table="beat_source")
    producer = Pipeline.objects.create(name="beat_producer")
    Step.objects.create(pipeline=producer, name="ingest", kind="ingest", source=source, output=raw)
    Step.objects.create(pipeline=producer, name="refine", kind="refine", output=chart, position=1,
                        sql="SELECT CAST(n AS integer) AS n FROM explore.beat_raw")
    first = runner.start_run(producer, dispatch=False)
    runner.execute_run(first.pk)
    first.refresh_from_db()
    if first.status != "succeeded":
        raise SystemExit(f"the producer pipeline failed: {first.error}")
    solo = solo_runs(int(os.environ.get("BENCH_SOLO_RUNS", "20")), "chart.beat_source")
    pipelines = []
    for i in range(count):
        out = Dataset.objects.create(name=f"beat_{i}", layer="navigate", table=f"beat_{i}")
        pipeline = Pipeline(name=f"beat_{i}", schedule="0 0 1 1 *")  # its beat entry, as the admin makes it
        pipeline.save()
        Step.objects.create(pipeline=pipeline, name="one", kind="aggregate", output=out,
                            sql=f"SELECT {i} AS pipeline, count(*) AS n FROM chart.beat_source")
        pipelines.append(pipeline)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(work / "celery.log", "ab")  # noqa: SIM115
    beat_log = work / "beat.log"
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "atlas", "beat", "--loglevel=DEBUG",
         "--schedule", str(work / "beat-schedule"), "--logfile", str(beat_log)],
        cwd=ROOT, env=env, stdout=log, stderr=log,
    )
    command = worker_command()
    procs = [
        subprocess.Popen([sys.executable, "-m", *command, "-n", f"w{n}@%h"], cwd=ROOT, env=env, stdout=log, stderr=log)
        for n in range(workers)
    ]
    try:
        # Beat ticking and every worker ready before the schedules are set (a loaded machine starts them slowly).
        start_by = time.monotonic() + 600
        while ticks(beat_log) < 1 or (work / "celery.log").read_bytes().count(b" ready.") < workers:
            if time.monotonic() > start_by:
                raise SystemExit("beat or the workers did not start")
            time.sleep(0.5)
        # Due at the first minute boundary at least 40 s away; beat sees the changed entries on its next tick.
        due = (datetime.now(tz) + timedelta(seconds=100)).replace(second=0, microsecond=0)
        # All 200 entries moved to that minute at once (one by one would take longer than the margin here).
        cron = CrontabSchedule.objects.create(minute=str(due.minute), hour=str(due.hour), timezone=settings.TIME_ZONE)
        Pipeline.objects.filter(pk__in=[p.pk for p in pipelines]).update(schedule=f"{due.minute} {due.hour} * * *")
        PeriodicTask.objects.filter(pk__in=Pipeline.objects.filter(pk__in=[p.pk for p in pipelines])
                                    .values("periodic_task")).update(crontab=cron)
        PeriodicTasks.update_changed()
        time.sleep(max(0.0, due.timestamp() - time.time() - 35))
        idle_from, idle_ticks = cpu_seconds(beat.pid), ticks(beat_log)
        idle_t0 = time.monotonic()
        time.sleep(max(0.0, due.timestamp() - time.time() - 2))
        idle = {"seconds": time.monotonic() - idle_t0, "cpu": cpu_seconds(beat.pid) - idle_from,
                "ticks": ticks(beat_log) - idle_ticks}
        busy_from = cpu_seconds(beat.pid)
        workers_from = sum(cpu_seconds(p.pid) for p in procs)
        machine_from = machine_cpu_seconds()
        counters = database_counters()
        spies = profile_workers([p.pid for p in procs])
        deadline = due.timestamp() + 900
        connections_peak = 0
        burst = PipelineRun.objects.exclude(pipeline__name__startswith="solo_").exclude(pk=first.pk)
        while burst.filter(started_at__isnull=False).count() < count:
            connections_peak = max(connections_peak, database_connections())
            if time.time() > deadline:
                raise SystemExit(f"only {burst.filter(started_at__isnull=False).count()} runs started")
            time.sleep(0.2)
        dispatch_cpu = cpu_seconds(beat.pid) - busy_from
        while burst.filter(finished_at__isnull=False).count() < count:  # every run ended: the burst's cost
            if time.time() > deadline:
                raise SystemExit(f"only {burst.filter(finished_at__isnull=False).count()} runs ended")
            time.sleep(0.2)
        workers_cpu = sum(cpu_seconds(p.pid) for p in procs) - workers_from
        machine_cpu = machine_cpu_seconds() - machine_from
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
    finally:
        for p in [beat, *procs]:
            p.terminate()
        for p in [beat, *procs]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    database = counters_since(counters, count)  # (the workers' backends flushed their figures as they ended)
    runs = list(burst.values("created_at", "started_at", "finished_at", "status"))
    d = due.timestamp()
    queued = [r["created_at"].timestamp() - d for r in runs]
    started = [r["started_at"].timestamp() - d for r in runs]
    finished = [r["finished_at"].timestamp() - d for r in runs]
    span = max(finished) - min(started)

    def stats(xs: list[float]) -> dict[str, float]:
        return {"median": statistics.median(xs), "p95": percentile(xs, 0.95), "max": max(xs),
                "within_10s": sum(x <= 10 for x in xs)}

    print(json.dumps({
        "pipelines": count,
        "workers": workers,
        "worker_command": " ".join(command),
        "runs": len(runs),
        "a_failure": burst.exclude(error="").values_list("error", flat=True).first(),
        "succeeded": sum(r["status"] == "succeeded" for r in runs),
        "queued_after_due": stats(queued),
        "started_after_due": stats(started),
        "finished_after_due": stats(finished),
        "run_seconds_median": statistics.median(f - s for s, f in zip(started, finished, strict=True)),
        "runs_per_second": len(runs) / span,
        "workers_cpu_per_run": workers_cpu / len(runs),
        "machine_cpu_per_run": machine_cpu / len(runs),
        "database": database,
        "solo": solo,
        "beat_idle": {**idle, "cpu_per_tick": idle["cpu"] / max(idle["ticks"], 1)},
        "beat_dispatch_cpu": dispatch_cpu,
        "database_connections_peak": connections_peak,
        "load_average": os.getloadavg(),
    }))


if __name__ == "__main__":
    main()
