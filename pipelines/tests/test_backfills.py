"""Backfills (issue 14): one run per interval, one at a time, nothing lost, failures visible and re-runnable."""

import datetime as dt

import pytest
from django.core.management import CommandError, call_command

from atlas.api.testing import assert_error
from pipelines import backfills, runner
from pipelines.backfills import BackfillRefused
from pipelines.intervals import Interval, intervals
from pipelines.models import Backfill, BackfillInterval, Pipeline, PipelineRun, RunStatus, Trigger

from .interval_fixtures import chart_rows, day

UTC = dt.UTC
Status = BackfillInterval.Status


def drive(backfill):
    """Run the backfill to its end in this process: start the next interval, execute it, repeat."""
    return backfills.run_inline(backfill)


def states(backfill):
    return list(backfill.intervals.order_by("start").values_list("status", flat=True))


# --- refused -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "end", "interval", "message"),
    [
        (day(3), day(1), "1 day", "must be after the start"),
        (day(1), day(1), "1 day", "must be after the start"),
        (day(1), day(3), "", "has no schedule; state an interval"),
        (day(1), day(3), "every tuesday", "five fields"),
        (day(1), day(3), "0 minutes", "longer than zero"),
        (day(1), day(1, 5), "1 day", "No complete interval"),
        (day(1), day(400), "1 minute", "more than 10000 intervals"),
        (dt.datetime(2024, 3, 1), day(3), "1 day", "with a time zone"),  # noqa: DTZ001  (the bad input)
    ],
)
def test_a_bad_backfill_is_refused_with_the_reason(db, start, end, interval, message):
    pipeline = Pipeline.objects.create(name="p")
    with pytest.raises(BackfillRefused, match=message):
        backfills.create_backfill(pipeline, start, end, interval=interval, dispatch=False)
    assert not Backfill.objects.exists()


def test_a_disabled_pipeline_is_not_backfilled(db):
    pipeline = Pipeline.objects.create(name="p", enabled=False)
    with pytest.raises(BackfillRefused, match="disabled"):
        backfills.create_backfill(pipeline, day(1), day(3), interval="1 day", dispatch=False)


# --- intervals -----------------------------------------------------------------------------------
def test_intervals_follow_the_crontab_or_the_stated_interval():
    assert intervals("1 day", day(1), day(3)) == [Interval(day(1), day(2)), Interval(day(2), day(3))]
    assert intervals("6 hours", day(1), day(1, 13)) == [Interval(day(1), day(1, 6)), Interval(day(1, 6), day(1, 12))]
    # the crontab's times inside the range: 02:00 each day from the 1st 00:00 to the 4th 00:00
    assert intervals("0 2 * * *", day(1), day(4)) == [Interval(day(1, 2), day(2, 2)), Interval(day(2, 2), day(3, 2))]


