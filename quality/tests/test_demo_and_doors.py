"""The demo's gates end to end, and the doors: the command and the freshness task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from demo.install import PIPELINE
from pipelines.models import PARTIALLY_FAILED, Dataset, Pipeline, RunStatus
from pipelines.tests.conftest import run_now
from quality.models import Check, CheckResult, CheckRun
from quality.status import dataset_status
from quality.tasks import check_freshness_task


@pytest.mark.step_hooks  # the default hooks: this test is about what they do
def test_demo_quarantines_orders_without_status_and_blocks_a_bad_aggregate(wh, settings):
    # the default hooks: compliance, the tombstone guard, the quality gate and lineage, as `make demo` runs
    from pipelines.hooks import hook_paths

    assert "quality.hooks.QualityGate" in hook_paths()
    call_command("load_demo", "--rows", "600")
    pipeline = Pipeline.objects.get(name=PIPELINE)
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    with wh.cursor() as cur:
        staged_nulls = cur.execute('SELECT count(*) FROM chart."orders__quarantine"').fetchone()[0]
        published_nulls = cur.execute("SELECT count(*) FROM chart.orders WHERE status IS NULL").fetchone()[0]
    refine = run.step_runs.get(step_name="refine_orders")
    assert staged_nulls > 0 and published_nulls == 0 and refine.rows_rejected == staged_nulls
    assert CheckResult.objects.filter(check_name="status_present", outcome="warn").count() == 1
    assert CheckRun.objects.filter(step_run__run=run).count() == 7  # one per dataset with checks
    # checks at every layer ran, and the orders' status is what the dataset's status shows
    layers = set(CheckRun.objects.filter(step_run__run=run).values_list("dataset__layer", flat=True))
    assert layers == {"explore", "chart", "navigate"}
    assert dataset_status(Dataset.objects.get(name="orders"))["status"] == "warned"
    assert dataset_status(Dataset.objects.get(name="navigate_daily_revenue"))["status"] == "passed"

    # An operator breaks the aggregate: the fail check blocks it, the published table stays.
    before = wh.row_count("navigate", "daily_revenue")
    step = pipeline.steps.get(name="daily_revenue")
    step.sql = step.sql.replace("sum(i.line_amount) AS revenue", "-sum(i.line_amount) AS revenue")
    step.save()
    failed = run_now(pipeline)
    # The blocked aggregate fails alone: the demo's other branches (customers) go on, as in dbt build.
    assert failed.status == PARTIALLY_FAILED
    assert "revenue_not_negative" in failed.step_runs.get(step_name="daily_revenue").error
    assert wh.row_count("navigate", "daily_revenue") == before
    with wh.cursor() as cur:
        assert cur.execute("SELECT min(revenue) FROM navigate.daily_revenue").fetchone()[0] >= 0
    assert dataset_status(Dataset.objects.get(name="navigate_daily_revenue"))["status"] == "failed"


def test_check_quality_command_prints_results_and_fails_on_a_failing_check(table, check, capsys):
    ds = table([(1, None, 1, "x", datetime(2026, 1, 1))])
    check(ds, "not_null", ["id"])
    call_command("check_quality", "items")
    assert "pass" in capsys.readouterr().out
    check(ds, "not_null", ["name"], severity="fail")
    with pytest.raises(CommandError, match="failed"):
        call_command("check_quality", "chart.items")
    assert "1 failing" in capsys.readouterr().out
    with pytest.raises(CommandError, match="Unknown dataset"):
        call_command("check_quality", "nope")


def test_freshness_task_checks_published_tables(table, check):
    old = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=5)
    ds = table([(1, "a", 1, "x", old)])
    check(ds, "freshness", ["seen_at"], max_age_hours=1, severity="fail")
    check(ds, "not_null", ["name"])
    ids = check_freshness_task.delay().get()
    run = CheckRun.objects.get(pk=ids[0])
    assert run.trigger == "schedule" and run.status == CheckRun.Status.FAILED
    assert [r.check_name for r in run.results.all()] == ["freshness_seen_at"]
    assert Check.objects.count() == 2
