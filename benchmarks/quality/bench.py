"""One engine's measurements (run in a child process with that engine's settings)."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, skip_checks=True)


def make_data(wh) -> None:
    gen = "generate_series(1, %d) AS g(i)" if wh.vendor == "postgresql" else "range(1, %d + 1) AS g(i)"
    with wh.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS chart.bench_customers")
        cur.execute("DROP TABLE IF EXISTS chart.bench_orders")
        cur.execute(f"CREATE TABLE chart.bench_customers AS SELECT i AS customer_id FROM {gen % (ROWS // 4)}")
        cur.execute(
            "CREATE TABLE chart.bench_orders AS SELECT i AS order_id, (i % " + str(ROWS // 4) + ") + 1 AS customer_id,"
            " i / " + str(ROWS // 4) + " AS line_no,"
            " CASE WHEN i % 97 = 0 THEN NULL ELSE (ARRAY['placed','shipped','delivered','cancelled'])[(i % 4) + 1] END AS status,"
            " CAST((i % 1000) / 10.0 AS numeric(12,2)) AS amount, (i % 9) + 1 AS quantity,"
            " 'user' || i || '@example.com' AS email, 'C' || (i % 1000) AS code,"
            " CAST('2026-01-01' AS timestamp) + (i % 1000) * interval '1 minute' AS created_at"
            f" FROM {gen % ROWS}"
        )


CHECKS = [
    ("nn_order_id", "not_null", ["order_id"], {}),
    ("nn_customer_id", "not_null", ["customer_id"], {}),
    ("nn_status", "not_null", ["status"], {}),
    ("nn_amount", "not_null", ["amount"], {}),
    ("nn_email", "not_null", ["email"], {}),
    ("nn_code", "not_null", ["code"], {}),
    ("nn_created_at", "not_null", ["created_at"], {}),
    ("uq_order_id", "unique", ["order_id"], {}),
    ("uq_customer_line", "unique", ["customer_id", "line_no"], {}),
    ("status_values", "accepted_values", ["status"], {"values": ["placed", "shipped", "delivered", "cancelled"]}),
    ("amount_range", "range", ["amount"], {"min": 0, "max": 100}),
    ("quantity_range", "range", ["quantity"], {"min": 1, "max": 9}),
    ("email_regex", "regex", ["email"], {"pattern": "^[a-z0-9]+@[a-z]+[.][a-z]+$"}),
    ("email_length", "length", ["email"], {"min": 5, "max": 64}),
    ("code_length", "length", ["code"], {"min": 2, "max": 4}),
    ("row_count", "row_count", [], {"min": 1}),
    ("customer_fk", "referential", ["customer_id"], {"dataset": "bench_customers", "column": "customer_id"}),
    ("amount_vs_qty", "custom_row", [], {"sql": "amount >= 0 OR quantity > 0"}),
    ("total_positive", "custom_aggregate", [], {"sql": "sum(amount) >= 0"}),
    ("fresh", "freshness", ["created_at"], {"max_age_hours": 100000}),
]


def install(wh):
    from pipelines.models import Dataset
    from quality.models import Check

    Dataset.objects.update_or_create(name="bench_customers", defaults={"layer": "chart", "table": "bench_customers"})
    ds, _ = Dataset.objects.update_or_create(name="bench_orders", defaults={"layer": "chart", "table": "bench_orders"})
    Check.objects.filter(dataset=ds).delete()
    for name, kind, cols, params in CHECKS:
        tolerance = 0.02 if name == "nn_status" else None  # the data has ~1% NULL statuses on purpose
        Check.objects.create(dataset=ds, name=name, kind=kind, columns=cols, params=params, tolerance=tolerance)
    return ds


def one_query_per_check(wh, checks) -> list[tuple[str, list]]:
    """dbt-style: each test its own query over the table."""
    from quality.compiler import compile_plan, scan_sql

    queries = []
    for check in checks:
        plan = compile_plan(wh, [check], "chart", "bench_orders")
        if check.kind == "unique":
            keys = ", ".join(wh.quote(c) for c in check.columns)
            queries.append((f"SELECT count(*) FROM (SELECT {keys} FROM chart.bench_orders GROUP BY {keys} HAVING count(*) > 1) d", []))
        else:
            queries.append(scan_sql(wh, plan))
    return queries


def floor_sql(wh) -> tuple[str, list]:
    """The best hand-written single statement: one aggregate, hash GROUP BYs for uniqueness, one anti-join."""
    regex = wh.regex_match("email")
    return (
        "SELECT count(*), count(*) FILTER (WHERE order_id IS NULL), count(*) FILTER (WHERE o.customer_id IS NULL),"
        " count(*) FILTER (WHERE status IS NULL), count(*) FILTER (WHERE amount IS NULL),"
        " count(*) FILTER (WHERE email IS NULL), count(*) FILTER (WHERE code IS NULL),"
        " count(*) FILTER (WHERE created_at IS NULL),"
        " (SELECT count(*) FROM (SELECT order_id FROM chart.bench_orders GROUP BY order_id HAVING count(*) > 1) a),"
        " (SELECT count(*) FROM (SELECT customer_id, line_no FROM chart.bench_orders GROUP BY 1, 2 HAVING count(*) > 1) b),"
        " count(*) FILTER (WHERE status NOT IN ('placed','shipped','delivered','cancelled')),"
        " count(*) FILTER (WHERE amount < 0 OR amount > 100), count(*) FILTER (WHERE quantity < 1 OR quantity > 9),"
        f" count(*) FILTER (WHERE NOT {regex}), count(*) FILTER (WHERE length(email) < 5 OR length(email) > 64),"
        " count(*) FILTER (WHERE length(code) < 2 OR length(code) > 4),"
        " count(*) FILTER (WHERE o.customer_id IS NOT NULL AND c.customer_id IS NULL),"
        " count(*) FILTER (WHERE NOT (amount >= 0 OR quantity > 0)), sum(amount) >= 0, max(created_at)"
        " FROM chart.bench_orders o LEFT JOIN chart.bench_customers c ON c.customer_id = o.customer_id",
        ["^[a-z0-9]+@[a-z]+[.][a-z]+$"],
    )


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    setup_django()
    from atlas.warehouse import get_warehouse
    from quality.service import run_checks

    wh = get_warehouse()
    wh.ensure_schemas()
    make_data(wh)
    if wh.vendor == "postgresql":
        with wh.cursor() as cur:
            cur.execute("ANALYZE chart.bench_orders")
            cur.execute("ANALYZE chart.bench_customers")
    ds = install(wh)
    checks = list(ds.checks.all())
    per_check = one_query_per_check(wh, checks)
    floor = floor_sql(wh)

    def run_each():
        with wh.cursor() as cur:
            for sql, params in per_check:
                cur.execute(sql, params).fetchall()

    def run_floor():
        with wh.cursor() as cur:
            cur.execute(*floor).fetchall()

    def run_atlas():
        run = run_checks(ds, trigger="cli", apply_drops=False)
        assert run.results.count() == 20 and run.status == "passed", [(r.check_name, r.message) for r in run.results.exclude(outcome="pass")]

    run_floor()  # warm caches
    times = {"one_query_per_check": [], "floor": [], "atlas": []}
    for _ in range(REPEAT):
        times["one_query_per_check"].append(timed(run_each))
        times["floor"].append(timed(run_floor))
        times["atlas"].append(timed(run_atlas))
    medians = {k: statistics.median(v) for k, v in times.items()}
    json.dump({"engine": wh.vendor, "rows": ROWS, "checks": len(checks), "repeat": REPEAT, "medians": medians,
               "runs": times}, sys.stdout)


if __name__ == "__main__":
    main()