# --- running -------------------------------------------------------------------------------------
def test_a_backfill_runs_one_run_per_interval_each_with_its_interval(wh, events_pipeline):
    pipeline = events_pipeline()
    backfill = backfills.create_backfill(pipeline, day(1), day(4), interval="1 day", dispatch=False)
    assert backfill.intervals.count() == 3
    drive(backfill)
    assert backfill.status == Backfill.Status.SUCCEEDED and backfill.finished_at is not None
    assert states(backfill) == [Status.SUCCEEDED] * 3
    runs = list(PipelineRun.objects.filter(backfill=backfill).order_by("data_interval_start"))
    assert [(r.data_interval_start, r.data_interval_end, r.logical_date, r.trigger) for r in runs] == [
        (day(n), day(n + 1), day(n), Trigger.BACKFILL) for n in (1, 2, 3)
    ]
    rows = chart_rows(wh, "events_by_interval")
    assert [r[0] for r in rows] == list(range(1, 13))  # every event once, by the interval it fell in
    assert {r[0]: r[2] for r in rows} == {i: day((i - 1) // 4 + 1) for i in range(1, 13)}


def test_a_backfill_never_runs_beside_another_run_of_its_pipeline(wh, events_pipeline):
    pipeline = events_pipeline()
    manual = runner.start_run(pipeline, dispatch=False)  # e.g. an operator's run, still queued
    backfill = backfills.create_backfill(pipeline, day(1), day(3), interval="1 day", dispatch=False)
    assert backfills.advance(backfill, dispatch=False) is None
    assert states(backfill) == [Status.PENDING, Status.PENDING]
    runner.execute_run(manual.pk)
    drive(backfill)
    assert states(backfill) == [Status.SUCCEEDED, Status.SUCCEEDED]
    starts = [r.started_at for r in PipelineRun.objects.order_by("started_at")]
    ends = [r.finished_at for r in PipelineRun.objects.order_by("started_at")]
    assert all(ends[i] <= starts[i + 1] for i in range(len(starts) - 1))  # one after the other


def test_at_most_the_configured_number_of_backfill_runs_are_active(db, settings, events_pipeline):
    settings.ATLAS_BACKFILL_MAX_ACTIVE_RUNS = 1
    first = backfills.create_backfill(events_pipeline(name="ev_a"), day(1), day(3), interval="1 day", dispatch=False)
    second = backfills.create_backfill(events_pipeline(name="ev_b"), day(1), day(3), interval="1 day", dispatch=False)
    assert backfills.advance_backfills(dispatch=False) == 1
    assert PipelineRun.objects.active().count() == 1
    assert states(second) == [Status.PENDING, Status.PENDING]
    assert states(first)[0] == Status.ACTIVE


def test_a_failed_interval_is_visible_the_others_go_on_and_it_can_be_rerun(wh, events_pipeline):
    pipeline = events_pipeline(
        # fails for the interval starting on day 2 only (division by zero), runs for the others
        "SELECT CAST(id AS integer) / (CAST(extract(day FROM :data_interval_start) AS integer) - 2) AS q"
        " FROM explore.events"
        " WHERE CAST(ts AS timestamptz) >= :data_interval_start AND CAST(ts AS timestamptz) < :data_interval_end"
    )
    backfill = drive(backfills.create_backfill(pipeline, day(1), day(4), interval="1 day", dispatch=False))
    assert backfill.status == Backfill.Status.FAILED
    assert states(backfill) == [Status.SUCCEEDED, Status.FAILED, Status.SUCCEEDED]
    failed = backfill.intervals.get(status=Status.FAILED)
    assert failed.start == day(2) and "division by zero" in failed.error.lower() and failed.attempts == 1
    assert backfills.summary(backfill) == {**dict.fromkeys(Status.values, 0), "succeeded": 2, "failed": 1}

    step = pipeline.steps.get(name="window")  # the operator fixes the step, then re-runs what failed
    step.sql = step.sql.replace("- 2)", "- 0)")
    step.save()
    assert backfills.rerun_failed(backfill, dispatch=False) == 1
    assert backfill.status == Backfill.Status.RUNNING
    drive(backfill)
    assert backfill.status == Backfill.Status.SUCCEEDED
    assert states(backfill) == [Status.SUCCEEDED] * 3
    assert backfill.intervals.get(start=day(2)).attempts == 2


def test_an_interval_whose_callback_was_lost_is_caught_up_by_the_sweep(wh, events_pipeline):
    pipeline = events_pipeline()
    backfill = backfills.create_backfill(pipeline, day(1), day(3), interval="1 day", dispatch=False)
    run = backfills.advance(backfill, dispatch=False)
    runner.execute_run(run.pk)  # in a test transaction: the run's on-commit callback never fires
    assert states(backfill) == [Status.ACTIVE, Status.PENDING]
    assert backfills.advance_backfills(dispatch=False) == 1  # beat's sweep
    assert states(backfill) == [Status.SUCCEEDED, Status.ACTIVE]


def _killed(run, attempt=1):
    """The run's worker died mid-run: running, its heartbeat long silent."""
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, attempt=attempt, heartbeat_at=day(1))


def test_a_run_killed_under_a_backfill_is_resumed_and_its_interval_succeeds(wh, settings, events_pipeline):
    pipeline = events_pipeline()
    backfill = backfills.create_backfill(pipeline, day(1), day(3), interval="1 day", dispatch=False)
    run = backfills.advance(backfill, dispatch=False)
    _killed(run)
    assert runner.reap_stale_runs() == 1  # queued again as its next attempt
    runner.execute_run(run.pk)
    drive(backfill)
    assert states(backfill) == [Status.SUCCEEDED, Status.SUCCEEDED]
    run.refresh_from_db()
    assert run.attempt == 2


def test_a_run_lost_past_its_attempts_leaves_its_interval_failed_and_rerunnable(wh, settings, events_pipeline):
    settings.ATLAS_RUN_MAX_ATTEMPTS = 1
    pipeline = events_pipeline()
    backfill = backfills.create_backfill(pipeline, day(1), day(3), interval="1 day", dispatch=False)
    run = backfills.advance(backfill, dispatch=False)
    _killed(run)
    assert runner.reap_stale_runs() == 1
    drive(backfill)
    assert states(backfill) == [Status.FAILED, Status.SUCCEEDED]
    assert "stopped reporting" in backfill.intervals.get(start=day(1)).error
    assert backfills.rerun_failed(backfill, dispatch=False) == 1
    drive(backfill)
    assert states(backfill) == [Status.SUCCEEDED, Status.SUCCEEDED]


def test_cancelling_a_backfill_cancels_what_is_left(wh, events_pipeline):
    pipeline = events_pipeline()
    backfill = backfills.create_backfill(pipeline, day(1), day(4), interval="1 day", dispatch=False)
    run = backfills.advance(backfill, dispatch=False)
    assert backfills.cancel_backfill(backfill) == 2
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert backfill.status == Backfill.Status.CANCELLED
    assert states(backfill) == [Status.CANCELLED] * 3
    assert backfills.advance(backfill, dispatch=False) is None
    with pytest.raises(BackfillRefused, match="already ended"):
        backfills.cancel_backfill(backfill)


@pytest.mark.django_db(transaction=True)
def test_a_long_backfill_runs_to_its_end_on_its_own_without_recursion(events_pipeline):
    """Embedded (runs execute inline on commit), each run's end starts the next: a loop, not a recursion."""
    import sys

    pipeline = events_pipeline()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(600)  # a recursion through 12 runs would need far more frames
    try:
        backfill = backfills.create_backfill(pipeline, day(1), day(4), interval="6 hours")
    finally:
        sys.setrecursionlimit(limit)
    backfill.refresh_from_db()
    assert backfill.status == Backfill.Status.SUCCEEDED, backfills.summary(backfill)
    assert backfill.intervals.count() == 12
    assert PipelineRun.objects.filter(backfill=backfill, status=RunStatus.SUCCEEDED).count() == 12


# --- the doors -----------------------------------------------------------------------------------
def test_manage_py_backfill_runs_the_range_and_reports(wh, events_pipeline, capsys):
    pipeline = events_pipeline()
    call_command("backfill", pipeline.name, "--start", "2024-03-01", "--end", "2024-03-03", "--interval", "1 day")
    out = capsys.readouterr().out
    backfill = Backfill.objects.get()
    assert states(backfill) == [Status.SUCCEEDED, Status.SUCCEEDED]
    assert f"Backfill #{backfill.pk}" in out and "2 intervals" in out and "succeeded" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--start", "2024-03-01", "--end", "2024-03-02"], "No pipeline named 'nope'"),
        (["events", "--start", "yesterday", "--end", "2024-03-02"], "Invalid --start"),
        (["events", "--start", "2024-03-02", "--end", "2024-03-01", "--interval", "1 day"], "must be after"),
    ],
)
def test_manage_py_backfill_refuses_bad_input(db, events_pipeline, args, message):
    events_pipeline()
    with pytest.raises(CommandError, match=message):
        call_command("backfill", *args)


