"""The runs benchmark's measurement, in a process of its own (Django settings are per process).

One engine (the environment's: embedded or PostgreSQL), one size: the demo generated with
``BENCH_ROWS`` orders and applied (``load_demo``), its sources widened to globs so that more files
can be appended; then, in this process, what a Celery worker does when it starts (``atlas.worker_start``:
the PII analyzer built, waited for) and (``start_run`` + ``execute_run``, as ``run_pipeline --sync``):
the first run, ``BENCH_REPS`` unchanged re-runs, ``BENCH_REPS`` re-runs each after appending 1 %
new orders (with their items and payments), and ``BENCH_REPS`` forced re-runs of unchanged data
(every step executed: what a re-run cost before issue 20). Then ``manage.py run_pipeline ecommerce
--sync`` unchanged, as a whole process (start-up included). Prints one JSON line.
``BENCH_FIRST_ONLY=1``: only the first run, in a cold process (no start-up: the analyzer is built
inside it, as under ``run_pipeline --sync``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[2]


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def append_one_percent(demo: Path, k: int, rows: int) -> int:
    """New files holding 1 % more orders: the first 1 % of orders again under new ids, with their items and payments."""
    n = max(1, rows // 100)
    offset = rows * (1 + k) + 10  # new order ids, past every earlier one
    wanted = set(range(1, n + 1))

    def rewrite_csv(name: str, out: str) -> int:
        text = (demo / name).read_text(encoding="utf-8", errors="replace")
        reader = csv.reader(io.StringIO(text))
        header = next(reader)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        count = 0
        for row in reader:
            if row and row[0].strip().isdigit() and int(row[0]) in wanted and len(row) == len(header):
                row[0] = str(int(row[0]) + offset)
                w.writerow(row)
                count += 1
        (demo / out).write_text(buf.getvalue(), encoding="utf-8")
        return count

    added = rewrite_csv("orders.csv", f"orders_new{k}.csv")
    rewrite_csv("order_items.csv", f"order_items_new{k}.csv")
    lines = []
    for line in (demo / "payments.jsonl").read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("order_id") in wanted:
            rec["order_id"] += offset
            rec["payment_id"] = (rec.get("payment_id") or 0) + offset
            lines.append(json.dumps(rec))
    (demo / f"payments_new{k}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return added


def timed_run(pipeline, **start) -> dict:
    from pipelines import freshness, runner
    from pipelines.models import RunStatus

    c0, t0 = cpu(), time.perf_counter()
    run = runner.start_run(pipeline, dispatch=False, **start)
    runner.execute_run(run.pk)
    wall, used = time.perf_counter() - t0, cpu() - c0
    run.refresh_from_db()
    if run.status != RunStatus.SUCCEEDED:
        raise SystemExit(f"run #{run.pk} {run.status}: {run.error}")
    steps, hooks = {}, {}
    for sr in run.step_runs.all():
        took = (sr.finished_at - sr.started_at).total_seconds() if sr.started_at and sr.finished_at else 0.0
        after = sum(v for k, v in ((sr.details or {}).get("hook_seconds") or {}).items() if k.startswith("published"))
        steps[sr.step_name] = {"seconds": round(took, 4), "up_to_date": freshness.is_up_to_date(sr),
                               "status": sr.status, "rows_out": sr.rows_out, "rows_in": sr.rows_in,
                               # an incremental step: "incremental: 1 new batch of ..." or "full: <why>"
                               "plan": _plan(sr)}
        for k, v in ((sr.details or {}).get("hook_seconds") or {}).items():
            hooks[k] = round(hooks.get(k, 0.0) + v, 4)
        steps[sr.step_name]["after_publish_seconds"] = round(after, 4)
    in_steps = sum(s["seconds"] for s in steps.values())
    after = sum(s["after_publish_seconds"] for s in steps.values())
    return {
        "wall": round(wall, 4), "cpu": round(used, 4), "steps_seconds": round(in_steps, 4),
        "after_publish_seconds": round(after, 4), "pii_scan_seconds": round(hooks.get("published compliance", 0.0), 4),
        "overhead_seconds": round(wall - in_steps - after, 4), "hooks": hooks, "steps": steps,
        "up_to_date": sum(1 for s in steps.values() if s["up_to_date"]), "step_count": len(steps),
        "incremental": sum(1 for s in steps.values() if (s["plan"] or "").startswith("incremental")),
        "rows_out": run.rows_out,
    }


def _plan(sr) -> str | None:
    from pipelines import incremental

    state = (sr.details or {}).get(incremental.DETAILS)
    return f"{state['mode']}: {state['reason']}" if state else None


def published_digest() -> dict[str, str]:
    """Each Chart and Navigate table's rows, sorted, as a SHA-256: what a full recomputation must give again."""
    import hashlib

    from atlas.warehouse import get_warehouse
    from pipelines.models import Dataset

    wh, out = get_warehouse(), {}
    for ds in Dataset.objects.filter(layer__in=("chart", "navigate")).order_by("layer", "table"):
        with wh.cursor() as cur:
            rows = cur.execute(f"SELECT * FROM {wh.table(ds.layer, ds.table)}").fetchall()
        out[ds.qualified_table] = hashlib.sha256("\n".join(sorted(map(repr, rows))).encode()).hexdigest()
    return out


