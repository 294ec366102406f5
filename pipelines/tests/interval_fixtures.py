"""Test material for run parameters and backfills: events spread over days, a step reading its interval."""

import datetime as dt

import pytest

from pipelines import runner
from pipelines.intervals import Interval
from pipelines.models import Dataset, Pipeline, Source, Step

UTC = dt.UTC
DAY1 = dt.datetime(2024, 3, 1, tzinfo=UTC)


def day(n: int, hour: int = 0) -> dt.datetime:
    return DAY1 + dt.timedelta(days=n - 1, hours=hour)


def events_csv(days: int = 3, per_day: int = 4) -> str:
    lines, ident = ["id,ts,amount"], 0
    for d in range(1, days + 1):
        for k in range(per_day):
            ident += 1
            ts = day(d, hour=k * 5)
            lines.append(f"{ident},{ts.isoformat().replace('+00:00', 'Z')},{ident * 10 + d}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def events_pipeline(db, make_csv):
    """Events over three days; the refine step keeps the rows of the run's data interval."""

    def build(sql: str | None = None, *, name: str = "events", schedule: str = "") -> Pipeline:
        path = make_csv(events_csv(), name=f"{name}.csv")
        source = Source.objects.create(name=f"{name}_src", location=str(path))
        raw = Dataset.objects.create(name=f"raw_{name}", layer="explore", table=name)
        out = Dataset.objects.create(name=f"{name}_by_interval", layer="chart", table=f"{name}_by_interval")
        pipeline = Pipeline.objects.create(name=name, schedule=schedule)
        Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=source, output=raw,
                            write_mode="append")
        step = Step(
            pipeline=pipeline, name="window", kind="refine", output=out, position=1, write_mode="append",
            sql=sql or (
                "SELECT CAST(id AS integer) AS id, CAST(amount AS integer) AS amount,"
                " :data_interval_start AS interval_start"
                f" FROM explore.{name}"
                " WHERE CAST(ts AS timestamptz) >= :data_interval_start"
                " AND CAST(ts AS timestamptz) < :data_interval_end"
            ),
        )
        step.full_clean()
        step.save()
        return pipeline

    return build


def run_interval(pipeline, start, end, **kwargs):
    run = runner.start_run(pipeline, dispatch=False, interval=Interval(start, end), **kwargs)
    runner.execute_run(run.pk)
    run.refresh_from_db()
    return run


def chart_rows(wh, table):
    with wh.cursor() as cur:
        return cur.execute(f"SELECT * FROM chart.{table} ORDER BY 1").fetchall()


