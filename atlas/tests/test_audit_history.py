"""Deleting a definition never deletes its run history (issue 12).

"Deleting a pipeline deletes its runs and their SQL and errors — the evidence."
Runs, check runs, PII scans and retention runs now PROTECT their pipeline or
dataset: the ORM raises, the API answers 409 with the reason, the admin shows
Django's protected-objects page. The attack tests come first.
"""

from datetime import timedelta

import pytest
from django.db.models import ProtectedError
from django.utils import timezone

from atlas.api.testing import token_client, user_with_role
from atlas.models import AuditEvent
from compliance.models import PiiScan
from pipelines.models import Dataset, Pipeline, PipelineRun, RunStatus, Step, StepRun, Trigger
from quality.models import CheckRun
from retention.models import RetentionRun


@pytest.fixture
def pipeline_with_a_run(db):
    output = Dataset.objects.create(name="daily", layer="navigate", table="daily")
    pipeline = Pipeline.objects.create(name="nightly")
    step = Step.objects.create(
        pipeline=pipeline,
        name="sum",
        kind=Step.Kind.AGGREGATE,
        output=output,
        sql="SELECT 1 AS one",
    )
    run = PipelineRun.objects.create(
        pipeline=pipeline, trigger=Trigger.MANUAL, status=RunStatus.FAILED, error="division by zero"
    )
    StepRun.objects.create(
        run=run, step=step, step_name="sum", kind=step.kind, sql="SELECT 1/0", error="boom"
    )
    return pipeline


# --- the attacks of the issue -------------------------------------------------------------


def test_deleting_a_pipeline_with_runs_through_the_orm_is_refused_and_keeps_the_evidence(
    pipeline_with_a_run,
):
    with pytest.raises(ProtectedError):
        pipeline_with_a_run.delete()
    with pytest.raises(ProtectedError):
        Pipeline.objects.filter(pk=pipeline_with_a_run.pk).delete()
    run = PipelineRun.objects.get(pipeline=pipeline_with_a_run)
    assert run.error == "division by zero" and run.step_runs.get().sql == "SELECT 1/0"
    assert not AuditEvent.objects.filter(action="pipelines.pipeline.deleted").exists()


def test_deleting_a_pipeline_with_runs_through_the_api_answers_409_with_the_reason(
    pipeline_with_a_run,
):
    api = token_client(user_with_role("Operator", "ops"))
    response = api.delete(f"/api/v1/pipelines/{pipeline_with_a_run.pk}/")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "in_use" and error["detail"]["used_by"] == [
        f"nightly #{pipeline_with_a_run.runs.get().pk}"
    ]
    assert "cannot be deleted" in error["message"]
    assert PipelineRun.objects.filter(pipeline=pipeline_with_a_run).count() == 1


def test_deleting_a_pipeline_with_runs_in_the_admin_shows_the_protected_runs(
    pipeline_with_a_run, admin_client
):
    url = f"/admin/pipelines/pipeline/{pipeline_with_a_run.pk}/delete/"
    page = admin_client.get(url)
    assert page.status_code == 200 and b"protected related objects" in page.content
    admin_client.post(url, {"post": "yes"})
    assert Pipeline.objects.filter(pk=pipeline_with_a_run.pk).exists()
    assert PipelineRun.objects.filter(pipeline=pipeline_with_a_run).count() == 1


# --- the rest of the history --------------------------------------------------------------


def test_deleting_a_step_keeps_its_step_runs(pipeline_with_a_run):
    step = pipeline_with_a_run.steps.get()
    step.delete()
    step_run = StepRun.objects.get()
    assert step_run.step is None and step_run.step_name == "sum" and step_run.sql == "SELECT 1/0"
    assert AuditEvent.objects.filter(action="pipelines.step.deleted").exists()


def test_a_pipeline_without_runs_can_still_be_deleted_and_the_deletion_is_audited(db):
    pipeline = Pipeline.objects.create(name="draft")
    pk = pipeline.pk
    pipeline.delete()
    assert not Pipeline.objects.filter(pk=pk).exists()
    assert AuditEvent.objects.get(action="pipelines.pipeline.deleted").target_id == str(pk)


@pytest.mark.parametrize(
    "make_history",
    [
        lambda ds: CheckRun.objects.create(
            dataset=ds, trigger=CheckRun.Trigger.MANUAL, table="chart.t"
        ),
        lambda ds: PiiScan.objects.create(dataset=ds),
        lambda ds: RetentionRun.objects.create(
            dataset=ds,
            trigger="manual",
            status="succeeded",
            action="delete",
            column="at",
            period_days=30,
            cutoff=timezone.now() - timedelta(days=30),
        ),
    ],
    ids=["check run", "PII scan", "retention run"],
)
def test_deleting_a_dataset_with_history_is_refused(db, make_history):
    dataset = Dataset.objects.create(name="t", layer="chart", table="t")
    record = make_history(dataset)
    with pytest.raises(ProtectedError):
        dataset.delete()
    assert type(record).objects.filter(pk=record.pk).exists()
