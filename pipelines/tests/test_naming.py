"""Dataset table names: dbt's conventions allowed, Atlas's own table names refused (issue 19)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from pipelines import attempts
from pipelines.models import RESERVED_TABLE_RE, Dataset, RunStatus
from quality.quarantine import quarantine_name

from .conftest import run_now


@pytest.mark.parametrize("table", ["stg_jaffle_shop__customers", "int_orders__pivoted", "fct__daily", "a__b__c"])
def test_dbt_style_double_underscores_are_allowed(table):
    Dataset(name=table, layer="chart", table=table).clean()


@pytest.mark.parametrize(
    "table", ["orders__quarantine", "orders__stg", "orders__stg12", "orders__r3a1_stg", "x__r12a2_b3f0", "Orders", "9lives"],
)
def test_names_of_atlas_s_own_tables_are_refused(table):
    with pytest.raises(ValidationError) as caught:
        Dataset(name="d", layer="chart", table=table).clean()
    assert "table" in caught.value.message_dict


@pytest.mark.parametrize("table", ["stg_shop__orders", "orders", "a" * 48])
def test_every_name_atlas_gives_its_own_tables_is_reserved(table):
    tag = attempts.attempt_tag(12, 3)
    own = [attempts.ingest_staging_name(table, tag, "b3f0a1"), attempts.transform_staging_name(table, tag),
           quarantine_name(table), f"{table[:40]}__stg12"]
    assert all(RESERVED_TABLE_RE.search(name) for name in own), own
    assert all(attempts.TAG_RE.search(name) for name in own[:2])
    assert not RESERVED_TABLE_RE.search(table) and not attempts.TAG_RE.search(table)


def test_a_pipeline_with_dbt_style_names_runs_and_the_janitor_keeps_its_tables(wh, simple_pipeline):
    pipeline = simple_pipeline()
    clean = Dataset.objects.get(layer="chart", table="people")
    clean.table = clean.name = "stg_people__cleaned"
    clean.full_clean()
    clean.save()
    total = pipeline.steps.get(name="total")
    total.sql = total.sql.replace("chart.people", "chart.stg_people__cleaned")
    total.save()
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    attempts.clean_up_attempts()
    assert wh.row_count("chart", "stg_people__cleaned") == 3
    assert wh.row_count("navigate", "people_total") == 1
