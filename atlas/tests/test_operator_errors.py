"""Operator SQL cannot read data through error messages (issue 12).

``SELECT CAST(email AS integer)`` makes both engines quote the value that failed in their
error; a step's error and a check's message are read by roles that never see PII in clear,
so an operator could read a table one error at a time. Data errors of operator SQL keep
their meaning and lose their values, on both engines. So do the data errors of Atlas's own
statements (the owner's: publishing, quarantining): a unique key broken by a merge makes
PostgreSQL say ``Key (email)=(ann@...) already exists`` and DuckDB ``Duplicate key "email:
ann@..."``; the error that reaches ``StepRun.error`` names the problem and the table only.
"""

from __future__ import annotations

import pytest

from atlas.warehouse import WarehouseError
from atlas.warehouse.base import VALUE_HIDDEN, hide_values
from pipelines.tests.conftest import run_now

pytestmark = pytest.mark.django_db

SECRET = "ann.secret@example.com"


@pytest.fixture
def customers(wh):
    with wh.cursor() as cur:
        cur.execute("CREATE TABLE explore.customers (id integer, email text)")
        cur.execute(f"INSERT INTO explore.customers VALUES (1, '{SECRET}')")
    return wh


@pytest.mark.parametrize(
    "select_sql",
    [
        "SELECT CAST(email AS integer) AS n FROM explore.customers",
        "SELECT CAST(email AS date) AS d FROM explore.customers",
        "SELECT CAST(email AS numeric) AS n FROM explore.customers",
    ],
)
def test_a_failed_cast_of_a_value_does_not_show_the_value(customers, select_sql):
    wh = customers
    with pytest.raises(WarehouseError) as info:
        wh.stage_operator_select("chart", "leak", select_sql)
    message = str(info.value)
    assert SECRET not in message and "ann.secret" not in message
    assert VALUE_HIDDEN in message
    with pytest.raises(WarehouseError) as info:
        wh.operator_query(select_sql, layer="chart")
    assert SECRET not in str(info.value)


def test_an_error_that_is_not_about_data_keeps_its_names(customers):
    with pytest.raises(WarehouseError) as info:
        customers.operator_query("SELECT no_such_column FROM explore.customers", layer="chart")
    assert "no_such_column" in str(info.value)


def test_a_failing_step_records_no_value_in_its_error(wh, simple_pipeline):
    """End to end: the step run's error (what Operators and Analysts read) holds no value."""
    from pipelines.models import RunStatus, Step

    pipeline = simple_pipeline(csv_text=f"id,name,amount\n1,{SECRET},10\n")
    Step.objects.filter(pipeline=pipeline, name="refine").update(
        sql="SELECT CAST(id AS integer) AS id, CAST(name AS integer) AS name FROM explore.people"
    )
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    errors = " ".join(sr.error or "" for sr in run.step_runs.all()) + (run.error or "")
    # The engine's message had its value hidden, or (DuckDB, the cast transpiled to raise
    # PostgreSQL's message) never held it: either way it says no value is shown.
    assert "the value is not shown" in errors, errors
    assert SECRET not in errors and "ann.secret" not in errors


def test_hide_values_replaces_every_quoted_value():
    assert SECRET not in hide_values(f'invalid input syntax for type integer: "{SECRET}"')
    assert SECRET not in hide_values(f"Could not convert string '{SECRET}' to INT32")
    assert "42" not in hide_values("Key (id)=(42) already exists.")


# --- the owner's statements: publishing ---------------------------------------------------------
@pytest.fixture
def people(wh):
    """A published table whose e-mail is unique (its key for people), and a staged merge breaking it."""
    with wh.cursor() as cur:
        cur.execute("CREATE TABLE chart.people (id integer, email text PRIMARY KEY)")
        cur.execute(f"INSERT INTO chart.people VALUES (1, '{SECRET}')")
        cur.execute("CREATE TABLE chart.people__stg (id integer, email text)")
        cur.execute(f"INSERT INTO chart.people__stg VALUES (2, '{SECRET}')")
    return wh


def _assert_names_problem_and_table_only(message: str) -> None:
    assert SECRET not in message and "ann.secret" not in message, message
    assert "chart.people" in message, message
    assert "duplicate" in message.lower() or "unique" in message.lower() or "primary key" in message.lower(), message


def test_a_merge_breaking_a_unique_email_names_the_table_not_the_email(people):
    wh = people
    with pytest.raises(WarehouseError) as info:
        wh.publish(schema="chart", staging="people__stg", target="people", mode="merge", keys=["id"])
    _assert_names_problem_and_table_only(str(info.value))
    with wh.cursor() as cur:  # the published table is as it was
        assert cur.execute("SELECT id, email FROM chart.people").fetchall() == [(1, SECRET)]


def test_an_append_breaking_a_unique_email_names_the_table_not_the_email(people):
    with pytest.raises(WarehouseError) as info:
        people.publish(schema="chart", staging="people__stg", target="people", mode="append")
    _assert_names_problem_and_table_only(str(info.value))


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO chart.people VALUES (3, '{secret}')",  # unique
        "INSERT INTO chart.people VALUES (CAST('{secret}' AS integer), 'x')",  # conversion
        "INSERT INTO chart.people VALUES (3, NULL)",  # not null: PostgreSQL's detail shows the whole row
    ],
)
def test_the_owners_data_errors_carry_no_value(people, statement):
    wh = people
    sql = statement.format(secret=SECRET)
    for door in (wh.cursor, wh.transaction):
        with pytest.raises(WarehouseError) as info, door() as cur:
            cur.execute(sql)
        message = str(info.value)
        assert SECRET not in message and "ann.secret" not in message, message


def test_a_merge_step_breaking_a_unique_email_records_no_email(wh, simple_pipeline):
    """End to end: the step run's error (read by Operators and Analysts) names the table, not the e-mail."""
    from pipelines.models import RunStatus, Step

    pipeline = simple_pipeline(csv_text=f"id,name,amount\n1,{SECRET},10\n2,{SECRET},20\n")
    Step.objects.filter(pipeline=pipeline, name="refine").update(
        sql="SELECT CAST(id AS integer) AS id, name, CAST(amount AS numeric(12,2)) AS amount FROM explore.people",
        write_mode="merge", merge_keys="id",
    )
    with wh.cursor() as cur:  # the published Chart table has a unique e-mail (a DBA's index)
        cur.execute("CREATE TABLE chart.people (id integer, name text UNIQUE, amount numeric(12,2))")
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    errors = " ".join(sr.error or "" for sr in run.step_runs.all()) + (run.error or "")
    assert "chart.people" in errors, errors
    assert SECRET not in errors and "ann.secret" not in errors, errors
