"""OpenLineage events of step runs: START then COMPLETE or FAIL, with their facets, valid by the official schema."""

import filecmp

import pytest

from lineage import events
from lineage.models import OutboxEvent
from pipelines.models import RunStatus, Step

from .conftest import run_now


def test_every_step_emits_start_then_complete_and_each_event_validates(wh, simple_pipeline, lineage_hook, official_spec):
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.SUCCEEDED, run.error
    emitted = list(OutboxEvent.objects.order_by("id"))
    assert [(e.job_name.split("/")[1], e.event_type) for e in emitted] == [
        ("people.ingest", "START"), ("people.ingest", "COMPLETE"),
        ("people.refine", "START"), ("people.refine", "COMPLETE"),
        ("people.total", "START"), ("people.total", "COMPLETE"),
    ]
    for event in emitted:
        assert events.validation_errors(event.payload, official_spec) == [], event
    assert len({e.ordering_key for e in emitted}) == 1
    complete = emitted[-1].payload
    assert complete["run"]["facets"]["parent"]["job"]["name"] == "people"
    assert complete["run"]["facets"]["parent"]["run"]["runId"] == emitted[0].ordering_key
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
    ingest = emitted[1].payload
    assert ingest["inputs"][0]["namespace"] == "file"
    assert ingest["outputs"][0]["facets"]["columnLineage"]["fields"]["name"]["inputFields"][0]["field"] == "name"


def test_a_failed_step_emits_fail_with_its_error_message(wh, simple_pipeline, lineage_hook, official_spec):
    pipeline = simple_pipeline()
    Step.objects.filter(pipeline=pipeline, name="total").update(sql="SELECT CAST(name AS integer) AS boom FROM chart.people")
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    fail = OutboxEvent.objects.get(event_type="FAIL")
    assert events.validation_errors(fail.payload, official_spec) == []
    facet = fail.payload["run"]["facets"]["errorMessage"]
    step_run = run.step_runs.get(step_name="total")
    assert facet["programmingLanguage"] == "python" and facet["message"] == step_run.error != ""
    assert "Traceback" in facet["stackTrace"]
    assert OutboxEvent.objects.filter(job_name__endswith="people.total").values_list("event_type", flat=True)[0] == "START"


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
    fail = OutboxEvent.objects.get(event_type="FAIL")
    assert events.validation_errors(fail.payload, official_spec) == []
    assertions = {a["name"]: a for a in fail.payload["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]}
    has_amount = {k: v for k, v in assertions["has_amount"].items() if k not in ("description", "params")}
    assert has_amount == {"assertion": "not_null", "success": True, "column": "amount", "severity": "warn", "name": "has_amount"}
    assert assertions["many_people"]["success"] is False and assertions["many_people"]["severity"] == "error"
