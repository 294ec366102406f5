"""OpenLineage events of step runs: START then COMPLETE or FAIL, with their facets, valid by the official schema."""

import filecmp

import pytest

from lineage import events
from lineage.models import OutboxEvent
from pipelines.models import PipelineRun, RunStatus, Step, StepRun

from .conftest import HOOK, run_now


def test_every_step_emits_start_then_complete_and_each_event_validates(wh, simple_pipeline, lineage_hook, official_spec):
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.SUCCEEDED, run.error
    emitted = list(OutboxEvent.objects.order_by("id"))
    assert [(e.job_name.split("/")[1], e.event_type) for e in emitted] == [
        ("people", "START"),
        ("people.ingest", "START"), ("people.ingest", "COMPLETE"),
        ("people.refine", "START"), ("people.refine", "COMPLETE"),
        ("people.total", "START"), ("people.total", "COMPLETE"),
        ("people", "COMPLETE"),
    ]
    for event in emitted:
        assert events.validation_errors(event.payload, official_spec) == [], event
    assert len({e.ordering_key for e in emitted}) == 1
    parent_start, parent_end = emitted[0].payload, emitted[-1].payload
    assert parent_start["run"]["runId"] == parent_end["run"]["runId"] == emitted[0].ordering_key
    assert parent_end["job"]["facets"]["jobType"]["jobType"] == "PIPELINE" and emitted[0].step_run is None
    assert "parent" not in parent_start["run"]["facets"]
    complete = emitted[-2].payload
    assert complete["run"]["facets"]["parent"]["job"]["name"] == "people"
    assert complete["run"]["facets"]["parent"]["run"]["runId"] == parent_start["run"]["runId"]
    assert {e.payload["run"]["facets"]["parent"]["run"]["runId"] for e in emitted[1:-1]} == {emitted[0].ordering_key}
    assert complete["run"]["facets"]["nominalTime"]["nominalStartTime"].endswith("Z")
    assert "sum(amount)" in complete["job"]["facets"]["sql"]["query"]
    assert [i["name"] for i in complete["inputs"]] == ["chart.people"]
    output = complete["outputs"][0]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 1
    assert [f["name"] for f in output["facets"]["schema"]["fields"]] == ["people", "amount"]
    amount = output["facets"]["columnLineage"]["fields"]["amount"]["inputFields"]
    assert amount == [
        {"namespace": "atlas", "name": "chart.people", "field": "amount",
         "transformations": [{"type": "DIRECT", "subtype": "AGGREGATION", "masking": False}]}
    ]
    ingest = emitted[2].payload
    assert ingest["inputs"][0]["namespace"] == "file"
    assert ingest["outputs"][0]["facets"]["columnLineage"]["fields"]["name"]["inputFields"][0]["field"] == "name"


def test_a_failed_step_emits_fail_with_its_error_message(wh, simple_pipeline, lineage_hook, official_spec):
    pipeline = simple_pipeline()
    Step.objects.filter(pipeline=pipeline, name="total").update(sql="SELECT CAST(name AS integer) AS boom FROM chart.people")
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    fail = OutboxEvent.objects.get(event_type="FAIL", step_run__isnull=False)
    assert events.validation_errors(fail.payload, official_spec) == []
    facet = fail.payload["run"]["facets"]["errorMessage"]
    step_run = run.step_runs.get(step_name="total")
    assert facet["programmingLanguage"] == "python" and facet["message"] == step_run.error != ""
    assert "Traceback" in facet["stackTrace"]
    assert OutboxEvent.objects.filter(job_name__endswith="people.total").values_list("event_type", flat=True)[0] == "START"
    pipeline_fail = OutboxEvent.objects.filter(job_name="atlas/people").last()
    assert pipeline_fail.event_type == "FAIL" and pipeline_fail.pk == OutboxEvent.objects.last().pk
    assert events.validation_errors(pipeline_fail.payload, official_spec) == []
    assert pipeline_fail.payload["run"]["facets"]["errorMessage"]["message"] == run.error


def test_a_cancelled_run_ends_with_abort(wh, simple_pipeline, lineage_hook, official_spec):
    from pipelines import runner

    pipeline = simple_pipeline()
    queued = runner.start_run(pipeline, dispatch=False)
    runner.cancel_run(queued)  # cancelled before it started: it never ran, so no event at all
    assert not OutboxEvent.objects.exists()
    run = runner.start_run(pipeline, dispatch=False)
    PipelineRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    runner.execute_run(run.pk)
    assert list(OutboxEvent.objects.values_list("job_name", "event_type")) == [("atlas/people", "START"), ("atlas/people", "ABORT")]
    for event in OutboxEvent.objects.all():
        assert events.validation_errors(event.payload, official_spec) == []


written: list[str] = []


class FailsAfterTheEvent:
    """A hook after lineage's whose ``started`` fails: the step's status and its event must roll back together."""

    def started(self, ctx):
        written.extend(OutboxEvent.objects.filter(step_run=ctx.step_run).values_list("event_type", flat=True))
        raise RuntimeError("the database went away after the event was written")


