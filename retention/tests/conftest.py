"""Fixtures for retention tests: datasets with rows of known age, on the real warehouse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from atlas.tests.plugin import run_now  # noqa: F401  (``from .conftest import run_now``)
from pipelines.models import Dataset, Pipeline, Source, Step

# A fixed "now" for every test: cutoffs and boundaries are exact.
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def days_ago(days: float, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days)


@pytest.fixture
def typed_table(wh):
    """A Chart/Navigate table with a real timestamp column, its Dataset and recorded columns."""

    def build(
        rows: list[tuple[int, datetime | None]],
        *,
        layer: str = "chart",
        table: str = "events",
        ts_type: str = "timestamp with time zone",
    ) -> Dataset:
        with wh.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {wh.table(layer, table)} (id integer, happened_at {ts_type}, amount integer)"
            )
            cur.executemany(
                f"INSERT INTO {wh.table(layer, table)} (id, happened_at, amount) VALUES (%s, %s, %s)",
                [(i, ts, i * 10) for i, ts in rows],
            )
        return Dataset.objects.create(name=f"{layer}_{table}", layer=layer, table=table)

    return build


@pytest.fixture
def explore_batches(wh, make_csv):
    """An Explore dataset loaded by real ingests, one batch per file; ``ages`` set each batch's _ingested_at."""

    def build(
        files: list[str], ages: list[float], *, table: str = "visits"
    ) -> tuple[Dataset, list[str]]:
        assert len(files) == len(ages)
        raw = Dataset.objects.create(name=f"raw_{table}", layer="explore", table=table)
        pipeline = Pipeline.objects.create(name=f"load_{table}")
        folder = None
        for i, text in enumerate(files):
            path = make_csv(text, f"{table}/part{i}.csv")
            folder = path.parent
            source, _ = Source.objects.get_or_create(
                name=f"src_{table}", defaults={"location": str(folder / "*.csv")}
            )
            if i == 0:
                Step.objects.create(
                    pipeline=pipeline,
                    name="ingest",
                    kind="ingest",
                    source=source,
                    output=raw,
                    write_mode="append",
                )
            run = run_now(pipeline)
            assert run.status == "succeeded", run.error
        batches = list(
            raw.batches.filter(status="loaded")
            .order_by("created_at", "id")
            .values_list("batch_id", flat=True)
        )
        assert len(batches) == len(files)
        with wh.cursor() as cur:
            for batch, age in zip(batches, ages, strict=True):
                cur.execute(
                    f"UPDATE {wh.table('explore', table)} SET _ingested_at = %s WHERE _batch_id = %s",
                    [days_ago(age), batch],
                )
        return raw, batches

    return build


def explore_ids(wh, table: str, column: str = "id") -> list[str]:
    with wh.cursor() as cur:
        return sorted(
            r[0]
            for r in cur.execute(
                f"SELECT {wh.quote(column)} FROM {wh.table('explore', table)}"
            ).fetchall()
        )


def table_ids(wh, layer: str, table: str) -> list[int]:
    with wh.cursor() as cur:
        return sorted(
            r[0] for r in cur.execute(f"SELECT id FROM {wh.table(layer, table)}").fetchall()
        )
