"""Re-processing quarantined rows after a fix: the same checks again; nothing lost, nothing doubled."""

from __future__ import annotations

from datetime import datetime

import pytest

from atlas.models import AuditEvent
from quality.models import CheckRun
from quality.reprocess import ReprocessError, reprocess
from quality.service import run_checks

from .conftest import create_table, rows_of

T = datetime(2026, 1, 1)
PUBLISHED = [(1, "a", 1, "A", T), (2, "b", 2, "B", T)]
STAGED = [
    (3, "c", 3, "C", T),  # fails code_known only: comes back once C is accepted
    (4, None, 4, "C", T),  # fails code_known and has_name: stays, with has_name as its reason
    (1, "dup", 5, "C", T),  # id 1 is already published: stays as a duplicate
    (5, "e", 5, "A", T),  # passes: published by the step
]


def quarantined(wh) -> list[tuple]:
    with wh.cursor() as cur:
        return cur.execute(
            'SELECT "id", "name", "_failed_checks", "_check_run_id" FROM chart."items__quarantine"'
            ' ORDER BY CAST("id" AS integer), "name"'
        ).fetchall()


@pytest.fixture
def after_a_step(wh, table, check):
    ds = table(PUBLISHED)
    create_table(wh, "chart", "items__stg", STAGED)
    known = check(ds, "accepted_values", ["code"], severity="drop", name="code_known", values=["A", "B"])
    check(ds, "not_null", ["name"], severity="drop", name="has_name")
    check(ds, "range", ["amount"], severity="warn", name="small", max=4)
    step = run_checks(ds, trigger="step", schema="chart", table="items__stg")
    assert step.rows_quarantined == 3
    with wh.cursor() as cur:  # publish (append) what the gate let through
        cur.execute('INSERT INTO chart."items" SELECT * FROM chart."items__stg"')
    return ds, known, step


def test_rows_pass_after_the_check_is_fixed_and_the_rest_stay_with_new_reasons(wh, after_a_step, check, admin_user):
    ds, known, step = after_a_step
    check(ds, "unique", ["id"], severity="fail", name="one_id")
    known.params = {"values": ["A", "B", "C"]}
    known.save()
    before = len(rows_of(wh, "chart", "items")) + len(quarantined(wh))

    done = reprocess(ds, actor=admin_user)

    assert (done.selected, done.published, done.requarantined) == (3, 1, 2)
    assert [r[0] for r in rows_of(wh, "chart", "items")] == [1, 2, 3, 5]
    assert [(r[0], r[2], r[3]) for r in quarantined(wh)] == [
        ("1", "one_id", done.check_run.pk),
        ("4", "has_name", done.check_run.pk),
    ]
    assert len(rows_of(wh, "chart", "items")) + len(quarantined(wh)) == before
    run = done.check_run
    assert (run.trigger, run.status, run.rows_checked, run.rows_quarantined) == ("reprocess", "warned", 3, 2)
    results = {r.check_name: (r.outcome, r.failing_rows) for r in run.results.all()}
    assert results == {"code_known": ("pass", 0), "has_name": ("warn", 1), "one_id": ("fail", 1), "small": ("warn", 1)}
    assert AuditEvent.objects.filter(action="quality.reprocess").count() == 1
    assert not wh.table_exists("chart", f"items__reproc{run.pk}")


def test_only_the_selected_check_runs_rows_and_nothing_twice(wh, after_a_step, check):
    ds, known, step = after_a_step
    known.params = {"values": ["A", "B", "C"]}
    known.save()
    assert reprocess(ds, check_run_ids=[step.pk + 1000]).selected == 0
    first = reprocess(ds, check_run_ids=[step.pk])
    assert (first.published, first.requarantined) == (2, 1)
    second = reprocess(ds, check_run_ids=[step.pk])  # those rows were moved: nothing is left under that run
    assert second.selected == 0 and second.check_run is None
    ids = sorted(r[0] for r in rows_of(wh, "chart", "items"))
    assert ids == [1, 1, 2, 3, 5]  # without a uniqueness check the duplicate id is welcome


def test_a_blocking_check_that_errors_moves_nothing(wh, after_a_step, check):
    ds, _known, _step = after_a_step
    check(ds, "custom_row", [], severity="fail", name="code_number", sql="CAST(code AS integer) > 0")
    before = (rows_of(wh, "chart", "items"), quarantined(wh))
    with pytest.raises(ReprocessError, match="code_number"):
        reprocess(ds)
    assert (rows_of(wh, "chart", "items"), quarantined(wh)) == before
    run = CheckRun.objects.get(trigger="reprocess")
    assert run.status == "error" and "code_number" in run.error


def test_nothing_published_yet_is_a_clear_error(table, check):
    ds = table([])
    ds.table = "never_loaded"
    ds.save()
    with pytest.raises(ReprocessError, match="not been published"):
        reprocess(ds)


def test_no_quarantine_means_nothing_to_do(table):
    ds = table(PUBLISHED)
    assert str(reprocess(ds)) == "No check-quarantined rows were selected; nothing to re-process."


