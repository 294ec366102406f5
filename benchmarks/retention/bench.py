"""One engine's measurements (run in a child process with that engine's settings).

An Explore table of ``BENCH_ROWS`` rows in ``BENCH_BATCHES`` batches, one per
"month" of ingestion (batch i was ingested i×30 days ago), shaped as Atlas
ingests it (PostgreSQL: LIST-partitioned by ``_batch_id``, one partition per
batch; the batch ledger filled). A 365-day policy on ``_ingested_at`` expires
the batches older than a year. Expiry destroys data, so the table is rebuilt
(untimed) before every timed call; contenders are interleaved.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from datetime import timedelta

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "24"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
PERIOD_DAYS = 365
SCHEMA, TABLE = "explore", "bench_events"


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, skip_checks=True)


def batch_id(i: int) -> str:
    return f"b{i:04d}"


def build(wh, now) -> None:
    """The Explore table, its batches and their ledger rows, as ingest leaves them."""
    t = wh.table(SCHEMA, TABLE)
    per = ROWS // BATCHES
    ledger = wh.table("atlas", "loaded_batches")
    cols = (
        "customer text, email text, amount text, _batch_id text NOT NULL,"
        " _ingested_at timestamp with time zone NOT NULL, _source text, _row_number bigint"
    )
    with wh.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {t}")
        cur.execute(f"DELETE FROM {ledger} WHERE dataset = %s", [f"{SCHEMA}.{TABLE}"])
        if wh.vendor == "postgresql":
            cur.execute(f'CREATE TABLE {t} ({cols}) PARTITION BY LIST ("_batch_id")')
        else:
            cur.execute(f"CREATE TABLE {t} ({cols})")
        gen = (
            "generate_series(1, %d) AS g(i)"
            if wh.vendor == "postgresql"
            else "range(1, %d + 1) AS g(i)"
        )
        for i in range(BATCHES):
            b = batch_id(i)
            select = (
                f"SELECT 'c' || i, 'user' || i || '@example.com', CAST(i AS text), {wh.literal(b)},"
                f" CAST(%s AS timestamp with time zone), 'part{i}.csv', i FROM {gen % per}"
            )
            when = now - timedelta(days=30 * i)
            if wh.vendor == "postgresql":
                part = wh.table(SCHEMA, f"{TABLE}__{b}")
                cur.execute(f"CREATE TABLE {part} (LIKE {t})")
                cur.execute(f"INSERT INTO {part} {select}", [when])
                cur.execute(
                    f"ALTER TABLE {t} ATTACH PARTITION {part} FOR VALUES IN ({wh.literal(b)})"
                )
            else:
                cur.execute(f"INSERT INTO {t} {select}", [when])
            cur.execute(
                f"INSERT INTO {ledger} (dataset, checksum, batch_id, source, rows_loaded, loaded_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                [f"{SCHEMA}.{TABLE}", f"sum{i}", b, f"part{i}.csv", per, when],
            )
        if wh.vendor == "postgresql":
            cur.execute(f"ANALYZE {t}")


def expired_batches(now) -> list[str]:
    cutoff = now - timedelta(days=PERIOD_DAYS)
    return [batch_id(i) for i in range(BATCHES) if now - timedelta(days=30 * i) < cutoff]


def main() -> None:
    setup_django()
    from django.utils import timezone

    from atlas.warehouse import get_warehouse
    from pipelines.models import Dataset
    from retention import services
    from retention.models import RetentionPolicy

    wh = get_warehouse()
    wh.ensure_schemas()
    now = timezone.now()
    cutoff = now - timedelta(days=PERIOD_DAYS)
    build(wh, now)
    ds, _ = Dataset.objects.update_or_create(
        name="bench_events", defaults={"layer": SCHEMA, "table": TABLE}
    )
    RetentionPolicy.objects.filter(dataset=ds).delete()
    policy = services.save_policy(
        RetentionPolicy(dataset=ds, column="_ingested_at", period_days=PERIOD_DAYS)
    )
    t = wh.table(SCHEMA, TABLE)
    expected = len(expired_batches(now)) * (ROWS // BATCHES)

    def delete_where():
        """What a cron job or a dbt post-hook does: one DELETE on the timestamp."""
        with wh.transaction() as cur:
            cur.execute(f"DELETE FROM {t} WHERE _ingested_at < %s", [cutoff])

    def drop_partitions():
        """The floor on PostgreSQL: the expired partitions named, detached and dropped (nothing looked up)."""
        with wh.transaction() as cur:
            for b in expired_batches(now):
                part = wh.table(SCHEMA, f"{TABLE}__{b}")
                cur.execute(f"ALTER TABLE {t} DETACH PARTITION {part}")
                cur.execute(f"DROP TABLE {part}")

    def atlas():
        run = services.apply_policy(policy, trigger="cli", now=now)
        assert run.status == "succeeded" and run.rows_removed == expected, (
            run.status,
            run.rows_removed,
            run.error,
        )

    contenders = {"delete_where": delete_where, "atlas": atlas}
    if wh.vendor == "postgresql":
        contenders["floor_drop_partitions"] = drop_partitions
    floor = "floor_drop_partitions" if wh.vendor == "postgresql" else "delete_where"
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for rep in range(
        REPEAT + 1
    ):  # interleaved, each on a freshly built table; round 0 warms up (untimed)
        for name, fn in contenders.items():
            build(wh, now)
            started = time.perf_counter()
            fn()
            took = time.perf_counter() - started
            assert wh.row_count(SCHEMA, TABLE) == ROWS // BATCHES * BATCHES - expected, name
            if rep:
                times[name].append(took)
    medians = {k: statistics.median(v) for k, v in times.items()}
    medians["floor"] = medians[floor]
    last = policy.runs.order_by("-id").first()
    json.dump(
        {
            "engine": wh.vendor,
            "rows": ROWS // BATCHES * BATCHES,
            "batches": BATCHES,
            "expired_rows": expected,
            "expired_batches": len(expired_batches(now)),
            "repeat": REPEAT,
            "floor": floor,
            "atlas_method": last.method,
            "medians": medians,
            "runs": times,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
