"""Operator SQL cannot read data through error messages (issue 12).

``SELECT CAST(email AS integer)`` makes both engines quote the value that failed in their
error; a step's error and a check's message are read by roles that never see PII in clear,
so an operator could read a table one error at a time. Data errors of operator SQL keep
their meaning and lose their values, on both engines.
"""

from __future__ import annotations

import pytest

from atlas.warehouse import WarehouseError
from atlas.warehouse.base import VALUE_HIDDEN, hide_values
from pipelines.tests import conftest as pipeline_fixtures
from pipelines.tests.conftest import run_now

make_csv = pipeline_fixtures.make_csv  # fixtures of the pipelines' tests, used here
simple_pipeline = pipeline_fixtures.simple_pipeline

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
        wh.operator_query(select_sql)
    assert SECRET not in str(info.value)


def test_an_error_that_is_not_about_data_keeps_its_names(customers):
    with pytest.raises(WarehouseError) as info:
        customers.operator_query("SELECT no_such_column FROM explore.customers")
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
    assert VALUE_HIDDEN in errors
    assert SECRET not in errors and "ann.secret" not in errors


def test_hide_values_replaces_every_quoted_value():
    assert SECRET not in hide_values(f'invalid input syntax for type integer: "{SECRET}"')
    assert SECRET not in hide_values(f"Could not convert string '{SECRET}' to INT32")
    assert "42" not in hide_values("Key (id)=(42) already exists.")
