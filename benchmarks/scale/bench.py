"""The scale benchmark's measurement, in a process of its own (one engine: the environment's).

Applies the demo project to the files already generated in ``ATLAS_DEMO_DIR`` (the parent
generates them once for every engine), then runs the pipeline once in this process
(``start_run`` + ``execute_run``, as ``run_pipeline --sync``): a first run, what a team runs
when its data first reaches Atlas. Prints one JSON line: the run's wall and CPU, each step's
time, rows and what ran after it, and the Spark server's CPU when ``BENCH_SPARK_PID`` names it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import django


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and the children it waited for (``/proc``), or 0.0 where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks  # utime, stime, cutime, cstime


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every live descendant (spark-submit starts the JVM as a child)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += process_cpu(p)
        with contextlib.suppress(OSError):
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
    return total


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    django.setup()
    from django.conf import settings

    from benchmarks.runs.bench import timed_run
    from demo import install

    pipeline = install.install(Path(settings.ATLAS_DEMO_DIR))
    spark_pid = int(os.environ.get("BENCH_SPARK_PID") or 0)
    server0 = tree_cpu(spark_pid) if spark_pid else None
    t0 = time.perf_counter()
    first = timed_run(pipeline)
    first["measured_wall"] = round(time.perf_counter() - t0, 3)
    if spark_pid:
        first["server_cpu"] = round(tree_cpu(spark_pid) - server0, 2)
    print(json.dumps({"first": first, "warehouse": settings.WAREHOUSE_URL.split(":", 1)[0] or "postgres"}))


if __name__ == "__main__":
    main()
