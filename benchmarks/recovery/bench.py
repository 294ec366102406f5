"""One configuration of the recovery benchmark, in a process of its own (Django settings are per process).

Prints one JSON line: for each sample, the seconds from the SIGKILL of the worker executing
the run to (1) the lost attempt recorded, (2) the run resumed (attempt 2 claimed by the
other worker), (3) the run finished.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    django.setup()
    from django.conf import settings

    from pipelines import runner
    from pipelines.models import Dataset, Pipeline, RunAttempt, Source, Step, Trigger

    samples = int(os.environ.get("BENCH_SAMPLES", "3"))
    work = Path(tempfile.mkdtemp(prefix="atlas-bench-recovery-"))
    marks = work / "marks"
    marks.mkdir()
    data = work / "people.csv"
    data.write_text("id,name,amount\n" + "".join(f"{i},p{i},{i % 50}\n" for i in range(1, 2001)))
    src = Source.objects.create(name="bench_people", location=str(data))
    raw = Dataset.objects.create(name="bench_raw_people", layer="explore", table="bench_people")
    clean = Dataset.objects.create(name="bench_people", layer="chart", table="bench_people")
    pipeline = Pipeline.objects.create(name="bench_recovery")
    Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=src, output=raw, write_mode="replace")
    Step.objects.create(pipeline=pipeline, name="refine", kind="refine", output=clean, position=1,
                        sql="SELECT CAST(id AS integer) AS id, name FROM explore.bench_people")
    env = {
        **os.environ,
        "ATLAS_STEP_HOOKS": "benchmarks.recovery.hook.PauseAfterStaging",
        "BENCH_FAULT_DIR": str(marks),
        "ATLAS_DATA_ROOTS": str(work),
        "PYTHONPATH": str(ROOT),
    }
    worker_args = [sys.executable, "-m", "celery", "-A", "atlas", "worker", "--pool=solo", "--without-mingle",
                   "--without-gossip", "--without-heartbeat", "--loglevel=WARNING"]
    logs = open(work / "celery.log", "ab")  # noqa: SIM115
    procs: dict[int, subprocess.Popen] = {}

    def spawn(name: str) -> None:
        p = subprocess.Popen([*worker_args, "-n", f"{name}@%h"], cwd=ROOT, env=env, stdout=logs, stderr=logs)
        procs[p.pid] = p

    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "atlas", "beat", "--max-interval", "1",
         "--loglevel=WARNING", "--schedule", str(work / "beat-schedule")],
        cwd=ROOT, env=env, stdout=logs, stderr=logs,
    )
    spawn("a")
    spawn("b")
    results = []
    try:
        for i in range(samples):
            data.write_text(data.read_text() + f"{9000 + i},extra{i},1\n")  # new content: the ingest has work
            run = runner.start_run(pipeline, trigger=Trigger.API)
            marker = marks / f"run{run.pk}.reached"
            deadline = time.monotonic() + 300
            while not marker.exists() or not marker.read_text():
                if time.monotonic() > deadline:
                    raise SystemExit("no worker reached the pause point")
                time.sleep(0.05)
            pid = int(marker.read_text())
            procs[pid].send_signal(signal.SIGKILL)
            procs.pop(pid).wait()
            killed = time.time()
            spawn(f"r{i}")  # the worker comes back (not needed for the resume: the other one takes it)
            while True:
                run.refresh_from_db()
                if not run.is_active:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("the run did not end")
                time.sleep(0.1)
            finished = time.time()
            first = RunAttempt.objects.get(run=run, number=1)
            second = RunAttempt.objects.filter(run=run, number=2).first()
            if run.status != "succeeded" or second is None:
                raise SystemExit(f"run {run.pk} ended {run.status}: {run.error}")
            results.append({
                "lost_recorded": first.ended_at.timestamp() - killed,
                "resumed": second.started_at.timestamp() - killed,
                "finished": finished - killed,
            })
    finally:
        for p in [*procs.values(), beat]:
            p.terminate()
        for p in [*procs.values(), beat]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(json.dumps({
        "heartbeat_seconds": settings.ATLAS_RUN_HEARTBEAT_SECONDS,
        "lost_seconds": settings.ATLAS_RUN_LOST_SECONDS,
        "samples": results,
        "medians": med,
        "max": {k: max(r[k] for r in results) for k in results[0]},
    }))


if __name__ == "__main__":
    main()
