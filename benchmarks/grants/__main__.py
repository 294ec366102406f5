"""``python -m benchmarks.grants``: publishers beside processes applying the operator-SQL roles' setup.

Three publishers replace tables of ``chart`` (each its own targets, as each pipeline has) while two
threads start "processes" (a fresh warehouse object each) that apply the roles' setup, for
``BENCH_SECONDS`` (20) per design. Half of the setups first undo what an earlier one did (the
stamp cleared, a table's grants reset as if no grant ever touched it: the table locked first), so
the full schema-level transaction and the table-by-table fixes run too, not only the stamp's read.

Two designs, one after the other on a fresh database: ``reverted``, every statement of the setup in
one transaction with ``GRANT … ON ALL TABLES IN SCHEMA`` (the change reverted after it failed 4 of
200 ``benchmarks.beat`` runs), and ``now`` (``PostgresWarehouse.ensure_privileges``). Counts
publishes, setups, and each error by its first line. Writes ``benchmarks/results/grants.json``
and ``.md``. A correctness stress, not a timing: run it under the benchmarks' lock all the same.
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time

from benchmarks import fresh_postgres, write_results

TABLES = 12
PUBLISHERS = 3
SETUPS = 2


def run(design: str, seconds: float) -> dict:
    import psycopg

    from atlas.warehouse import LAYER_SCHEMAS, privileges
    from atlas.warehouse.postgresql import PostgresWarehouse
    from atlas.warehouse.privileges import configured_roles, qi

    url = fresh_postgres("atlas_bench_grants").replace("postgres://", "postgresql://", 1)
    first = PostgresWarehouse(url)
    first.ensure_privileges()
    with first.cursor() as cur:
        for i in range(TABLES):
            cur.execute(f"CREATE TABLE chart.p{i} (a integer)")
    first.close()
    errors: collections.Counter = collections.Counter()
    counts: collections.Counter = collections.Counter()
    stop = time.monotonic() + seconds

    def publisher(k: int) -> None:
        wh = PostgresWarehouse(url)
        wh.ensure_privileges()
        while time.monotonic() < stop:
            target = f"p{random.randrange(TABLES // PUBLISHERS) * PUBLISHERS + k}"
            try:
                with wh.cursor() as cur:
                    cur.execute(f"DROP TABLE IF EXISTS chart.s{k}")
                    cur.execute(f"CREATE TABLE chart.s{k} AS SELECT 1 AS a")
                wh.publish(schema="chart", staging=f"s{k}", target=target, mode="replace")
                counts["publishes"] += 1
            except Exception as exc:  # counted: what this benchmark is about
                errors["publisher: " + str(exc).splitlines()[0].replace(target, "pN")] += 1
        wh.close()

    def reverted(wh: PostgresWarehouse) -> None:
        conn = wh._conn()
        with conn.cursor() as cur:
            plan = wh._plan_privileges(cur, configured_roles(), set_password=False)
            statements = list(plan.statements)
            for schema in LAYER_SCHEMAS:
                for role in plan.roles.operator_roles():
                    statements.append(
                        f"GRANT SELECT ON ALL TABLES IN SCHEMA {qi(schema)} TO {qi(role)}"
                        if role in plan.roles.readers(schema)
                        else f"REVOKE ALL ON ALL TABLES IN SCHEMA {qi(schema)} FROM {qi(role)}"
                    )
            privileges.apply(conn, cur, statements)

    def setup(_: int) -> None:
        while time.monotonic() < stop:
            wh = PostgresWarehouse(url)
            try:
                if random.random() < 0.5:  # undo: the stamp, and one table's grants (locked, as any change of its row)
                    with psycopg.connect(url) as conn:
                        conn.execute("COMMENT ON SCHEMA atlas IS NULL")
                        table = f"chart.p{random.randrange(TABLES)}"
                        conn.execute(f"LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE")
                        conn.execute(f"UPDATE pg_class SET relacl = NULL WHERE oid = to_regclass('{table}')")
                    counts["setups after an undo"] += 1
                if design == "reverted":
                    reverted(wh)
                else:
                    wh.ensure_privileges()
                counts["setups"] += 1
            except Exception as exc:  # counted
                errors["setup: " + " ".join(w for w in str(exc).splitlines()[0].split() if not w.isdigit())] += 1
            finally:
                wh.close()

    threads = [threading.Thread(target=publisher, args=(k,)) for k in range(PUBLISHERS)]
    threads += [threading.Thread(target=setup, args=(k,)) for k in range(SETUPS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"design": design, "seconds": seconds, "counts": dict(counts), "errors": dict(errors)}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    os.environ.setdefault("DEBUG", "true")
    import django

    django.setup()
    seconds = float(os.environ.get("BENCH_SECONDS", "20"))
    load = os.getloadavg()[0]
    results = [run(design, seconds) for design in ("reverted", "now")]
    lines = [
        "# The roles' setup beside publishers",
        "",
        f"`python -m benchmarks.grants` — {PUBLISHERS} publishers replacing tables of `chart` and {SETUPS} threads",
        f"applying the operator-SQL roles' setup, {seconds:.0f} s per design, half the setups after an undo",
        "(see the module's docstring).",
        "",
        "| design | publishes | publishes failed | setups | setups failed | errors |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        failed_pub = sum(n for e, n in r["errors"].items() if e.startswith("publisher"))
        failed_set = sum(n for e, n in r["errors"].items() if e.startswith("setup"))
        kinds = "; ".join(f"{e} ×{n}" for e, n in sorted(r["errors"].items(), key=lambda x: -x[1])) or "none"
        label = {"reverted": "reverted: one transaction with `ON ALL TABLES`", "now": "now: stamped, table by table"}
        lines.append(f"| {label[r['design']]} | {r['counts'].get('publishes', 0)} | {failed_pub}"
                     f" | {r['counts'].get('setups', 0) + failed_set} | {failed_set} | {kinds} |")
    lines += ["", f"Machine: {os.cpu_count()} CPUs; load average (1 min) {load:.1f} at the start,"
              f" {os.getloadavg()[0]:.1f} at the end."]
    write_results("grants", {"runs": results, "load": [load, os.getloadavg()[0]]}, lines)


if __name__ == "__main__":
    main()
