"""The operators' admin: every page renders, runs start and stop, bad pipelines are refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from atlas.admin_kit import human_duration
from pipelines.models import (
    Dataset,
    LoadedBatch,
    Pipeline,
    PipelineRun,
    Source,
    SourceWatermark,
    Step,
    StepRun,
)

from .conftest import run_now

REFRESH_META = '<meta http-equiv="refresh" content="3">'


def url(name: str, *args) -> str:
    return reverse(f"admin:pipelines_{name}", args=args)


@pytest.fixture
def loaded(wh, simple_pipeline):
    """A pipeline run once, so datasets, runs, step runs and batches all exist."""
    pipeline = simple_pipeline()
    run = run_now(pipeline)
    assert run.status == "succeeded", run.error
    return pipeline


def pipeline_models():
    return [m for m in admin.site._registry if m._meta.app_label == "pipelines"]


def step_form(i: int, **values) -> dict[str, str]:
    defaults = {
        "name": f"step{i}",
        "kind": "refine",
        "position": str(i),
        "source": "",
        "output": "",
        "sql": "",
        "write_mode": "replace",
        "merge_keys": "",
        "max_rejected_share": "0.05",
    }
    defaults.update({k: str(v) for k, v in values.items()})
    return {f"steps-{i}-{k}": v for k, v in defaults.items()}


def pipeline_post(name: str, *steps: dict[str, str]) -> dict[str, str]:
    data = {
        "name": name,
        "description": "",
        "enabled": "on",
        "schedule": "",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for step in steps:
        data.update(step)
    return data


# --- every page renders ----------------------------------------------------------------
def test_every_pipelines_model_is_registered():
    names = {m.__name__ for m in pipeline_models()}
    assert names == {
        "Source", "Dataset", "Pipeline", "PipelineRun", "StepRun", "LoadedBatch", "Backfill", "SourceWatermark"
    }


@pytest.mark.parametrize("model", pipeline_models(), ids=lambda m: m.__name__)
def test_changelist_change_and_add_pages_render(admin_client, loaded, model):
    opts = model._meta
    base = f"admin:{opts.app_label}_{opts.model_name}"
    assert admin_client.get(reverse(f"{base}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"{base}_changelist"), {"q": "people"}).status_code == 200
    for obj in model.objects.all():
        assert admin_client.get(reverse(f"{base}_change", args=[obj.pk])).status_code == 200
    history = model in (PipelineRun, StepRun, LoadedBatch, SourceWatermark)  # read-only: nobody adds it
    assert admin_client.get(reverse(f"{base}_add")).status_code == (403 if history else 200)


def test_history_cannot_be_added(admin_client, loaded):
    for name in ("pipelinerun", "steprun", "loadedbatch"):
        assert admin_client.get(url(f"{name}_add")).status_code == 403


def test_changelist_filters_render(admin_client, loaded):
    assert (
        admin_client.get(url("pipelinerun_changelist"), {"status__exact": "succeeded"}).status_code
        == 200
    )
    assert (
        admin_client.get(
            url("pipelinerun_changelist"), {"pipeline__id__exact": loaded.pk}
        ).status_code
        == 200
    )
    assert admin_client.get(url("steprun_changelist"), {"kind__exact": "ingest"}).status_code == 200
    assert (
        admin_client.get(url("loadedbatch_changelist"), {"status__exact": "loaded"}).status_code
        == 200
    )
    assert admin_client.get(url("dataset_changelist"), {"layer__exact": "chart"}).status_code == 200
    assert admin_client.get(url("source_changelist"), {"kind__exact": "path"}).status_code == 200
    body = admin_client.get(url("pipelinerun_changelist")).content.decode()
    assert "atlas-badge-succeeded" in body


def test_pipeline_list_shows_last_run_badge_without_a_query_per_row(
    admin_client, loaded, simple_pipeline
):
    with CaptureQueriesContext(connection) as one:
        resp = admin_client.get(url("pipeline_changelist"))
    assert 'class="atlas-badge atlas-badge-succeeded"' in resp.content.decode()
    for i in range(4):
        p = Pipeline.objects.create(name=f"extra{i}")
        PipelineRun.objects.create(pipeline=p, trigger="manual", status="failed")
    with CaptureQueriesContext(connection) as five:
        resp = admin_client.get(url("pipeline_changelist"))
    assert resp.content.decode().count("atlas-badge-failed") == 4
    assert len(five) == len(one)


def test_run_list_shows_human_durations(admin_client, loaded):
    run = PipelineRun.objects.get()
    PipelineRun.objects.filter(pk=run.pk).update(
        finished_at=run.started_at + timedelta(seconds=184)
    )
    assert "3 min 4 s" in admin_client.get(url("pipelinerun_changelist")).content.decode()


@pytest.mark.parametrize(
    "seconds, text",
    [(None, None), (1.23, "1.2 s"), (184, "3 min 4 s"), (7500, "2 h 5 min")],
)
def test_human_duration(seconds, text):
    assert human_duration(None if seconds is None else timedelta(seconds=seconds)) == text


# --- datasets ------------------------------------------------------------------------------
def test_dataset_page_previews_the_warehouse_rows(admin_client, loaded):
    dataset = Dataset.objects.get(layer="chart", table="people")
    body = admin_client.get(url("dataset_change", dataset.pk)).content.decode()
    assert "chart.people: 3 rows" in body
    assert "<td>Ann</td>" in body and "<td>Bob</td>" in body
    assert "Data preview" in body
    assert "Latest loaded batches" not in body  # only Explore datasets have batches


def test_dataset_not_loaded_yet_says_so(admin_client, wh):
    dataset = Dataset.objects.create(name="later", layer="chart", table="later")
    resp = admin_client.get(url("dataset_change", dataset.pk))
    assert resp.status_code == 200
    assert "chart.later is not loaded yet." in resp.content.decode()


def test_explore_dataset_shows_batches_and_quarantine(admin_client, wh, simple_pipeline):
    csv = "id,name,amount\n1,Ann,10\n2,Bob,20,30,40\n3,Cy,5\n4,Di,7\n"
    run = run_now(simple_pipeline(csv, max_rejected_share=0.5))
    assert run.status == "succeeded", run.error
    dataset = Dataset.objects.get(layer="explore", table="people")
    body = admin_client.get(url("dataset_change", dataset.pk)).content.decode()
    batch = LoadedBatch.objects.get(dataset=dataset)
    assert (batch.rows_loaded, batch.rows_rejected) == (3, 1)
    assert "Latest loaded batches" in body
    assert batch.batch_id in body and "atlas-badge-loaded" in body
    assert "explore.people__quarantine: 1 row." in body
    assert "2,Bob,20,30,40" in body  # the raw record, kept with its reason


def test_explore_dataset_without_rejects_has_no_quarantine(admin_client, loaded):
    dataset = Dataset.objects.get(layer="explore", table="people")
    body = admin_client.get(url("dataset_change", dataset.pk)).content.decode()
    assert "No rejected records: explore.people__quarantine does not exist." in body


def test_preview_escapes_warehouse_values(admin_client, wh):
    wh.create_table_as(
        "chart", "xss", "SELECT '<script>alert(1)</script>' AS \"<b>col</b>\", 1 AS n"
    )
    dataset = Dataset.objects.create(name="xss", layer="chart", table="xss")
    body = admin_client.get(url("dataset_change", dataset.pk)).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<b>col</b>" not in body and "&lt;b&gt;col&lt;/b&gt;" in body


def test_dataset_columns_are_read_only_but_descriptions_editable(admin_client, loaded):
    dataset = Dataset.objects.get(layer="chart", table="people")
    resp = admin_client.get(url("dataset_change", dataset.pk))
    formset = resp.context["inline_admin_formsets"][0].formset
    assert list(formset.forms[0].fields) == ["description", "id", "dataset"]


# --- run now -------------------------------------------------------------------------------
def test_run_now_button_starts_a_run_and_redirects_to_it(
    admin_client, admin_user, wh, simple_pipeline, django_capture_on_commit_callbacks
):
    pipeline = simple_pipeline()
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post(url("pipeline_run", pipeline.pk))
    run = PipelineRun.objects.get()
    assert resp.status_code == 302
    assert resp.url == url("pipelinerun_change", run.pk)
    assert run.status == "succeeded", run.error
    assert (run.trigger, run.triggered_by) == ("manual", admin_user)
    body = admin_client.get(resp.url).content.decode()
    assert (
        f'Started <a href="{url("pipelinerun_change", run.pk)}">run #{run.pk}</a> of people.'
        in body
    )
    assert REFRESH_META not in body


def test_pipeline_page_has_the_run_now_button(admin_client, wh, simple_pipeline):
    pipeline = simple_pipeline()
    body = admin_client.get(url("pipeline_change", pipeline.pk)).content.decode()
    assert f'action="{url("pipeline_run", pipeline.pk)}"' in body
    assert "Run now" in body and "csrfmiddlewaretoken" in body


def test_run_now_refuses_get(admin_client, wh, simple_pipeline):
    pipeline = simple_pipeline()
    assert admin_client.get(url("pipeline_run", pipeline.pk)).status_code == 405
    assert not PipelineRun.objects.exists()


def test_run_now_while_a_run_is_active_is_refused(admin_client, wh, simple_pipeline):
    pipeline = simple_pipeline()
    active = PipelineRun.objects.create(pipeline=pipeline, trigger="api", status="running")
    resp = admin_client.post(url("pipeline_run", pipeline.pk), follow=True)
    assert resp.redirect_chain[-1][0] == url("pipeline_change", pipeline.pk)
    body = resp.content.decode()
    assert "already has a run in progress" in body and 'class="error"' in body
    assert list(PipelineRun.objects.all()) == [active]


def test_run_now_of_a_disabled_pipeline_is_refused(admin_client, wh, simple_pipeline):
    pipeline = simple_pipeline()
    Pipeline.objects.filter(pk=pipeline.pk).update(enabled=False)
    resp = admin_client.post(url("pipeline_run", pipeline.pk), follow=True)
    assert "is disabled" in resp.content.decode()
    assert not PipelineRun.objects.exists()


def test_run_now_needs_a_staff_login(client, django_user_model, wh, simple_pipeline):
    pipeline = simple_pipeline()
    client.force_login(django_user_model.objects.create_user("visitor", password="x"))
    resp = client.post(url("pipeline_run", pipeline.pk))
    assert resp.status_code == 302 and reverse("admin:login") in resp.url
    assert not PipelineRun.objects.exists()


def test_run_now_needs_the_change_pipeline_permission(
    client, django_user_model, wh, simple_pipeline
):
    pipeline = simple_pipeline()
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_pipeline"))
    client.force_login(user)
    assert client.post(url("pipeline_run", pipeline.pk)).status_code == 403
    assert "Run now" not in client.get(url("pipeline_change", pipeline.pk)).content.decode()
    assert not PipelineRun.objects.exists()


def test_run_now_is_csrf_protected(django_user_model, wh, simple_pipeline):
    from django.test import Client

    pipeline = simple_pipeline()
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    assert client.post(url("pipeline_run", pipeline.pk)).status_code == 403
    assert not PipelineRun.objects.exists()


def test_run_now_action_starts_the_selected_pipelines(admin_client, wh, simple_pipeline):
    first = simple_pipeline()
    second = Pipeline.objects.create(name="second")
    Step.objects.create(
        pipeline=second,
        name="copy",
        kind="refine",
        sql="SELECT * FROM explore.people",
        output=Dataset.objects.create(name="copy", layer="chart", table="copy"),
    )
    resp = admin_client.post(
        url("pipeline_changelist"),
        {"action": "run_now", "_selected_action": [first.pk, second.pk], "index": "0"},
        follow=True,
    )
    assert resp.redirect_chain[-1][0] == url("pipeline_changelist")
    runs = PipelineRun.objects.all()
    assert {r.pipeline_id for r in runs} == {first.pk, second.pk}
    assert {(r.trigger, r.status) for r in runs} == {("manual", "queued")}
    assert "Started " in resp.content.decode()


def test_run_now_action_reports_refusals_and_starts_the_others(admin_client, wh, simple_pipeline):
    busy = simple_pipeline()
    PipelineRun.objects.create(pipeline=busy, trigger="api", status="queued")
    idle = Pipeline.objects.create(name="idle")
    resp = admin_client.post(
        url("pipeline_changelist"),
        {"action": "run_now", "_selected_action": [busy.pk, idle.pk], "index": "0"},
        follow=True,
    )
    body = resp.content.decode()
    assert "already has a run in progress" in body
    assert PipelineRun.objects.filter(pipeline=busy).count() == 1
    assert PipelineRun.objects.filter(pipeline=idle).count() == 1


# --- run pages -----------------------------------------------------------------------------
def test_active_run_page_updates_itself_and_shows_progress(admin_client, loaded):
    run = PipelineRun.objects.create(
        pipeline=loaded, trigger="manual", status="running", current_step="refine"
    )
    StepRun.objects.create(
        run=run, step_name="ingest", kind="ingest", status="succeeded", rows_in=7, rows_out=6
    )
    StepRun.objects.create(run=run, step_name="refine", kind="refine", status="running", position=1)
    body = admin_client.get(url("pipelinerun_change", run.pk)).content.decode()
    assert REFRESH_META not in body  # updated in place (static/atlas/run_live.js), no reload
    assert "atlas/run_live.js" in body and f'data-url="{url("pipelinerun_live", run.pk)}"' in body
    assert "Running step refine (of 2 steps). Rows so far: 7 in, 6 out, 0 rejected." in body
    assert f'action="{url("pipelinerun_cancel", run.pk)}"' in body


def test_finished_run_page_does_not_refresh(admin_client, loaded):
    run = PipelineRun.objects.get()
    resp = admin_client.get(url("pipelinerun_change", run.pk))
    body = resp.content.decode()
    assert REFRESH_META not in body
    assert "atlas-badge-succeeded" in body
    for step_run in run.step_runs.all():
        assert url("steprun_change", step_run.pk) in body
    assert 'name="_save"' not in body  # read-only


def test_failed_run_page_shows_the_error_and_traceback(admin_client, wh, simple_pipeline):
    pipeline = simple_pipeline()
    Step.objects.filter(pipeline=pipeline, name="ingest").update(max_rejected_share=0)
    Source.objects.filter(name="people").update(location="/nonexistent/<nothing>.csv")
    run = run_now(pipeline)
    assert run.status == "failed"
    body = admin_client.get(url("pipelinerun_change", run.pk)).content.decode()
    assert "atlas-badge-failed" in body
    step_run = run.step_runs.get(step_name="ingest")
    assert step_run.error
    page = admin_client.get(url("steprun_change", step_run.pk)).content.decode()
    assert "&lt;nothing&gt;" in page and "<nothing>" not in page
    assert '<pre class="atlas-pre">' in page


def test_step_run_page_shows_sql_and_batches(admin_client, loaded):
    refine = StepRun.objects.get(step_name="refine")
    body = admin_client.get(url("steprun_change", refine.pk)).content.decode()
    assert "SQL as executed" in body and "people" in body
    ingest = StepRun.objects.get(step_name="ingest")
    body = admin_client.get(url("steprun_change", ingest.pk)).content.decode()
    assert LoadedBatch.objects.get().batch_id in body


def test_cancel_action_cancels_a_queued_run(admin_client, wh, simple_pipeline):
    run = PipelineRun.objects.create(pipeline=simple_pipeline(), trigger="api")
    resp = admin_client.post(
        url("pipelinerun_changelist"),
        {"action": "cancel", "_selected_action": [run.pk], "index": "0"},
        follow=True,
    )
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert "Cancelled " in resp.content.decode()


def test_cancel_action_asks_a_running_run_to_stop(admin_client, wh, simple_pipeline):
    run = PipelineRun.objects.create(pipeline=simple_pipeline(), trigger="api", status="running")
    resp = admin_client.post(
        url("pipelinerun_changelist"),
        {"action": "cancel", "_selected_action": [run.pk], "index": "0"},
        follow=True,
    )
    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == ("running", True)
    assert "to stop after the current file or step" in resp.content.decode()


def test_cancel_action_leaves_finished_runs_alone(admin_client, loaded):
    run = PipelineRun.objects.get()
    resp = admin_client.post(
        url("pipelinerun_changelist"),
        {"action": "cancel", "_selected_action": [run.pk], "index": "0"},
        follow=True,
    )
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert "already finished" in resp.content.decode()


def test_cancel_button_cancels_a_queued_run(admin_client, wh, simple_pipeline):
    run = PipelineRun.objects.create(pipeline=simple_pipeline(), trigger="api")
    resp = admin_client.post(url("pipelinerun_cancel", run.pk))
    assert resp.status_code == 302 and resp.url == url("pipelinerun_change", run.pk)
    run.refresh_from_db()
    assert run.status == "cancelled"


def test_run_history_is_read_only(admin_client, loaded):
    run = PipelineRun.objects.get()
    resp = admin_client.post(url("pipelinerun_change", run.pk), {"error": "edited"})
    assert resp.status_code == 403
    run.refresh_from_db()
    assert run.error == ""


def test_only_superusers_delete_runs(admin_client, client, django_user_model, loaded):
    user = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__endswith="pipelinerun"))
    client.force_login(user)
    run = PipelineRun.objects.get()
    assert client.get(url("pipelinerun_delete", run.pk)).status_code == 403
    assert admin_client.get(url("pipelinerun_delete", run.pk)).status_code == 200
    admin_client.post(url("pipelinerun_delete", run.pk), {"post": "yes"})
    assert not PipelineRun.objects.exists() and not StepRun.objects.exists()


# --- saving pipelines ------------------------------------------------------------------------
@pytest.fixture
def chart_datasets(db):
    return {
        name: Dataset.objects.create(name=name, layer="chart", table=name)
        for name in ("a", "b", "c")
    }


def test_adding_a_pipeline_stores_its_steps_and_derived_inputs(admin_client, wh, chart_datasets):
    source = Source.objects.create(name="src", location="/tmp/x.csv")
    raw = Dataset.objects.create(name="raw", layer="explore", table="raw")
    data = pipeline_post(
        "new",
        step_form(
            0, name="load", kind="ingest", source=source.pk, output=raw.pk, write_mode="append"
        ),
        step_form(1, name="a", output=chart_datasets["a"].pk, sql="SELECT * FROM explore.raw"),
        step_form(2, name="b", output=chart_datasets["b"].pk, sql="SELECT * FROM chart.a"),
    )
    resp = admin_client.post(url("pipeline_add"), data)
    assert resp.status_code == 302, resp.context["errors"]
    new = Pipeline.objects.get(name="new")
    assert new.steps.count() == 3
    assert list(new.steps.get(name="a").inputs.all()) == [raw]
    assert list(new.steps.get(name="b").inputs.all()) == [chart_datasets["a"]]


def test_adding_a_pipeline_that_reads_another_pipelines_output(
    admin_client, wh, simple_pipeline, chart_datasets
):
    simple_pipeline()  # produces chart.people
    data = pipeline_post(
        "reader",
        step_form(0, name="a", output=chart_datasets["a"].pk, sql="SELECT * FROM chart.people"),
    )
    resp = admin_client.post(url("pipeline_add"), data)
    assert "which no step produces" not in resp.content.decode()
    assert resp.status_code == 302


def test_saving_an_existing_pipeline_stores_derived_inputs(admin_client, wh, simple_pipeline):
    pipeline = simple_pipeline()
    steps = list(pipeline.steps.order_by("position"))
    data = {
        "name": "people",
        "description": "edited",
        "enabled": "on",
        "schedule": "",
        "steps-TOTAL_FORMS": "3",
        "steps-INITIAL_FORMS": "3",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    for i, step in enumerate(steps):
        values = step_form(
            i,
            name=step.name,
            kind=step.kind,
            position=step.position,
            source=step.source_id or "",
            output=step.output_id,
            sql=step.sql,
            write_mode=step.write_mode,
            max_rejected_share=step.max_rejected_share,
        )
        values[f"steps-{i}-id"] = str(step.pk)
        values[f"steps-{i}-pipeline"] = str(pipeline.pk)
        data.update(values)
    resp = admin_client.post(url("pipeline_change", pipeline.pk), data)
    assert resp.status_code == 302, resp.context["errors"] if resp.context else resp
    total = pipeline.steps.get(name="total")
    assert [d.qualified_table for d in total.inputs.all()] == ["chart.people"]


def test_a_step_reading_an_unknown_dataset_is_refused(admin_client, wh, chart_datasets):
    data = pipeline_post(
        "broken",
        step_form(0, name="a", output=chart_datasets["a"].pk, sql="SELECT * FROM chart.nowhere"),
    )
    resp = admin_client.post(url("pipeline_add"), data)
    assert resp.status_code == 200
    assert "Unknown dataset(s): chart.nowhere" in resp.content.decode()
    assert not Pipeline.objects.exists() and not Step.objects.exists()


def test_a_step_reading_a_dataset_nobody_produces_is_refused(admin_client, wh, chart_datasets):
    data = pipeline_post(
        "orphan", step_form(0, name="a", output=chart_datasets["a"].pk, sql="SELECT * FROM chart.b")
    )
    resp = admin_client.post(url("pipeline_add"), data)
    assert resp.status_code == 200
    assert "Step &#x27;a&#x27; reads chart.b, which no step produces." in resp.content.decode()
    assert not Pipeline.objects.exists() and not Step.objects.exists()


def test_a_cycle_is_refused(admin_client, wh, chart_datasets):
    data = pipeline_post(
        "loop",
        step_form(0, name="a", output=chart_datasets["a"].pk, sql="SELECT * FROM chart.b"),
        step_form(1, name="b", output=chart_datasets["b"].pk, sql="SELECT * FROM chart.a"),
    )
    resp = admin_client.post(url("pipeline_add"), data)
    assert resp.status_code == 200
    assert "The steps form a cycle: a -&gt; b." in resp.content.decode()
    assert not Pipeline.objects.exists() and not Step.objects.exists()


def test_a_step_without_a_kind_is_a_field_error_not_a_crash(admin_client, wh, chart_datasets):
    data = pipeline_post(
        "nokind",
        step_form(0, name="a", kind="", output=chart_datasets["a"].pk, sql="SELECT 1 FROM chart.b"),
    )
    resp = admin_client.post(url("pipeline_add"), data)
    assert resp.status_code == 200
    assert "This field is required." in resp.content.decode()
    assert not Pipeline.objects.exists()


def test_a_bad_schedule_is_refused(admin_client, wh):
    resp = admin_client.post(
        url("pipeline_add"), {**pipeline_post("sched"), "schedule": "every day"}
    )
    assert resp.status_code == 200
    assert "A crontab has five fields" in resp.content.decode()
    assert not Pipeline.objects.exists()


def test_a_schedule_shows_its_beat_task(admin_client, wh):
    resp = admin_client.post(
        url("pipeline_add"), {**pipeline_post("nightly"), "schedule": "0 2 * * *"}
    )
    assert resp.status_code == 302
    pipeline = Pipeline.objects.get(name="nightly")
    assert pipeline.periodic_task is not None
    body = admin_client.get(url("pipeline_change", pipeline.pk)).content.decode()
    assert (
        reverse("admin:django_celery_beat_periodictask_change", args=[pipeline.periodic_task.pk])
        in body
    )


# --- sources --------------------------------------------------------------------------------
def test_source_form_validates_with_the_model(admin_client, db):
    data = {
        "name": "bad",
        "kind": "url",
        "format": "csv",
        "location": "ftp://example.com/x.csv",
        "database": "",
        "query": "",
        "options": '{"delimiter": ";;"}',
        "schema": "[]",
        "description": "",
    }
    resp = admin_client.post(reverse("admin:pipelines_source_add"), data)
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "A URL source needs an http:// or https:// URL." in body
    assert "delimiter must be a single character." in body
    assert not Source.objects.exists()


def test_source_list_counts_the_steps_using_it(admin_client, wh, simple_pipeline):
    simple_pipeline()
    resp = admin_client.get(reverse("admin:pipelines_source_changelist"))
    assert resp.context["cl"].result_list[0].steps_count == 1
