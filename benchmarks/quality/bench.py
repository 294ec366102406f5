"""One engine's measurements (run in a child process with that engine's settings)."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
T, REF = "chart.bench_orders", "chart.bench_customers"
PATTERN = "^[a-z0-9]+@[a-z]+[.][a-z]+$"
STATUSES = "'placed','shipped','delivered','cancelled'"


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, skip_checks=True)


def make_data(wh) -> None:
    """Orders in random physical order (a sorted table would flatter sort-based strategies)."""
    gen = "generate_series(1, %d) AS g(i)" if wh.vendor == "postgresql" else "range(1, %d + 1) AS g(i)"
    with wh.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {REF}")
        cur.execute(f"DROP TABLE IF EXISTS {T}")
        cur.execute(f"CREATE TABLE {REF} AS SELECT i AS customer_id FROM {gen % (ROWS // 4)}")
        cur.execute(
            f"CREATE TABLE {T} AS SELECT i AS order_id, (i % " + str(ROWS // 4) + ") + 1 AS customer_id,"
            " i / " + str(ROWS // 4) + " AS line_no,"
            " CASE WHEN i % 97 = 0 THEN NULL ELSE (ARRAY['placed','shipped','delivered','cancelled'])[(i % 4) + 1] END AS status,"
            " CAST((i % 1000) / 10.0 AS numeric(12,2)) AS amount, (i % 9) + 1 AS quantity,"
            " 'user' || i || '@example.com' AS email, 'C' || (i % 1000) AS code,"
            " CAST('2026-01-01' AS timestamp) + (i % 1000) * interval '1 minute' AS created_at"
            f" FROM {gen % ROWS} ORDER BY random()"
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
    ("email_regex", "regex", ["email"], {"pattern": PATTERN}),
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


def one_query_per_check(wh) -> list[tuple[str, list]]:
    """How dbt runs these tests: its generic tests' SQL (and dbt_utils' / dbt_expectations'), one query each,
    wrapped in dbt's ``select count(*) as failures from (<test>)``."""
    regex = wh.regex_match("email")

    def failures(sql: str) -> str:
        return f"SELECT count(*) AS failures FROM ({sql}) AS dbt_internal_test"

    queries = [failures(f"SELECT * FROM {T} WHERE {c} IS NULL") for c in
               ("order_id", "customer_id", "status", "amount", "email", "code", "created_at")]
    queries += [
        failures(f"SELECT order_id AS unique_field, count(*) AS n_records FROM {T} WHERE order_id IS NOT NULL"
                 " GROUP BY order_id HAVING count(*) > 1"),
        failures(f"SELECT customer_id, line_no FROM {T} GROUP BY customer_id, line_no HAVING count(*) > 1"),
        failures(f"WITH all_values AS (SELECT status AS value_field, count(*) AS n_records FROM {T} GROUP BY status)"
                 f" SELECT * FROM all_values WHERE value_field NOT IN ({STATUSES})"),
        failures(f"SELECT * FROM {T} WHERE NOT (amount >= 0 AND amount <= 100)"),
        failures(f"SELECT * FROM {T} WHERE NOT (quantity >= 1 AND quantity <= 9)"),
        failures(f"SELECT * FROM {T} WHERE NOT {regex}"),
        failures(f"SELECT * FROM {T} WHERE NOT (length(email) >= 5 AND length(email) <= 64)"),
        failures(f"SELECT * FROM {T} WHERE NOT (length(code) >= 2 AND length(code) <= 4)"),
        f"SELECT count(*) FROM {T}",
        failures(f"WITH child AS (SELECT customer_id AS from_field FROM {T} WHERE customer_id IS NOT NULL),"
                 f" parent AS (SELECT customer_id AS to_field FROM {REF})"
                 " SELECT from_field FROM child LEFT JOIN parent ON child.from_field = parent.to_field"
                 " WHERE parent.to_field IS NULL"),
        failures(f"SELECT * FROM {T} WHERE NOT (amount >= 0 OR quantity > 0)"),
        failures(f"SELECT 1 FROM (SELECT sum(amount) AS s FROM {T}) AS a WHERE NOT (s >= 0)"),
        f"SELECT max(created_at) FROM {T}",
    ]
    return [(q, [PATTERN] if "%s" in q else []) for q in queries]


ROW_AGGREGATES = (
    "count(*), count(*) - count(order_id), count(*) - count(o.customer_id), count(*) - count(status),"
    " count(*) - count(amount), count(*) - count(email), count(*) - count(code), count(*) - count(created_at),"
    f" count(*) FILTER (WHERE status NOT IN ({STATUSES})),"
    " count(*) FILTER (WHERE amount < 0 OR amount > 100), count(*) FILTER (WHERE quantity < 1 OR quantity > 9),"
    " count(*) FILTER (WHERE NOT {regex}), count(*) FILTER (WHERE length(email) < 5 OR length(email) > 64),"
    " count(*) FILTER (WHERE length(code) < 2 OR length(code) > 4),"
    " count(*) FILTER (WHERE NOT (amount >= 0 OR quantity > 0)), sum(amount) >= 0, max(created_at)"
)