def test_the_event_is_stored_in_the_transaction_of_the_state_change(wh, simple_pipeline, lineage_hook, settings):
    """The outbox row and the status it reports commit together: a failure after the event write undoes both."""
    from pipelines import runner
    from pipelines.hooks import StepContext

    pipeline = simple_pipeline()
    run = runner.start_run(pipeline, dispatch=False)
    step = pipeline.steps.get(name="ingest")
    step_run = StepRun.objects.create(run=run, step=step, step_name=step.name, kind=step.kind, output=step.output)
    ctx = StepContext(run=run, step=step, step_run=step_run, warehouse=wh, schema="explore", target=step.output.table)
    written.clear()
    settings.ATLAS_STEP_HOOKS = [HOOK, "lineage.tests.test_events.FailsAfterTheEvent"]
    step_run.status = RunStatus.RUNNING
    with pytest.raises(RuntimeError, match="went away"):
        runner.save_step_state(ctx, stage="started")
    assert written == ["START"]  # the event was written inside the transaction ...
    assert StepRun.objects.get(pk=step_run.pk).status == RunStatus.QUEUED  # ... and both rolled back
    assert not OutboxEvent.objects.exists()
    settings.ATLAS_STEP_HOOKS = [HOOK]
    runner.save_step_state(ctx, stage="started")  # without the failure, both are stored
    assert StepRun.objects.get(pk=step_run.pk).status == RunStatus.RUNNING
    assert list(OutboxEvent.objects.values_list("event_type", flat=True)) == ["START"]


def test_a_lineage_failure_never_undoes_the_state_change(wh, simple_pipeline, lineage_hook, monkeypatch):
    from lineage import emit as emit_module
    from lineage import hooks as lineage_hooks

    def broken(*args, **kwargs):
        raise RuntimeError("lineage is broken")

    monkeypatch.setattr(lineage_hooks, "emit", broken)
    monkeypatch.setattr(emit_module, "emit", broken)
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.SUCCEEDED
    assert not OutboxEvent.objects.exclude(job_name="atlas/people").exists()


def test_lineage_off_emits_nothing(wh, simple_pipeline, settings):
    settings.ATLAS_STEP_HOOKS = []
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.SUCCEEDED and not OutboxEvent.objects.exists()


def test_an_invalid_event_is_refused_with_where_and_why(official_spec):
    bad = {"eventTime": "yesterday", "producer": "x", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
           "run": {"runId": "not-a-uuid"}, "job": {"namespace": "n"}, "eventType": "START"}
    errors = events.validation_errors(bad, official_spec)
    assert errors
    bad_facet = {
        "eventTime": "2026-01-01T00:00:00Z", "producer": "https://x", "eventType": "START",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "3f5e9b2c-1c9a-4d7e-8a53-5f9f0d1e2a3b", "facets": {"errorMessage": {
            "_producer": "https://x", "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
            "message": "m"}}},
        "job": {"namespace": "n", "name": "j"},
    }
    errors = events.validation_errors(bad_facet, official_spec)
    assert any("programmingLanguage" in e for e in errors), errors


def test_the_shipped_schema_is_the_official_one(official_spec):
    """Atlas validates received events with its copy in lineage/spec: it must not drift from the official spec."""
    assert filecmp.cmp(events.SPEC_DIR / "OpenLineage.json", official_spec / "OpenLineage.json", shallow=False)
    for facet in (official_spec / "facets").glob("*.json"):
        assert filecmp.cmp(events.SPEC_DIR / "facets" / facet.name, facet, shallow=False), facet.name


def test_quality_checks_on_the_staged_rows_become_data_quality_assertions(wh, simple_pipeline, settings, official_spec):
    quality = pytest.importorskip("quality.models")
    settings.ATLAS_STEP_HOOKS = ["quality.hooks.QualityGate", "lineage.hooks.LineageHook"]
    pipeline = simple_pipeline()
    total = pipeline.steps.get(name="total").output
    quality.Check.objects.create(dataset=total, name="has_amount", kind="not_null", columns=["amount"], severity="warn")
    quality.Check.objects.create(
        dataset=total, name="many_people", kind="row_count", params={"min": 5}, severity="fail"
    )
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED  # the row count gate blocks publishing
    fail = OutboxEvent.objects.get(event_type="FAIL", step_run__isnull=False)
    assert events.validation_errors(fail.payload, official_spec) == []
    assertions = {a["name"]: a for a in fail.payload["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]}
    has_amount = {k: v for k, v in assertions["has_amount"].items() if k not in ("description", "params")}
    assert has_amount == {"assertion": "not_null", "success": True, "column": "amount", "severity": "warn", "name": "has_amount"}
    assert assertions["many_people"]["success"] is False and assertions["many_people"]["severity"] == "error"


@pytest.mark.step_hooks  # the default hooks: this test is about what they do
def test_lineage_is_on_by_default_last_after_the_hooks_that_rewrite(wh, simple_pipeline, official_spec):
    import os


    if os.environ.get("ATLAS_STEP_HOOKS") is not None:
        pytest.skip("ATLAS_STEP_HOOKS is set in the environment; the default is not in use")
    from pipelines.hooks import hook_paths

    assert hook_paths()[-1] == "lineage.hooks.LineageHook"
    run = run_now(simple_pipeline())  # with every default hook: compliance, quality, privacy, lineage
    assert run.status == RunStatus.SUCCEEDED, run.error
    emitted = list(OutboxEvent.objects.order_by("id"))
    assert [e.event_type for e in emitted] == ["START", *["START", "COMPLETE"] * 3, "COMPLETE"]
    for event in emitted:
        assert events.validation_errors(event.payload, official_spec) == [], event