# --- the API -------------------------------------------------------------------------------------
@pytest.fixture
def api(db):
    from atlas.api.testing import token_client, user_with_role

    return token_client(user_with_role("Operator", "ops"))


def test_the_api_creates_a_backfill_shows_its_intervals_and_reruns_failures(wh, api, events_pipeline,
                                                                           django_capture_on_commit_callbacks):
    pipeline = events_pipeline()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/backfills/", {"pipeline": pipeline.pk, "start": "2024-03-01T00:00:00Z",
                                                    "end": "2024-03-03T00:00:00Z", "interval": "1 day"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    backfill = Backfill.objects.get(pk=body["id"])
    assert [(i["start"], i["status"]) for i in body["intervals"]] == [
        ("2024-03-01T00:00:00Z", "pending"), ("2024-03-02T00:00:00Z", "pending")]
    drive(backfill)
    detail = api.get(f"/api/v1/backfills/{backfill.pk}/").json()
    assert detail["status"] == "succeeded" and detail["counts"]["succeeded"] == 2
    run = api.get(f"/api/v1/runs/{detail['intervals'][0]['run']}/").json()
    assert (run["data_interval_start"], run["data_interval_end"], run["backfill"], run["trigger"]) == (
        "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z", backfill.pk, "backfill")
    BackfillInterval.objects.filter(backfill=backfill, start=day(2)).update(status=Status.FAILED)
    Backfill.objects.filter(pk=backfill.pk).update(status=Backfill.Status.FAILED)
    with django_capture_on_commit_callbacks(execute=False):
        again = api.post(f"/api/v1/backfills/{backfill.pk}/rerun_failed/").json()
    assert again["status"] == "running" and [i["status"] for i in again["intervals"]] == ["succeeded", "pending"]
    assert api.post(f"/api/v1/backfills/{backfill.pk}/cancel/").json()["status"] == "cancelled"
    assert_error(api.post(f"/api/v1/backfills/{backfill.pk}/cancel/"), 409, "backfill_finished")