def floors(wh) -> dict[str, tuple[str, list]]:
    """Hand-written single statements for all 20 checks; the fastest in the run is the floor.

    ``joins``: the textbook form — hash GROUP BY ... HAVING per uniqueness check, a LEFT JOIN
    for the foreign key. ``subqueries``: the fastest we found — uniqueness as surplus rows
    (count - count DISTINCT, on PostgreSQL one "C"-collated text key for two columns; DuckDB's
    hash GROUP BY is as fast), the foreign key as an anti-join subquery (LEFT JOIN ... IS NULL:
    NOT EXISTS is as fast on PostgreSQL, twice as slow on DuckDB).
    """
    regex = wh.regex_match("email")
    rows = ROW_AGGREGATES.format(regex=regex)
    group_uq = (
        f"(SELECT count(*) FROM (SELECT order_id FROM {T} GROUP BY order_id HAVING count(*) > 1) a),"
        f" (SELECT count(*) FROM (SELECT customer_id, line_no FROM {T} GROUP BY 1, 2 HAVING count(*) > 1) b)"
    )
    joins = (
        f"SELECT {rows}, {group_uq}, count(*) FILTER (WHERE o.customer_id IS NOT NULL AND c.customer_id IS NULL)"
        f" FROM {T} o LEFT JOIN {REF} c ON c.customer_id = o.customer_id"
    )
    if wh.vendor == "postgresql":
        pair = "(CAST(customer_id AS text) || chr(31) || CAST(line_no AS text)) COLLATE \"C\""
        pair_uq = f"(SELECT count({pair}) - count(DISTINCT {pair}) FROM {T})"
    else:
        pair_uq = f"(SELECT count(*) FROM (SELECT customer_id, line_no FROM {T} GROUP BY 1, 2 HAVING count(*) > 1) b)"
    subqueries = (
        f"SELECT {rows}, (SELECT count(order_id) - count(DISTINCT order_id) FROM {T}), {pair_uq},"
        f" (SELECT count(*) FROM {T} x LEFT JOIN {REF} c ON c.customer_id = x.customer_id"
        f" WHERE x.customer_id IS NOT NULL AND c.customer_id IS NULL)"
        f" FROM {T} o"
    )
    candidates = {"joins": (joins, [PATTERN]), "subqueries": (subqueries, [PATTERN])}
    if wh.vendor == "duckdb":
        # Written knowing the data: integer keys in [1, ROWS] and [1, ROWS // 4], no guards.
        parents = ROWS // 4
        candidates["bitmaps"] = (
            f"SELECT {rows}, (SELECT count(order_id) - bit_count(bitstring_agg(order_id, 1, {ROWS})) FROM {T}),"
            f" (SELECT count(*) - count(DISTINCT hash(customer_id, line_no)) FROM {T}"
            " WHERE customer_id IS NOT NULL AND line_no IS NOT NULL),"
            f" count(*) FILTER (WHERE o.customer_id IS NOT NULL AND (o.customer_id NOT BETWEEN 1 AND {parents}"
            f" OR get_bit((SELECT bitstring_agg(customer_id, 1, {parents}) FROM {REF}),"
            " CAST(o.customer_id - 1 AS INTEGER)) = 0))"
            f" FROM {T} o",
            [PATTERN],
        )
    return candidates


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    setup_django()
    from atlas.warehouse import get_warehouse
    from quality.compiler import compile_plan, scan_sql
    from quality.service import run_checks

    wh = get_warehouse()
    wh.ensure_schemas()
    make_data(wh)
    if wh.vendor == "postgresql":
        with wh.cursor() as cur:
            cur.execute(f"ANALYZE {T}")
            cur.execute(f"ANALYZE {REF}")
    ds = install(wh)
    per_check = one_query_per_check(wh)
    candidates = floors(wh)

    def run_each():
        with wh.cursor() as cur:
            for sql, params in per_check:
                cur.execute(sql, params).fetchall()

    def run_sql(statement):
        def run():
            with wh.cursor() as cur:
                cur.execute(*statement).fetchall()

        return run

    def run_atlas():
        run = run_checks(ds, trigger="cli", apply_drops=False)
        assert run.results.count() == 20 and run.status == "passed", [
            (r.check_name, r.message) for r in run.results.exclude(outcome="pass")
        ]

    contenders = {"one_query_per_check": run_each, "atlas": run_atlas}
    contenders.update({f"floor_{name}": run_sql(stmt) for name, stmt in candidates.items()})
    for fn in contenders.values():  # warm caches, and check every statement runs
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(REPEAT):  # interleaved, so a busy moment hurts every contender alike
        for name, fn in contenders.items():
            times[name].append(timed(fn))
    medians = {k: statistics.median(v) for k, v in times.items()}
    floor_name = min(candidates, key=lambda n: medians[f"floor_{n}"])
    medians["floor"] = medians[f"floor_{floor_name}"]
    atlas_sql, _ = scan_sql(wh, compile_plan(wh, list(ds.checks.all()), "chart", "bench_orders"))
    json.dump(
        {"engine": wh.vendor, "rows": ROWS, "checks": len(CHECKS), "repeat": REPEAT, "floor": floor_name,
         "medians": medians, "runs": times, "atlas_sql": atlas_sql, "floor_sql": candidates[floor_name][0]},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
