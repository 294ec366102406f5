"""A run's timeline: step bars from the recorded times, hook time inside and after each step."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from pipelines.models import RunStatus
from pipelines.tests.conftest import run_now
from pipelines.timeline import spans


@pytest.mark.slow
@pytest.mark.step_hooks  # the project's hooks, as make demo runs them: the PII scan after the ingest
def test_hook_time_is_recorded_and_drawn_inside_and_after_each_step(admin_client, wh, simple_pipeline):
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.SUCCEEDED
    ingest = run.step_runs.get(step_name="ingest")
    spent = ingest.details["hook_seconds"]
    assert spent["published compliance"] > 0  # the PII scan after the ingest, outside the step's own time
    rows = {s.label: s for s in spans(run)}
    assert list(rows) == ["ingest", "refine", "total"]
    assert rows["ingest"].seconds == pytest.approx((ingest.finished_at - ingest.started_at).total_seconds())
    assert ("published compliance", "PII scan", spent["published compliance"]) in rows["ingest"].after
    assert rows["refine"].start >= rows["ingest"].start + rows["ingest"].seconds

    page = admin_client.get(reverse("admin:pipelines_pipelinerun_change", args=[run.pk])).content.decode()
    timeline = page.split('id="run-timeline"')[1].split("</fieldset>")[0]
    bars = re.findall(r'class="atlas-span atlas-s-succeeded"[^>]*data-x="(\w+)" data-start="[\d.]+" data-value="([\d.]+)"', timeline)
    assert [name for name, _v in bars] == ["ingest", "refine", "total"]
    assert float(dict(bars)["ingest"]) == pytest.approx(rows["ingest"].seconds, abs=0.001)
    assert 'data-series="published compliance"' in timeline and "PII scan" in timeline  # and in the table
    assert "<th scope=\"col\">then, after publishing</th>" in timeline


def test_a_run_without_started_steps_has_no_timeline(admin_client, db):
    from pipelines.models import Pipeline, PipelineRun

    run = PipelineRun.objects.create(pipeline=Pipeline.objects.create(name="p"), trigger="manual")
    page = admin_client.get(reverse("admin:pipelines_pipelinerun_change", args=[run.pk])).content.decode()
    assert 'id="run-timeline"' not in page
