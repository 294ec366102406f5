"""The pipeline page draws its steps as a graph, coloured by the last run."""

from __future__ import annotations

import re

from django.urls import reverse

from pipelines.graph import step_graph
from pipelines.runner import save_step_inputs
from pipelines.tests.conftest import run_now


def test_steps_are_placed_after_what_they_read_and_coloured_by_the_last_run(admin_client, wh, simple_pipeline):
    pipeline = simple_pipeline()
    save_step_inputs(pipeline)
    nodes, edges, last = step_graph(pipeline)
    assert [(n["step"].name, n["column"], n["status"]) for n in nodes] == [
        ("ingest", 0, "never"), ("refine", 1, "never"), ("total", 2, "never"),
    ]
    assert edges == [("ingest", "refine"), ("refine", "total")] and last is None

    run = run_now(pipeline)
    page = admin_client.get(reverse("admin:pipelines_pipeline_change", args=[pipeline.pk])).content.decode()
    graph = page.split('id="pipeline-graph"')[1].split("</fieldset>")[0]
    assert re.findall(r'data-step="(\w+)" data-status="(\w+)"', graph) == [
        ("ingest", "succeeded"), ("refine", "succeeded"), ("total", "succeeded"),
    ]
    assert re.findall(r'data-from="(\w+)" data-to="(\w+)"', graph) == [("ingest", "refine"), ("refine", "total")]
    refine = run.step_runs.get(step_name="refine")
    assert reverse("admin:pipelines_steprun_change", args=[refine.pk]) in graph
    assert "<td>refine</td><td>refine</td><td>chart.people</td><td>ingest</td><td>succeeded</td>" in graph
