"""One engine's measurements (a child process with that engine's settings): find and erase one subject.

Five 1M-row tables shaped like the three layers — Explore customers and orders
(text, as received; partitioned by batch on PostgreSQL), Chart customers (the
e-mail hashed by policy) and orders (typed), a Navigate value-per-customer table
(erasure setting "delete rows") — with seven confirmed subject keys. Each rep
erases a different customer, given by e-mail only:

* floor: the best hand-written SQL — one SELECT for the customer's id by e-mail,
  then one DELETE per table, in one transaction;
* Atlas: ``privacy.service.run`` on a verified erasure request — expansion
  through the keys, count and delete per table, tombstones, the independent
  verification scan of every table, the audit log;
* Atlas verification scan alone (``privacy.verification.scan``).

Without indexes, then (PostgreSQL) with the indexes Atlas creates when a key is
confirmed plus the floor's own (both variants pay for maintaining all of them).
"""

from __future__ import annotations

import json
import os
import statistics
import time

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
PARTITIONS = 10
TABLES = ["explore.bench_customers", "explore.bench_orders", "chart.bench_customers", "chart.bench_orders",
          "navigate.bench_customer_value"]


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, skip_checks=True)


def email(c: int) -> str:
    return f"User{c}@Example.com"  # dirty case in Explore, as shops send it


def make_data(wh) -> None:
    pg = wh.vendor == "postgresql"
    gen = f"generate_series(1, {ROWS}) AS g(i)" if pg else f"range(1, {ROWS} + 1) AS g(i)"
    load = "'b' || (i % " + str(PARTITIONS) + ") AS _batch_id, now() AS _ingested_at, 'bench' AS _source, i AS _row_number"
    hexa = "md5(CAST(i AS text)) || md5(CAST(-i AS text))"
    with wh.cursor() as cur:
        for t in TABLES:
            cur.execute(f"DROP TABLE IF EXISTS {t}")
        for t, cols in [("explore.bench_customers", "customer_id text, email text, name text"),
                        ("explore.bench_orders", "order_id text, customer_id text, amount text")]:
            meta = "_batch_id text NOT NULL, _ingested_at timestamp with time zone, _source text, _row_number bigint"
            if pg:
                cur.execute(f"CREATE TABLE {t} ({cols}, {meta}) PARTITION BY LIST (_batch_id)")
                for b in range(PARTITIONS):
                    cur.execute(f"CREATE TABLE {t}_b{b} PARTITION OF {t} FOR VALUES IN ('b{b}')")
            else:
                cur.execute(f"CREATE TABLE {t} ({cols}, {meta})")
        cur.execute(
            "INSERT INTO explore.bench_customers SELECT CAST(i AS text), 'User' || i || '@Example.com', 'Name ' || i,"
            f" {load} FROM {gen}"
        )
        cur.execute(
            f"INSERT INTO explore.bench_orders SELECT CAST(i AS text), CAST(((CAST(i AS bigint) * 7919) % {ROWS}) + 1 AS text),"
            f" CAST((i % 1000) / 10.0 AS text), {load} FROM {gen}"
        )
        cur.execute(f"CREATE TABLE chart.bench_customers AS SELECT CAST(i AS bigint) AS customer_id, {hexa} AS email,"
                    f" 'Name ' || i AS name FROM {gen}")
        cur.execute(f"CREATE TABLE chart.bench_orders AS SELECT CAST(i AS bigint) AS order_id,"
                    f" CAST(((CAST(i AS bigint) * 7919) % {ROWS}) + 1 AS bigint) AS customer_id,"
                    f" CAST((i % 1000) / 10.0 AS numeric(12,2)) AS amount FROM {gen}")
        cur.execute(f"CREATE TABLE navigate.bench_customer_value AS SELECT CAST(i AS bigint) AS customer_id,"
                    f" CAST(i % 977 AS numeric(14,2)) AS total FROM {gen}")
        if pg:
            cur.execute("ANALYZE")


def install(wh, subjects: list[int]):
    from compliance.policies import pseudonym
    from pipelines.models import Dataset
    from privacy import keys
    from privacy.models import ErasureSetting, SubjectKey

    ds = {}
    for t in TABLES:
        layer, table = t.split(".")
        ds[t], _ = Dataset.objects.update_or_create(name=f"{layer}_{table}", defaults={"layer": layer, "table": table})
    SubjectKey.objects.all().delete()
    for t, column, kind, storage in [
        ("explore.bench_customers", "email", "email", "clear"), ("explore.bench_customers", "customer_id", "customer_id", "clear"),
        ("explore.bench_orders", "customer_id", "customer_id", "clear"), ("chart.bench_customers", "email", "email", "hashed"),
        ("chart.bench_customers", "customer_id", "customer_id", "clear"), ("chart.bench_orders", "customer_id", "customer_id", "clear"),
        ("navigate.bench_customer_value", "customer_id", "customer_id", "clear"),
    ]:
        SubjectKey.objects.create(dataset=ds[t], column=column, kind=kind, storage=storage, status="confirmed")
    ErasureSetting.objects.update_or_create(dataset=ds["navigate.bench_customer_value"], defaults={"mode": "delete_rows"})
    with wh.cursor() as cur:
        for c in subjects:
            cur.execute("UPDATE chart.bench_customers SET email = %s WHERE customer_id = %s", [pseudonym(email(c).lower()), c])
    return keys


