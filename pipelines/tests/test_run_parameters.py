"""Run parameters in step SQL (issue 14): allowlisted names, bound by the driver, never formatted."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from atlas.sql import SQLRefused, validate_expression
from atlas.sql.params import RUN_PARAMETERS, render
from atlas.warehouse import WarehouseError
from pipelines import runner
from pipelines.intervals import Interval, default_interval, scheduled_interval
from pipelines.models import Dataset, Pipeline, Step, Trigger

from .interval_fixtures import DAY1, chart_rows, day, run_interval

UTC = dt.UTC


# --- refused at save -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT a FROM explore.t WHERE ts > :since", "Unknown parameter :since; the run parameters are"),
        ("SELECT a FROM explore.t WHERE ts > ?", "Positional parameters"),
        ("SELECT a FROM explore.t WHERE ts > %s", "Positional parameters"),
        ("SELECT a FROM explore.t WHERE ts > $1", "not allowed"),
    ],
)
def test_an_unknown_or_unnamed_parameter_is_refused_when_the_step_is_saved(db, sql, message):
    Dataset.objects.create(name="t", layer="explore", table="t")
    out = Dataset.objects.create(name="out", layer="chart", table="out")
    pipeline = Pipeline.objects.create(name="p")
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace("$", r"\$")):
        Step(pipeline=pipeline, name="s", kind="refine", output=out, sql=sql).full_clean()


def test_the_refusal_names_every_allowed_parameter(db):
    Dataset.objects.create(name="t", layer="explore", table="t")
    out = Dataset.objects.create(name="out", layer="chart", table="out")
    with pytest.raises(ValidationError) as info:
        Step(pipeline=Pipeline.objects.create(name="p"), name="s", kind="refine", output=out,
             sql="SELECT a FROM explore.t WHERE ts > :start_date").full_clean()
    for name in RUN_PARAMETERS:
        assert f":{name}" in str(info.value)


def test_parameters_are_refused_in_a_custom_check_condition():
    with pytest.raises(SQLRefused, match=r"Parameters \(:name\) are allowed only in a step's SELECT"):
        validate_expression("ts >= :data_interval_start")


# --- bound, never formatted ----------------------------------------------------------------------
HOSTILE = [
    "2024-01-01'); DROP TABLE explore.victim; --",
    "' OR 1=1 --",
    "%(data_interval_end)s",
    "$data_interval_end",
    "2024-01-01 00:00:00+00 ; SELECT pg_sleep(5)",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_never_reaches_the_sql_text(wh, value):
    sql = wh.transpile("SELECT a FROM explore.t WHERE ts >= :data_interval_start AND b LIKE 'x%'")
    text, bound = wh.bind_parameters(sql, {"data_interval_start": value, "logical_date": value})
    assert value not in text
    assert bound == {"data_interval_start": value}  # only the names the SQL uses


def test_psycopg_text_doubles_every_other_percent_sign():
    text, bound = render("SELECT a % 2, 'x%' FROM t WHERE ts >= :logical_date", {"logical_date": DAY1})
    assert text == "SELECT a %% 2, 'x%%' FROM t WHERE ts >= CAST(%(logical_date)s AS TIMESTAMPTZ)"
    assert bound == {"logical_date": DAY1}
    assert render("SELECT a % 2 FROM t", {"logical_date": DAY1}) == ("SELECT a % 2 FROM t", None)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_bound_on_the_warehouse_injects_nothing(wh, value):
    wh.ensure_schemas()
    with wh.cursor() as cur:
        cur.execute("CREATE TABLE explore.victim AS SELECT 1 AS id")
    sql = wh.transpile("SELECT id FROM explore.victim WHERE CAST(:data_interval_start AS text) <> ''")
    try:
        wh.stage_operator_select("chart", "probe__stg1", sql, params={"data_interval_start": value})
    except WarehouseError as exc:  # the engine refuses the text as a timestamp: it was a value
        assert "timestamp" in str(exc).lower(), exc
        assert value not in str(exc)  # and errors never carry the value
    assert wh.table_exists("explore", "victim")
    with wh.cursor() as cur:
        assert cur.execute("SELECT id FROM explore.victim").fetchall() == [(1,)]
    wh.drop_table("chart", "probe__stg1")


def test_a_percent_sign_and_a_lookalike_literal_stay_literal_beside_parameters(wh, events_pipeline):
    pipeline = events_pipeline(
        "SELECT CAST(id AS integer) AS id, '50%' AS pct, ':data_interval_start' AS lit,"
        " CAST(id AS integer) % 3 AS m FROM explore.events"
        " WHERE CAST(ts AS timestamptz) >= :data_interval_start AND CAST(ts AS timestamptz) < :data_interval_end"
    )
    run = run_interval(pipeline, day(1), day(2))
    assert run.status == "succeeded", run.error
    assert chart_rows(wh, "events_by_interval") == [(i, "50%", ":data_interval_start", i % 3) for i in (1, 2, 3, 4)]


def test_each_run_reads_its_own_interval(wh, events_pipeline):
    pipeline = events_pipeline()
    for n in (2, 1):
        run = run_interval(pipeline, day(n), day(n + 1))
        assert run.status == "succeeded", run.error
        assert (run.data_interval_start, run.data_interval_end, run.logical_date) == (day(n), day(n + 1), day(n))
    rows = chart_rows(wh, "events_by_interval")
    assert [(r[0], r[1]) for r in rows] == [(i, i * 10 + (1 if i <= 4 else 2)) for i in range(1, 9)]
    assert {r[0]: r[2] for r in rows} == {i: day(1 if i <= 4 else 2) for i in range(1, 9)}
    step_run = pipeline.runs.first().step_runs.get(step_name="window")
    assert any(f in step_run.sql for f in (":data_interval_start", "$data_interval_start", "%(data_interval_start)s"))
    assert "2024" not in step_run.sql


def test_a_run_without_the_interval_its_sql_uses_fails_with_a_clear_message(wh, events_pipeline):
    pipeline = events_pipeline()
    run = runner.start_run(pipeline, dispatch=False)
        # a run stored without an interval (created before issue 14)
    type(run).objects.filter(pk=run.pk).update(data_interval_start=None, data_interval_end=None, logical_date=None)
    runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "which this run does not set" in run.error


def test_a_step_without_parameters_runs_its_sql_unchanged(wh, simple_pipeline, monkeypatch):
    pipeline = simple_pipeline()
    calls = []
    original = type(wh).stage_operator_select

    def spy(self, schema, name, sql, **kwargs):
        calls.append((sql, kwargs))
        return original(self, schema, name, sql, **kwargs)

    monkeypatch.setattr(type(wh), "stage_operator_select", spy)
    run = runner.start_run(pipeline, dispatch=False)
    runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    refine = pipeline.steps.get(name="refine")
    sql, kwargs = calls[0]
    assert kwargs == {"readable": True}  # no parameters passed to the driver
    assert sql == run.step_runs.get(step_name="refine").sql
    if wh.dialect == "postgres":  # run as written, not regenerated
        assert sql == refine.sql


# --- where the interval comes from ---------------------------------------------------------------
def test_a_scheduled_run_covers_the_interval_that_just_ended():
    at = dt.datetime(2024, 3, 5, 2, 0, 7, tzinfo=UTC)
    assert scheduled_interval("0 2 * * *", at) == Interval(day(4, 2), day(5, 2))
    assert scheduled_interval("0 2 * * *", at - dt.timedelta(minutes=5)) == Interval(day(3, 2), day(4, 2))
    # weekdays only: Monday's run covers Friday to Monday
    monday = dt.datetime(2024, 3, 4, 6, 30, tzinfo=UTC)
    assert scheduled_interval("30 6 * * 1-5", monday) == Interval(day(1, 6) + dt.timedelta(minutes=30), monday)


def test_a_manual_trigger_defaults_to_now():
    now = dt.datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
    assert default_interval("", Trigger.MANUAL, now) == (now, Interval(now, now))
    logical, interval = default_interval("0 * * * *", Trigger.API, now)
    assert logical == now and interval == Interval(now - dt.timedelta(hours=1), now)
    assert default_interval("0 * * * *", Trigger.SCHEDULE, now) == (now - dt.timedelta(hours=1),
                                                                     Interval(now - dt.timedelta(hours=1), now))


def test_beat_and_manual_runs_store_their_interval(db):
    from pipelines.tasks import trigger_scheduled_run

    pipeline = Pipeline.objects.create(name="hourly", schedule="0 * * * *")
    run = pipeline.runs.get(pk=trigger_scheduled_run(pipeline.pk))
    now = timezone.now()
    assert run.trigger == Trigger.SCHEDULE
    assert run.data_interval_end <= now and run.data_interval_end.minute == 0
    assert run.data_interval_end - run.data_interval_start == dt.timedelta(hours=1)
    assert run.logical_date == run.data_interval_start
    runner.cancel_run(run)
    manual = runner.start_run(Pipeline.objects.create(name="adhoc"), dispatch=False)
    assert manual.data_interval_start == manual.data_interval_end == manual.logical_date
    assert abs((manual.logical_date - now).total_seconds()) < 60


def test_the_columns_of_a_parameterised_select_are_known_before_the_run(wh):
    """What a prepare hook asks (compliance: the output columns to protect) before values exist."""
    with wh.cursor() as cur:
        cur.execute("CREATE TABLE explore.ev AS SELECT 1 AS id, CAST('2024-03-01 00:00:00+00' AS timestamptz) AS ts")
    sql = wh.transpile(
        "SELECT id, :logical_date AS ld FROM explore.ev WHERE ts >= :data_interval_start AND 'a%' <> 'b'"
    )
    assert wh.operator_columns(sql, layer="chart") == ["id", "ld"]
