"""Small factories for pipeline tests: write a file, declare a pipeline, run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import runner
from pipelines.models import Dataset, Pipeline, PipelineRun, Source, Step


@pytest.fixture
def make_csv(tmp_path):
    def make(text: str | bytes, name: str = "data.csv") -> Path:
        path = tmp_path / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path

    return make


@pytest.fixture
def simple_pipeline(db, make_csv):
    """A three-layer pipeline over one small CSV: ingest, refine, aggregate."""

    def build(csv_text: str = "id,name,amount\n1, Ann ,10\n2,Bob,20\n3,Cy,5\n", **ingest) -> Pipeline:
        path = make_csv(csv_text)
        source = Source.objects.create(name="people", location=str(path))
        raw = Dataset.objects.create(name="raw_people", layer="explore", table="people")
        clean = Dataset.objects.create(name="people", layer="chart", table="people")
        total = Dataset.objects.create(name="people_total", layer="navigate", table="people_total")
        pipeline = Pipeline.objects.create(name="people")
        Step.objects.create(
            pipeline=pipeline, name="ingest", kind="ingest", source=source, output=raw,
            write_mode=ingest.pop("write_mode", "append"), **ingest,
        )
        Step.objects.create(
            pipeline=pipeline, name="refine", kind="refine", output=clean, position=1,
            sql="SELECT CAST(id AS integer) AS id, trim(name) AS name, CAST(amount AS numeric(12,2)) AS amount"
            " FROM explore.people",
        )
        Step.objects.create(
            pipeline=pipeline, name="total", kind="aggregate", output=total, position=2,
            sql="SELECT count(*) AS people, sum(amount) AS amount FROM chart.people",
        )
        return pipeline

    return build


def run_now(pipeline: Pipeline) -> PipelineRun:
    """Start and execute a run in this process; return it refreshed."""
    run = runner.start_run(pipeline, dispatch=False)
    runner.execute_run(run.pk)
    run.refresh_from_db()
    return run


@pytest.fixture
def ingest_pipeline(db):
    """A pipeline with one ingest step; ``source`` kwargs describe where the data is."""

    def build(*, fmt: str = "csv", table: str = "landing", step: dict | None = None, **source) -> Pipeline:
        source.setdefault("kind", Source.Kind.PATH)
        src = Source.objects.create(name=f"src_{table}", format=fmt, **source)
        src.full_clean()
        raw = Dataset.objects.create(name=f"raw_{table}", layer="explore", table=table)
        pipeline = Pipeline.objects.create(name=f"load_{table}")
        Step.objects.create(
            pipeline=pipeline, name="ingest", kind="ingest", source=src, output=raw, **{"write_mode": "append", **(step or {})}
        )
        return pipeline

    return build


def explore_rows(wh, table: str, columns: str = "*") -> list[tuple]:
    with wh.cursor() as cur:
        return cur.execute(f'SELECT {columns} FROM explore."{table}" ORDER BY _row_number').fetchall()


def quarantine_rows(wh, table: str) -> list[tuple]:
    if not wh.table_exists("explore", f"{table}__quarantine"):
        return []
    with wh.cursor() as cur:
        return cur.execute(
            f'SELECT _line_number, _reason, _raw_record FROM explore."{table}__quarantine" ORDER BY _line_number'
        ).fetchall()
