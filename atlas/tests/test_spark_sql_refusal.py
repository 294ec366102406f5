"""Saving a step whose SQL would not mean the same on the Spark warehouse is refused (issue 21).

``atlas.sql.spark_meaning`` is an allowlist of what the differential corpus shows equal on Spark:
every corpus statement listed in ``sql_corpus/spark_differs.txt`` is refused, every other one is
accepted. When ``WAREHOUSE_URL`` names a Spark Connect server, the check runs wherever a step is
saved (the model's validation: admin, API, definitions as code); on the other engines nothing
changes. No Spark server is needed: the check reads the SQL and the datasets' column types.
"""

from __future__ import annotations

import pytest

from atlas.sql.errors import SQLRefused
from atlas.sql.spark_meaning import check_spark_meaning
from atlas.tests.test_sql_differential import CORPUS, SPARK_DIFFERS
from atlas.warehouse import reset_warehouses
from atlas.warehouse.sparklocal import free_port

LEDGER_TYPES = {("chart", "ledger"): {
    "id": "integer", "qty": "integer", "cents": "bigint", "price": "numeric(10,2)", "ratio": "double precision",
    "name": "text", "code": "text", "digits": "text", "day": "date", "ts": "timestamp",
    "ts_tz": "timestamp with time zone", "color": "text",
}}
RUNNABLE = [c for c in CORPUS if not c.refused]


@pytest.mark.parametrize("case", RUNNABLE, ids=[c.name[:50] for c in RUNNABLE])
def test_a_corpus_statement_is_refused_for_spark_exactly_when_it_differs_there(case):
    if case.name in SPARK_DIFFERS:
        with pytest.raises(SQLRefused, match="Spark"):
            check_spark_meaning(case.sql, LEDGER_TYPES)
    else:
        check_spark_meaning(case.sql, LEDGER_TYPES)


def test_what_depends_on_an_unknown_type_is_refused_only_when_the_types_are_known():
    sql = "SELECT id, amount / 3.0 AS third FROM chart.items"
    with pytest.raises(SQLRefused, match="cannot tell its operands' types"):
        check_spark_meaning(sql, {("chart", "items"): {"id": "integer"}})
    check_spark_meaning(sql, None, types_known=False)  # saved before its input exists: checked again before it runs
    with pytest.raises(SQLRefused, match="not known to give PostgreSQL's answer on the Spark warehouse"):
        check_spark_meaning("SELECT initcap(name) AS n FROM chart.items", None, types_known=False)


@pytest.fixture
def on_spark(settings):
    """The warehouse is a Spark Connect server (none listens: the check needs only the catalogue's types)."""
    settings.WAREHOUSE_URL = f"sc://127.0.0.1:{free_port()}"
    reset_warehouses()
    yield
    reset_warehouses()


@pytest.fixture
def items(db):
    from pipelines.models import Dataset, DatasetColumn, Pipeline, Step

    ds = Dataset.objects.create(name="items", layer="chart", table="items")
    for pos, (name, typ) in enumerate((("id", "integer"), ("name", "text"), ("price", "numeric(10,2)"))):
        DatasetColumn.objects.create(dataset=ds, name=name, position=pos, data_type=typ)
    raw = Dataset.objects.create(name="raw_items", layer="explore", table="items")
    for pos, name in enumerate(("id", "name", "price")):
        DatasetColumn.objects.create(dataset=raw, name=name, position=pos, data_type="text")
    out = Dataset.objects.create(name="summary", layer="navigate", table="summary")
    pipeline = Pipeline.objects.create(name="p")
    Step.objects.create(pipeline=pipeline, name="make", kind="refine", output=ds, sql=MAKE)
    return pipeline, out


MAKE = "SELECT CAST(id AS integer) AS id, name, CAST(price AS numeric(10, 2)) AS price FROM explore.items"


DIFFERS = "SELECT id, avg(price) AS mean FROM chart.items GROUP BY id"
SAME = "SELECT id, sum(price) AS total FROM chart.items GROUP BY id"


def test_a_step_saved_on_spark_with_sql_that_differs_there_is_refused(on_spark, items):
    from django.core.exceptions import ValidationError

    from pipelines.models import Step

    pipeline, out = items
    step = Step(pipeline=pipeline, name="agg", kind="aggregate", output=out, sql=DIFFERS)
    with pytest.raises(ValidationError, match=r"avg of a numeric keeps another scale .* on the Spark warehouse"):
        step.full_clean()
    Step(pipeline=pipeline, name="agg", kind="aggregate", output=out, sql=SAME).full_clean()


def test_the_same_step_is_saved_on_the_other_engines(items, wh):
    from pipelines.models import Step

    pipeline, out = items
    Step(pipeline=pipeline, name="agg", kind="aggregate", output=out, sql=DIFFERS).full_clean()


DIFFERS_UNTYPED = "SELECT initcap(name) AS n FROM chart.people"  # refused on Spark whatever the types
SAME_UNTYPED = "SELECT upper(name) AS n FROM chart.people"


def test_the_api_refuses_it_on_spark_with_the_reason(on_spark, simple_pipeline):
    from atlas.api.testing import token_client, user_with_role
    from pipelines.models import Dataset

    pipeline = simple_pipeline()
    out = Dataset.objects.create(name="names", layer="navigate", table="names")
    api = token_client(user_with_role("Operator", "ops"))
    step = {"pipeline": pipeline.pk, "name": "names", "kind": "aggregate", "output": out.pk}
    response = api.post("/api/v1/steps/", {**step, "sql": DIFFERS_UNTYPED})
    assert response.status_code == 409, response.json()
    told = response.json()["error"]["detail"]["sql"][0]
    assert told.startswith("INITCAP(name): INITCAP is not known to give PostgreSQL's answer on the Spark warehouse"), told
    made = api.post("/api/v1/steps/", {**step, "sql": SAME_UNTYPED})
    assert made.status_code == 201, made.json()


def test_the_admin_refuses_it_on_spark_with_the_reason(on_spark, simple_pipeline, admin_client):
    from pipelines.models import Dataset, Step
    from pipelines.tests.test_admin import pipeline_post, step_form

    simple_pipeline()
    out = Dataset.objects.create(name="names", layer="navigate", table="names")
    form = pipeline_post("names", step_form(0, name="names", kind="aggregate", output=out.pk, sql=DIFFERS_UNTYPED))
    answer = admin_client.post("/admin/pipelines/pipeline/add/", form)
    assert answer.status_code == 200 and "on the Spark warehouse" in answer.content.decode()
    assert not Step.objects.filter(name="names").exists()
    form = pipeline_post("names", step_form(0, name="names", kind="aggregate", output=out.pk, sql=SAME_UNTYPED))
    saved = admin_client.post("/admin/pipelines/pipeline/add/", form)
    assert saved.status_code == 302, [f.errors for f in saved.context["inline_admin_formsets"][0].formset.forms]
    assert Step.objects.get(name="names").sql == SAME_UNTYPED
