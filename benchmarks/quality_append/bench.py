"""One engine's figures for the gate on a 1 % append (run in a child process with that engine's settings)."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from benchmarks.quality.bench import ROWS, T, install, make_data, setup_django

REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
NEW = ROWS // 100
STAGED, AFTER = "bench_orders__stg", "bench_orders__after"


def stage_new_rows(wh) -> None:
    """1 % new orders, shaped like the published ones, every check passing (keys new, customers known)."""
    gen = "generate_series(%d, %d) AS g(i)" if wh.vendor == "postgresql" else "range(%d, %d + 1) AS g(i)"
    quarter = ROWS // 4
    with wh.cursor() as cur:
        for name in (STAGED, AFTER):
            cur.execute(f"DROP TABLE IF EXISTS {wh.table('chart', name)}")
        cur.execute(
            f"CREATE TABLE {wh.table('chart', STAGED)} AS SELECT i AS order_id, (i % {quarter}) + 1 AS customer_id,"
            f" i / {quarter} AS line_no,"
            " CASE WHEN i % 97 = 0 THEN NULL ELSE (ARRAY['placed','shipped','delivered','cancelled'])[(i % 4) + 1] END AS status,"
            " CAST((i % 1000) / 10.0 AS numeric(12,2)) AS amount, (i % 9) + 1 AS quantity,"
            " 'user' || i || '@example.com' AS email, 'C' || (i % 1000) AS code,"
            " CAST('2026-01-01' AS timestamp) + (i % 1000) * interval '1 minute' AS created_at"
            f" FROM {gen % (ROWS + 1, ROWS + NEW)}"
        )
        # the table after publish, for the full evaluation (built once, not timed)
        cur.execute(f"CREATE TABLE {wh.table('chart', AFTER)} AS SELECT * FROM {T} UNION ALL"
                    f" SELECT * FROM {wh.table('chart', STAGED)}")
        if wh.vendor == "postgresql":
            for name in (STAGED, AFTER, "bench_orders", "bench_customers"):
                cur.execute(f"ANALYZE {wh.table('chart', name)}")


def timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    setup_django()
    from atlas.warehouse import get_warehouse
    from atlas.warehouse.base import WriteMode
    from quality.incremental import Increment
    from quality.service import run_checks

    wh = get_warehouse()
    wh.ensure_schemas()
    make_data(wh)
    stage_new_rows(wh)
    ds = install(wh)

    def incremental(base):
        def run():
            run = run_checks(ds, trigger="step", schema="chart", table=STAGED, apply_drops=False,
                             increment=Increment(WriteMode.APPEND, "bench_orders", True, base=base))
            assert run.status == "passed", [(r.check_name, r.message) for r in run.results.exclude(outcome="pass")]
            return run
        return run

    def full():
        run = run_checks(ds, trigger="cli", schema="chart", table=AFTER, apply_drops=False)
        assert run.status == "passed", [(r.check_name, r.message) for r in run.results.exclude(outcome="pass")]
        return run

    def staged_only():  # what the gate did before: the new rows alone (wrong for table checks; its cost)
        return run_checks(ds, trigger="step", schema="chart", table=STAGED, apply_drops=False)

    # The first append's gate: nothing kept yet, so it counts the published rows and their keys exactly
    # (and on PostgreSQL builds the btree on each unique check's columns, once).
    first_wall, first_cpu, first = timed(incremental({}))
    kept = first.table_after
    full_run = full()
    incremental_run = incremental(kept)()
    # the same outcomes; the table checks' figures equal (row checks cover the new rows: the published ones
    # hold ~1 % NULL statuses on purpose, within the check's tolerance)
    def figures(run):  # (a freshness check's observed age moves with the clock)
        return {r.check_name: (r.outcome, r.failing_rows if r.covers != "new_rows" else None, r.observed
                               if r.covers != "new_rows" and r.kind != "freshness" else None) for r in run.results.all()}
    assert figures(incremental_run) == {k: v if k in {r.check_name for r in incremental_run.results.exclude(covers="new_rows")}
                                        else (v[0], None, None) for k, v in figures(full_run).items()}
    assert incremental_run.results.get(check_name="row_count").observed == ROWS + NEW
    contenders = {"incremental": incremental(kept), "full": full, "staged_only": staged_only,
                  "incremental_nothing_kept": incremental({})}
    walls: dict[str, list[float]] = {k: [] for k in contenders}
    cpus: dict[str, list[float]] = {k: [] for k in contenders}
    queries: dict[str, int] = {}
    for _ in range(REPEAT):  # interleaved: a busy moment hurts every contender alike
        for name, fn in contenders.items():
            wall, cpu, run = timed(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)
            queries[name] = run.queries
    json.dump({
        "engine": wh.vendor, "rows": ROWS, "new_rows": NEW, "checks": ds.checks.count(), "repeat": REPEAT,
        "first_gate": {"wall": first_wall, "cpu": first_cpu, "queries": first.queries},
        "medians": {k: statistics.median(v) for k, v in walls.items()},
        "cpu_medians": {k: statistics.median(v) for k, v in cpus.items()},
        "queries": queries, "runs": walls,
    }, sys.stdout)


if __name__ == "__main__":
    main()
