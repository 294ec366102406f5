"""The pipelines' part of the overview: health, next scheduled run, runs per day by outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from atlas.overview import BAD, OK, WARN
from pipelines.models import PARTIALLY_FAILED, Pipeline, PipelineRun
from pipelines.overview import health, next_run, pipeline_rows, runs_per_day

NOW = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)


def test_next_run_follows_the_crontab():
    assert next_run("0 2 * * *", NOW) == datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
    assert next_run("*/15 * * * *", NOW) == datetime(2026, 12, 3, 12, 45, tzinfo=UTC)
    assert next_run("", NOW) is None


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], (OK, "never run")),
        (["succeeded", "failed"], (OK, "healthy")),
        (["failed", "succeeded"], (BAD, "failing")),
        (["failed", "failed", "failed", "succeeded"], (BAD, "failing (3 runs in a row)")),
        (["running", "failed", "failed"], (BAD, "failing (2 runs in a row)")),
        (["running", "failed", "succeeded"], (BAD, "failing")),  # judged on the finished runs
        (["running"], (OK, "first run in progress")),
        ([PARTIALLY_FAILED], (WARN, "partially failing")),
        (["cancelled"], (WARN, "last run cancelled")),
    ],
)
def test_health_from_the_latest_runs(statuses, expected):
    assert health(statuses, enabled=True) == expected


def test_runs_per_day_by_outcome_and_rows(db):
    pipeline = Pipeline.objects.create(name="p")
    Pipeline.objects.create(name="q", enabled=False)
    runs = [(0, "succeeded"), (0, "failed"), (1, "succeeded"), (1, "succeeded"), (2, PARTIALLY_FAILED), (20, "failed")]
    for i, (days_ago, status) in enumerate(runs):  # the first is the newest
        PipelineRun.objects.create(pipeline=pipeline, trigger="manual", status=status,
                                   created_at=NOW - timedelta(days=days_ago, minutes=i + 1))
    labels, counts = runs_per_day(NOW, days=3)
    assert [d.isoformat() for d in labels] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert counts["succeeded"] == [0, 2, 1] and counts["failed"] == [0, 0, 1] and counts[PARTIALLY_FAILED] == [1, 0, 0]
    rows = {r["pipeline"].name: r for r in pipeline_rows(NOW)}
    assert rows["p"]["health"] == "healthy" and rows["p"]["last"].status == "succeeded"
    assert (rows["q"]["level"], rows["q"]["health"], rows["q"]["last"]) == (OK, "disabled, never run", None)