def test_the_api_refuses_a_bad_backfill_with_the_reason(api, events_pipeline):
    pipeline = events_pipeline()
    response = api.post("/api/v1/backfills/", {"pipeline": pipeline.pk, "start": "2024-03-01T00:00:00Z",
                                                "end": "2024-03-03T00:00:00Z"}, format="json")
    assert "has no schedule" in assert_error(response, 409, "backfill_refused")["message"]
    assert not Backfill.objects.exists()


def test_an_analyst_can_read_backfills_but_not_start_one(api, events_pipeline):
    from atlas.api.testing import token_client, user_with_role

    pipeline = events_pipeline()
    analyst = token_client(user_with_role("Analyst", "ana"))
    response = analyst.post("/api/v1/backfills/", {"pipeline": pipeline.pk, "start": "2024-03-01T00:00:00Z",
                                                    "end": "2024-03-03T00:00:00Z", "interval": "1 day"}, format="json")
    assert_error(response, 403, "permission_denied")
    assert analyst.get("/api/v1/backfills/").status_code == 200


# --- the admin -----------------------------------------------------------------------------------
def test_the_admin_starts_a_backfill_and_shows_its_intervals(wh, admin_client, events_pipeline,
                                                            django_capture_on_commit_callbacks):
    pipeline = events_pipeline()
    assert admin_client.get("/admin/pipelines/backfill/add/").status_code == 200
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post("/admin/pipelines/backfill/add/", {
            "pipeline": pipeline.pk, "start_0": "2024-03-01", "start_1": "00:00:00",
            "end_0": "2024-03-03", "end_1": "00:00:00", "interval": "1 day"})
    assert response.status_code == 302, response.content.decode()[:3000]
    backfill = Backfill.objects.get()
    assert (backfill.interval, backfill.intervals.count()) == ("1 day", 2)
    drive(backfill)
    page = admin_client.get(f"/admin/pipelines/backfill/{backfill.pk}/change/").content.decode()
    assert "2 succeeded" in page and "run #" in page
    run = PipelineRun.objects.filter(backfill=backfill).order_by("data_interval_start").first()
    run_page = admin_client.get(f"/admin/pipelines/pipelinerun/{run.pk}/change/").content.decode()
    assert "Data interval" in run_page and "2024-03-01T00:00:00+00:00" in run_page
    assert admin_client.get("/admin/pipelines/backfill/").status_code == 200


def test_the_admin_refuses_a_bad_backfill_with_the_reason(db, admin_client, events_pipeline):
    pipeline = events_pipeline()
    response = admin_client.post("/admin/pipelines/backfill/add/", {
        "pipeline": pipeline.pk, "start_0": "2024-03-01", "start_1": "00:00:00",
        "end_0": "2024-03-03", "end_1": "00:00:00", "interval": ""})
    assert response.status_code == 200
    assert "has no schedule; state an interval" in response.content.decode()
    assert not Backfill.objects.exists()


def test_the_admin_reruns_failed_intervals_and_cancels(db, admin_client, events_pipeline):
    backfill = backfills.create_backfill(events_pipeline(), day(1), day(3), interval="1 day", dispatch=False)
    backfill.intervals.update(status=Status.FAILED, error="boom")
    Backfill.objects.filter(pk=backfill.pk).update(status=Backfill.Status.FAILED)
    admin_client.post("/admin/pipelines/backfill/", {"action": "rerun_failed", "_selected_action": [backfill.pk]})
    assert states(backfill) == [Status.PENDING, Status.PENDING]
    admin_client.post("/admin/pipelines/backfill/", {"action": "cancel", "_selected_action": [backfill.pk]})
    backfill.refresh_from_db()
    assert backfill.status == Backfill.Status.CANCELLED and states(backfill) == [Status.CANCELLED] * 2
