"""A run's "Rows in" is what it took in, not every step's input added (issue 18): pipelines.run_totals."""

from __future__ import annotations

import re

from django.urls import reverse

from pipelines.models import StepRun
from pipelines.run_totals import run_totals


def steps(*rows) -> list[StepRun]:
    return [StepRun(step_name=kind, kind=kind, rows_in=i, rows_out=o, rows_rejected=r) for kind, i, o, r in rows]


# --- failure paths and edges first

def test_a_run_with_no_step_run_yet_has_nothing_in():
    assert run_totals([]) == {"rows_in": 0, "rows_out": 0, "rows_rejected": 0}


def test_an_ingest_that_refused_its_file_took_its_rows_in_and_rejected_them():
    assert run_totals(steps(("ingest", 1500, 0, 1500), ("refine", 0, 0, 0))) == {
        "rows_in": 1500, "rows_out": 0, "rows_rejected": 1500}


def test_a_run_without_an_ingest_takes_in_what_its_first_kind_of_step_reads():
    """A rebuild after an erasure, a quarantine re-processing: the refine reads Explore, from outside the run."""
    assert run_totals(steps(("refine", 299, 299, 0), ("aggregate", 299, 12, 0)))["rows_in"] == 299
    assert run_totals(steps(("aggregate", 40, 4, 0)))["rows_in"] == 40


# --- the rule

def test_rows_in_count_the_ingest_steps_only_out_and_rejected_every_step():
    totals = run_totals(steps(("ingest", 300, 296, 4), ("ingest", 50, 50, 0), ("refine", 346, 340, 6),
                              ("aggregate", 340, 12, 0)))
    assert totals == {"rows_in": 350, "rows_out": 296 + 50 + 340 + 12, "rows_rejected": 10}


def test_a_finished_run_stores_and_shows_what_it_took_in(wh, simple_pipeline, admin_client):
    from .conftest import run_now

    run = run_now(simple_pipeline())
    by_step = {sr.step_name: sr.rows_in for sr in run.step_runs.all()}
    assert by_step == {"ingest": 3, "refine": 3, "total": 3}  # each step's own input, on the step table
    assert (run.rows_in, run.rows_out, run.rows_rejected) == (3, 7, 0)  # the run: 3 rows came in
    page = admin_client.get(reverse("admin:pipelines_pipelinerun_change", args=[run.pk])).content.decode()
    assert re.search(r"<label>Rows in:</label>\s*<div class=\"readonly\">3</div>", page)
    assert "Rows in: what the run took in" in page
    listed = admin_client.get(reverse("admin:pipelines_pipelinerun_changelist")).content.decode()
    assert re.search(r'<td class="field-rows_in">3</td>', listed)