def drop_indexes(wh) -> None:
    if wh.vendor != "postgresql":
        return
    with wh.cursor() as cur:
        for (name, schema) in cur.execute(
            "SELECT indexname, schemaname FROM pg_indexes WHERE schemaname IN ('explore', 'chart', 'navigate')"
            " AND tablename LIKE 'bench_%%' AND (indexname LIKE 'dsr_%%' OR indexname LIKE 'floor_%%')"
        ).fetchall():
            cur.execute(f'DROP INDEX IF EXISTS "{schema}"."{name}"')


def create_indexes(wh) -> None:
    """Atlas's (what confirming a key creates) and the floor's natural ones."""
    from privacy import keys
    from privacy.models import SubjectKey

    for key in SubjectKey.objects.all():
        keys.ensure_index(key, wh)
    with wh.cursor() as cur:
        for name, table, expr in [
            ("floor_ec_email", "explore.bench_customers", "lower(trim(email))"),
            ("floor_ec_id", "explore.bench_customers", "trim(customer_id)"),
            ("floor_eo_id", "explore.bench_orders", "trim(customer_id)"),
            ("floor_cc_email", "chart.bench_customers", "email"),
            ("floor_cc_id", "chart.bench_customers", "customer_id"),
            ("floor_co_id", "chart.bench_orders", "customer_id"),
            ("floor_nv_id", "navigate.bench_customer_value", "customer_id"),
        ]:
            cur.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON {table} (({expr}))')
        cur.execute("ANALYZE")


def floor(wh, c: int) -> int:
    """Hand-written: the id by e-mail, then one DELETE per table, one transaction."""
    from compliance.policies import pseudonym

    mail = email(c).lower()
    removed = 0
    with wh.transaction() as cur:
        ids = [r[0] for r in cur.execute(
            "SELECT DISTINCT trim(customer_id) FROM explore.bench_customers WHERE lower(trim(email)) = %s", [mail]
        ).fetchall()]
        ints = [int(i) for i in ids]
        marks, imarks = ", ".join(["%s"] * len(ids)), ", ".join(["%s"] * len(ints))
        for sql, params in [
            (f"DELETE FROM explore.bench_customers WHERE lower(trim(email)) = %s OR trim(customer_id) IN ({marks})", [mail, *ids]),
            (f"DELETE FROM explore.bench_orders WHERE trim(customer_id) IN ({marks})", ids),
            (f"DELETE FROM chart.bench_customers WHERE email = %s OR customer_id IN ({imarks})", [pseudonym(mail), *ints]),
            (f"DELETE FROM chart.bench_orders WHERE customer_id IN ({imarks})", ints),
            (f"DELETE FROM navigate.bench_customer_value WHERE customer_id IN ({imarks})", ints),
        ]:
            cur.execute(sql, params)
            removed += max(getattr(cur.raw, "rowcount", 0) or 0, 0)
    return removed


def atlas(c: int) -> tuple[float, float, int]:
    """Atlas end to end (service.run), and its verification scan alone on the same identifiers."""
    from atlas.warehouse import get_warehouse
    from privacy import keys, search, service, verification

    req = service.verify(service.submit("erasure", {"email": [email(c)]}))
    wh = get_warehouse()
    subject, _ = search.expand(search.subject_of(req.identifiers), keys.targets(), wh)
    resolved = subject.to_json()
    started = time.perf_counter()
    req = service.run(req)
    total = time.perf_counter() - started
    assert req.status == "completed", (req.error, req.residue)
    started = time.perf_counter()
    proof = verification.scan(wh, resolved)
    scan = time.perf_counter() - started
    assert sum(p["rows_found"] for p in proof) == 0
    return total, scan, sum(e.rows_removed for e in req.erasures.all())


def measure(wh, subjects: list[int]) -> dict:
    samples = {"floor": [], "atlas": [], "atlas_verification_scan": []}
    rows = {}
    for i, (fc, ac) in enumerate(zip(subjects[0::2], subjects[1::2], strict=True)):
        order = [("floor", fc), ("atlas", ac)] if i % 2 == 0 else [("atlas", ac), ("floor", fc)]
        for name, c in order:
            if name == "floor":
                started = time.perf_counter()
                rows["floor"] = floor(wh, c)
                samples["floor"].append(time.perf_counter() - started)
            else:
                total, scan, removed = atlas(c)
                samples["atlas"].append(total)
                samples["atlas_verification_scan"].append(scan)
                rows["atlas"] = removed
    return {"samples": samples, "medians": {k: statistics.median(v) for k, v in samples.items()}, "rows_removed": rows}


def main() -> None:
    setup_django()
    from atlas.warehouse import get_warehouse

    wh = get_warehouse()
    wh.ensure_schemas()
    started = time.perf_counter()
    make_data(wh)
    setup_seconds = time.perf_counter() - started
    # Customers spread over the table; each rep erases one for the floor and one for Atlas (warm-up: first pair).
    pool = [((k * 104729) % ROWS) + 1 for k in range(1, 4 * (REPEAT + 1) + 1)]
    install(wh, pool)
    variants = {}
    drop_indexes(wh)
    floor(wh, pool[0])
    atlas(pool[1])  # warm-up
    variants["no_indexes"] = measure(wh, pool[2 : 2 + 2 * REPEAT])
    if wh.vendor == "postgresql":
        create_indexes(wh)
        floor(wh, pool[2 + 2 * REPEAT])
        atlas(pool[3 + 2 * REPEAT])  # warm-up
        variants["indexed"] = measure(wh, pool[4 + 2 * REPEAT : 4 + 4 * REPEAT])
    print(json.dumps({"engine": wh.vendor, "rows_per_table": ROWS, "tables": len(TABLES), "repeat": REPEAT,
                      "setup_seconds": setup_seconds, "variants": variants}))


if __name__ == "__main__":
    main()