def unchanged_split(pipeline, reps: int) -> dict:
    """Where an unchanged re-run's CPU goes: the runner's planning (every step's SQL validated, to order
    the steps, then again to find each one's upstream), deciding that each step is up to date, the whole run."""
    from pipelines import freshness, runner

    samples = []
    for _ in range(reps):
        run = runner.start_run(pipeline, dispatch=False)
        c = cpu()
        steps = runner.plan_steps(pipeline)
        plan = cpu() - c
        c = cpu()
        runner.upstream_steps(steps)
        upstream = cpu() - c
        c = cpu()
        for step in steps:
            freshness.decide(run, step)
        decide = cpu() - c
        c = cpu()
        runner.execute_run(run.pk)
        samples.append({"plan_steps": plan, "upstream_steps": upstream, "decide_all_steps": decide,
                        "whole_run": cpu() - c})
    return {k: round(statistics.median(s[k] for s in samples), 4) for k in samples[0]}


def summary(samples: list[dict]) -> dict:
    keys = ("wall", "cpu", "steps_seconds", "after_publish_seconds", "pii_scan_seconds", "overhead_seconds")
    return {"median": {k: round(statistics.median(s[k] for s in samples), 4) for k in keys}, "samples": samples}


def worker_start_up() -> dict:
    """What a Celery worker does when it starts (``atlas.worker_start``: the PII analyzer built), waited for:
    the first run below is then a started worker's first run, as in production, not a cold process's."""
    from atlas import worker_start

    c0, t0 = cpu(), time.perf_counter()
    worker_start.start()
    from compliance.analyzer import analyzer  # Presidio's import is part of what the start-up costs

    analyzer()  # built by the start-up's thread: wait for it
    return {"wall": round(time.perf_counter() - t0, 4), "cpu": round(cpu() - c0, 4)}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    started = time.perf_counter()
    django.setup()
    setup_seconds = time.perf_counter() - started
    from django.conf import settings
    from django.core.management import call_command

    from pipelines.models import Pipeline, Source

    rows, reps = int(os.environ["BENCH_ROWS"]), int(os.environ.get("BENCH_REPS", "3"))
    t0 = time.perf_counter()
    call_command("load_demo", rows=rows, stdout=io.StringIO())
    generate = time.perf_counter() - t0
    demo = Path(settings.ATLAS_DEMO_DIR)
    for source in Source.objects.filter(name__startswith="demo_"):  # orders.csv -> orders*.csv: room for new files
        stem, ext = source.location.rsplit(".", 1)
        source.location = f"{stem}*.{ext}"
        source.save()
    pipeline = Pipeline.objects.get(name="ecommerce")
    out = {"rows": rows, "engine": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
           "warehouse": settings.WAREHOUSE_URL.split(":", 1)[0] or "postgres", "generate_seconds": round(generate, 2),
           "django_setup_seconds": round(setup_seconds, 3)}
    if os.environ.get("BENCH_FIRST_ONLY") == "1":  # a cold process: the analyzer built inside the first run
        out["first"] = timed_run(pipeline)
        print(json.dumps(out))
        return
    out["worker_start"] = worker_start_up()
    out["first"] = timed_run(pipeline)
    out["unchanged"] = summary([timed_run(pipeline) for _ in range(reps)])
    appended = []
    for k in range(reps):
        n = append_one_percent(demo, k, rows)
        r = timed_run(pipeline)
        r["orders_appended"] = n
        appended.append(r)
    out["append_1pct"] = summary(appended)
    if os.environ.get("BENCH_FORCED", "1") != "0":
        # A forced run recomputes every step in full: the tables the incremental runs left must come out the same.
        before = published_digest()
        forced = [timed_run(pipeline, force=True)]
        out["incremental_equals_full"] = published_digest() == before
        out["forced"] = summary(forced + [timed_run(pipeline, force=True) for _ in range(reps - 1)])
    out["unchanged_split"] = unchanged_split(pipeline, reps)
    # The whole command, start-up included (what a shell or a cron job waits for).
    from atlas.warehouse import reset_warehouses

    reset_warehouses()  # the embedded warehouse serves one process at a time: this one lets go
    whole = []
    for _ in range(reps):
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "manage.py", "run_pipeline", "ecommerce", "--sync"], cwd=ROOT,
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"run_pipeline failed: {done.stdout[-2000:]} {done.stderr[-3000:]}")
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        whole.append({"wall": round(time.perf_counter() - t0, 4),
                      "cpu": round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 4)})
    out["command_unchanged"] = {"median": {k: round(statistics.median(w[k] for w in whole), 4) for k in ("wall", "cpu")},
                                "samples": whole}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
