"""``--full-refresh`` as dbt's: files loaded again, appended and merged tables rebuilt (issue 19)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from atlas.api.testing import token_client, user_with_role
from pipelines import runner
from pipelines.models import LoadedBatch, PipelineRun, RunStatus

from .conftest import explore_rows, run_now


def people(wh, layer="chart"):
    with wh.cursor() as cur:
        return sorted(tuple(str(v).strip() for v in r) for r in cur.execute(f"SELECT id, name FROM {layer}.people").fetchall())


@pytest.fixture
def appending(simple_pipeline):
    """ingest appends files; refine appends every row of explore.people on each run (an incremental model)."""
    pipeline = simple_pipeline()
    pipeline.steps.filter(name="refine").update(write_mode="append")
    return pipeline


@pytest.mark.up_to_date
def test_an_unchanged_file_is_skipped_but_a_full_refresh_loads_it_again_once(wh, appending):
    assert run_now(appending).status == RunStatus.SUCCEEDED
    unchanged = run_now(appending)  # nothing changed: the appending refine is up to date, adds nothing (issue 20)
    assert unchanged.step_runs.get(step_name="refine").details["up_to_date"]
    assert len(people(wh)) == 3
    second = run_now(appending, force=True)
    assert second.step_runs.get(step_name="ingest").status == RunStatus.SKIPPED
    assert len(people(wh)) == 6  # the forced appending refine added the same rows again: what a full refresh repairs
    first_batch = {r[0] for r in explore_rows(wh, "people", "_batch_id")}

    refreshed = run_now(appending, full_refresh=True)
    assert refreshed.status == RunStatus.SUCCEEDED and refreshed.full_refresh
    assert refreshed.step_runs.get(step_name="ingest").status == RunStatus.SUCCEEDED
    rows = explore_rows(wh, "people", "id, _batch_id")
    assert sorted(r[0] for r in rows) == ["1", "2", "3"]  # replaced, not appended to
    assert {r[1] for r in rows} != first_batch  # a new batch
    assert people(wh) == [("1", "Ann"), ("2", "Bob"), ("3", "Cy")]  # rebuilt
    assert LoadedBatch.objects.filter(status=LoadedBatch.Status.LOADED).count() == 2

    after = run_now(appending)  # a normal run after it: the file is known again, skipped
    assert after.step_runs.get(step_name="ingest").status == RunStatus.SKIPPED


def test_full_refresh_from_the_command_and_the_api(wh, appending, capsys):
    call_command("run_pipeline", "people")
    call_command("run_pipeline", "people", "--full-refresh", "--select", "ingest+1")
    run = PipelineRun.objects.latest("pk")
    assert run.full_refresh and run.status == RunStatus.SUCCEEDED
    assert sorted(run.step_runs.values_list("step_name", flat=True)) == ["ingest", "refine"]
    assert len(people(wh)) == 3

    api = token_client(user_with_role("Operator", "ops"))
    response = api.post(f"/api/v1/pipelines/{appending.pk}/run/", {"full_refresh": True}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["full_refresh"] is True
    bad = api.post(f"/api/v1/pipelines/{appending.pk}/run/", {"full_refresh": "maybe"}, format="json")
    assert bad.status_code == 400


def test_rerunning_what_a_full_refresh_left_failed_is_still_a_full_refresh(wh, appending):
    run_now(appending)
    appending.steps.filter(name="total").update(sql="SELECT CAST(name AS integer) AS people FROM chart.people")
    failed = run_now(appending, full_refresh=True)
    assert failed.status in (RunStatus.FAILED, runner.PARTIALLY_FAILED)
    appending.steps.filter(name="total").update(sql="SELECT count(*) AS people FROM chart.people")
    again = runner.rerun_failed(failed, dispatch=False)
    assert again.full_refresh