def test_a_rebuilt_table_reprocesses_only_the_rows_of_its_latest_build(wh, settings, simple_pipeline):
    from pipelines.tests.conftest import run_now
    from quality.models import Check

    settings.ATLAS_STEP_HOOKS = ["quality.hooks.QualityGate"]
    pipeline = simple_pipeline()
    people = pipeline.steps.get(name="refine").output  # written with "replace"
    small = Check.objects.create(dataset=people, name="small", kind="range", columns=["amount"], params={"min": 6},
                                 severity="drop")
    run_now(pipeline)
    run_now(pipeline)
    assert wh.row_count("chart", "people__quarantine") == 2  # Cy, once per build
    small.params = {"min": 1}
    small.save()
    done = reprocess(people)
    assert (done.selected, done.published) == (1, 1)
    assert sorted(r[1] for r in rows_of(wh, "chart", "people")) == ["Ann", "Bob", "Cy"]
    assert wh.row_count("chart", "people__quarantine") == 1  # the superseded copy, kept as history


def test_the_command_and_the_task_are_doors_onto_the_same_service(wh, after_a_step, capsys):
    from django.core.management import CommandError, call_command

    from quality.tasks import reprocess_quarantine_task

    ds, known, step = after_a_step
    known.params = {"values": ["A", "B", "C"]}
    known.save()
    call_command("reprocess_quarantine", "chart.items", "--check-run", str(step.pk + 1000))
    assert "nothing to re-process" in capsys.readouterr().out
    done = reprocess_quarantine_task.delay(ds.pk, [step.pk]).get()
    assert (done["selected"], done["published"], done["requarantined"]) == (3, 2, 1)
    call_command("reprocess_quarantine", "items")
    assert "1 row(s) re-processed: 0 published, 1 still failing" in capsys.readouterr().out
    with pytest.raises(CommandError, match="Unknown dataset"):
        call_command("reprocess_quarantine", "nope")


@pytest.fixture
def quarantined_by_a_step(wh, settings, simple_pipeline):
    """A refine step whose drop check quarantined Cy; the check then fixed so that Cy passes."""
    from pipelines.tests.conftest import run_now
    from quality.models import Check

    settings.OPENLINEAGE_URL = ""
    settings.ATLAS_STEP_HOOKS = ["quality.hooks.QualityGate"]
    pipeline = simple_pipeline()
    people = pipeline.steps.get(name="refine").output
    small = Check.objects.create(dataset=people, name="small", kind="range", columns=["amount"], params={"min": 6},
                                 severity="drop")
    assert run_now(pipeline).status == "succeeded"
    small.params = {"min": 1}
    small.save()
    return pipeline, people


def test_reprocessing_into_a_published_table_runs_the_step_hooks(wh, settings, quarantined_by_a_step):
    """Through the runner as the producing step: the lineage hook records the write (and its parent run starts)."""
    from lineage import events
    from lineage.models import OutboxEvent
    from pipelines.models import PipelineRun

    pipeline, people = quarantined_by_a_step
    settings.ATLAS_STEP_HOOKS = ["quality.hooks.QualityGate", "lineage.hooks.LineageHook"]
    done = reprocess(people)
    assert (done.selected, done.published) == (1, 1)
    run = PipelineRun.objects.filter(pipeline=pipeline).latest("id")
    [step_run] = run.step_runs.all()
    assert (run.status, step_run.step_name, step_run.rows_out) == ("succeeded", "refine", 1)
    assert done.check_run.step_run_id == step_run.pk
    emitted = list(OutboxEvent.objects.order_by("id").values_list("run_uuid", "event_type", "step_run_id"))
    parent = events.pipeline_run_uuid(run)
    assert [(e[1], e[2]) for e in emitted] == [("START", None), ("START", step_run.pk), ("COMPLETE", step_run.pk),
                                               ("COMPLETE", None)]
    assert emitted[0][0] == emitted[-1][0] == parent
    complete = OutboxEvent.objects.get(event_type="COMPLETE", step_run=step_run).payload
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 1
    assertions = complete["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]
    assert [(a["name"], a["success"]) for a in assertions] == [("small", True)]
    people.refresh_from_db()
    assert people.row_count == 3  # the runner refreshed the dataset it published


def test_reprocessing_cannot_publish_past_the_pii_gate(wh, settings, quarantined_by_a_step):
    """Confirmed PII in a column with no policy: refused like the step itself would be; nothing moves."""
    from compliance.models import PiiFinding

    pipeline, people = quarantined_by_a_step
    settings.ATLAS_STEP_HOOKS = ["compliance.hooks.PiiHook", "quality.hooks.QualityGate"]
    PiiFinding.objects.create(dataset=people, column="name", entity="PERSON", status=PiiFinding.Status.CONFIRMED)
    before = (rows_of(wh, "chart", "people"), wh.row_count("chart", "people__quarantine"))
    with pytest.raises(ReprocessError, match="confirmed PII without a policy"):
        reprocess(people)
    assert (rows_of(wh, "chart", "people"), wh.row_count("chart", "people__quarantine")) == before
    assert CheckRun.objects.get(trigger="reprocess").status == "error"
    run = pipeline.runs.latest("id")
    assert run.status == "failed" and "confirmed PII" in run.step_runs.get().error


def test_reprocessing_is_refused_while_the_pipeline_runs(wh, quarantined_by_a_step):
    from pipelines import runner

    pipeline, people = quarantined_by_a_step
    runner.start_run(pipeline, dispatch=False)
    with pytest.raises(ReprocessError, match="already has a run in progress"):
        reprocess(people)
