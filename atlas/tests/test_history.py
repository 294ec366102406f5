"""A history of every definition: versions with who, when and what changed, audited, restorable; runs record them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from atlas.audit_tracking import acting_as
from atlas.models import AuditEvent
from atlas.tests.plugin import run_now
from pipelines.models import Dataset, Pipeline, PipelineRun, Step
from quality.models import Check


def test_editing_a_steps_sql_is_a_version_with_who_and_what_changed(db, simple_pipeline):
    user = get_user_model().objects.create_user("ed", password="x")
    pipeline = simple_pipeline()
    step = pipeline.steps.get(name="refine")
    with acting_as(user):
        step.sql = step.sql.replace("trim(name)", "upper(trim(name))")
        step.save()
    latest, previous = step.history.all()[:2]
    assert latest.history_type == "~" and latest.history_user == user
    assert latest.diff_against(previous).changed_fields == ["sql"]
    event = AuditEvent.objects.filter(action="pipelines.step.updated").latest("pk")  # audit_tracking's, once
    assert event.actor == user and "sql" in str(event.detail)
    assert not AuditEvent.objects.filter(action__startswith="definition.").exists()


def test_a_deleted_definition_keeps_its_history(db, simple_pipeline):
    pipeline = simple_pipeline()
    step = pipeline.steps.get(name="total")
    pk = step.pk
    step.delete()
    assert Step.history.filter(id=pk).first().history_type == "-"
    assert AuditEvent.objects.filter(action="pipelines.step.deleted").exists()


def test_a_loads_bookkeeping_is_no_version(wh, simple_pipeline):
    pipeline = simple_pipeline()
    versions = Dataset.history.count()
    assert run_now(pipeline).status == "succeeded"
    assert Dataset.objects.filter(row_count__isnull=False).exists()
    assert Dataset.history.count() == versions  # row counts and load times are not edits


def test_a_run_records_the_version_of_every_definition_it_executed(wh, simple_pipeline):
    pipeline = simple_pipeline()
    clean = Dataset.objects.get(table="people", layer="chart")
    check = Check.objects.create(dataset=clean, name="has_name", kind="not_null", columns=["name"])
    run = run_now(pipeline)
    expected = {f"step:{s.pk}": s.history.latest().history_id for s in pipeline.steps.all()}
    expected[f"pipeline:{pipeline.pk}"] = pipeline.history.latest().history_id
    expected[f"check:{check.pk}"] = check.history.latest().history_id
    assert expected.items() <= run.definitions.items()
    assert f"source:{pipeline.steps.get(name='ingest').source_id}" in run.definitions
    refine = pipeline.steps.get(name="refine")
    refine.sql += " WHERE id IS NOT NULL"
    refine.save()
    second = run_now(pipeline)
    assert second.definitions[f"step:{refine.pk}"] > run.definitions[f"step:{refine.pk}"]
    assert PipelineRun.objects.get(pk=run.pk).definitions == run.definitions  # the first keeps its own


def test_the_admin_lists_a_pipelines_versions_and_offers_each_for_restore(admin_client, simple_pipeline):
    pipeline = simple_pipeline()
    pipeline.description = "first"
    pipeline.save()
    pipeline.description = "second"
    pipeline.save()
    page = admin_client.get(f"/admin/pipelines/pipeline/{pipeline.pk}/history/")
    assert page.status_code == 200
    old = pipeline.history.get(description="first")
    assert f"/history/{old.history_id}/".encode() in page.content  # each version links to its restore form
    form = admin_client.get(f"/admin/pipelines/pipeline/{pipeline.pk}/history/{old.history_id}/")
    assert form.status_code == 200 and b"Revert" in form.content and b"first" in form.content


@pytest.mark.parametrize("model", [Pipeline, Step, Dataset, Check])
def test_every_definition_model_keeps_history(model):
    assert hasattr(model, "history")


def test_a_run_records_the_version_of_the_column_policy_it_applied(wh, simple_pipeline):
    from compliance.models import ColumnPolicy

    pipeline = simple_pipeline()
    clean = Dataset.objects.get(table="people", layer="chart")
    policy = ColumnPolicy.objects.create(dataset=clean, column="name", action="mask", options={"keep_last": 2})
    run = run_now(pipeline)
    assert run.definitions[f"columnpolicy:{policy.pk}"] == policy.history.latest().history_id
