"""A run's end alerts through the run hook: failed, recovered, partially failed, quality — and no PII in the text."""

from __future__ import annotations

import json

import pytest

from alerts import outbox, runs
from alerts.models import AlertEvent, Delivery
from atlas import extensions
from pipelines.models import Pipeline
from pipelines.tests.conftest import run_now
from quality.models import Check

HOOKS = ("alerts.hooks.AlertHook",)
SECRET = "ann.secret@example.com"


class QuotingHook:
    """A step that fails with an error quoting a row value (as a driver or a library may word it)."""

    def staged(self, ctx):
        if ctx.step.name == "refine":
            raise ValueError(f"duplicate key value violates unique constraint: (email)=({SECRET})")


@pytest.mark.step_hooks("alerts.tests.test_runs.QuotingHook", *HOOKS)
def test_a_failing_step_whose_error_quotes_a_value_does_not_leak_it(wh, simple_pipeline, rule, http_sink, smtp_sink):
    pipeline = simple_pipeline()
    rule("hook", url=http_sink.url)
    rule("mail", channel="email", recipients="ops@example.test")
    run = run_now(pipeline)
    # The step's exception quoted the value; the stored error is scrubbed already (atlas.scrub, issue 15).
    assert run.status == "failed" and SECRET not in run.error and "<value>" in run.error, run.error

    [event] = AlertEvent.objects.all()
    assert event.kind == "run_failed" and event.facts["failed_steps"] == "refine"
    assert event.title == f"Pipeline people: run #{run.pk} failed at step(s) refine"
    assert outbox.deliver_pending().delivered
    sent = json.dumps(http_sink.bodies()) + "".join(text for _f, _r, text in smtp_sink.messages)
    assert len(http_sink.received) == 1 and len(smtp_sink.messages) == 1
    assert SECRET not in sent and "secret" not in sent and SECRET not in json.dumps(event.facts)
    assert f"/admin/pipelines/pipelinerun/{run.pk}/change/" in sent


@pytest.mark.step_hooks(*HOOKS)
def test_a_success_after_a_failure_is_a_recovery_and_only_once(wh, simple_pipeline, make_csv, rule):
    pipeline = simple_pipeline("id,name,amount\nx,Ann,10\n", write_mode="replace")
    rule(events=["run_failed", "run_recovered"])
    failed = run_now(pipeline)
    source = pipeline.steps.get(name="ingest").source
    source.location = str(make_csv("id,name,amount\n1,Ann,10\n", name="good.csv"))
    source.save()
    recovered = run_now(pipeline)
    again = run_now(pipeline)
    assert (failed.status, recovered.status, again.status) == ("failed", "succeeded", "succeeded")
    kinds = list(AlertEvent.objects.order_by("pk").values_list("kind", "facts__run"))
    assert kinds == [("run_failed", failed.pk), ("run_recovered", recovered.pk)]
    assert AlertEvent.objects.get(kind="run_recovered").facts["after_run"] == failed.pk
    assert Delivery.objects.count() == 2


@pytest.mark.step_hooks(*HOOKS)
def test_a_rule_of_one_pipeline_gets_only_its_events(wh, simple_pipeline, rule):
    pipeline = simple_pipeline("id,name,amount\nx,Ann,10\n")
    other = Pipeline.objects.create(name="other")
    mine, theirs, everyone = rule("mine", pipeline=pipeline), rule("theirs", pipeline=other), rule("all")
    run_now(pipeline)
    assert list(Delivery.objects.values_list("rule__name", flat=True).order_by("rule__name")) == ["all", "mine"]
    assert mine and theirs and everyone


def test_a_partially_failed_run_alerts_by_its_status_name(wh, simple_pipeline):
    # The status comes from the partial-failure work (issue 14); alerts names it, with or without it.
    run = run_now(simple_pipeline())
    run.status = "partially_failed"
    [event] = runs.run_events(run)
    assert event.kind == "run_partially_failed" and "partially failed" in event.title


@pytest.mark.step_hooks("quality.hooks.QualityGate", *HOOKS)
def test_quality_checks_failing_in_a_run_alert_with_names_and_counts_not_values(wh, simple_pipeline, rule):
    pipeline = simple_pipeline(f"id,name,amount\n1,{SECRET},10\n2,Bob,20\n")
    clean = pipeline.steps.get(name="refine").output
    Check.objects.create(dataset=clean, name="short_names", kind="custom_row", params={"sql": "length(name) < 10"},
                         severity="fail")
    Check.objects.create(dataset=clean, name="some_rows", kind="row_count", params={"min": 5}, severity="warn")
    rule(events=["quality_fail", "quality_warn", "run_failed"])
    run = run_now(pipeline)
    assert run.status == "failed"
    quality = AlertEvent.objects.get(kind="quality_fail")
    assert quality.facts["failed_checks"] == "short_names" and quality.facts["warned_checks"] == "some_rows"
    assert quality.facts["dataset"] == "people" and quality.admin_path.startswith("/admin/quality/checkrun/")
    assert SECRET not in json.dumps(list(AlertEvent.objects.values()), default=str)


@pytest.mark.step_hooks(*HOOKS)
def test_alerts_that_cannot_be_written_never_keep_the_run_from_ending(wh, simple_pipeline, rule):
    rule()

    def broken(run):
        raise RuntimeError("a contributed source is broken")

    with extensions.added("broken_app", {"run_alert_events": [broken]}):
        run = run_now(simple_pipeline("id,name,amount\nx,Ann,10\n"))
    assert run.status == "failed" and run.finished_at is not None
    assert AlertEvent.objects.count() == 0  # the savepoint rolled the partial write back
