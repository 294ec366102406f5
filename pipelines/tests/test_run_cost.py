"""A run's fixed cost (issue 14: 200 runs due in one minute): what one small run reads and writes.

The budgets pin the metadata queries (Django's database) of a one-step run with every default
hook, on the engine of this pass, so the cost cannot creep back: before ``pipelines.memo`` and
the lineage and catalogue written only where they change, the same run made 110 on PostgreSQL
outside a test (at most 60 now on its first run, 49 on the next, in a test's transaction). The
other tests check that reading once changes nothing a run records.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from atlas import extensions
from atlas.models import AuditEvent
from lineage import graph
from lineage.models import LineageEdge, LineageNode, OutboxEvent
from pipelines import memo, runner
from pipelines.models import Dataset, Pipeline, RunStatus, Step

from .conftest import run_now
from .workers import pooled_pipelines

# Metadata queries of a one-step aggregate run, every default hook, the events not kept (no
# OpenLineage endpoint): its pipeline's first run, and a run of it after that (nothing changed).
FIRST_RUN_BUDGET = 60
NEXT_RUN_BUDGET = 49
# The same with the events kept (an endpoint configured): the START and COMPLETE events read the graph.
KEPT_EVENTS_BUDGET = 71

WRITES = ("INSERT", "UPDATE", "DELETE")


def metadata_queries(pipeline: Pipeline) -> tuple[list[str], object]:
    run = runner.start_run(pipeline, dispatch=False)
    with CaptureQueriesContext(connection) as captured:
        runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    return [q["sql"] for q in captured.captured_queries], run


def written(queries: list[str], table_prefix: str) -> list[str]:
    return [q for q in queries if q.lstrip().upper().startswith(WRITES) and f'"{table_prefix}' in q]


@pytest.fixture
def one_step(wh, simple_pipeline):
    """``chart.people`` published by a first pipeline; a one-step aggregate pipeline over it."""
    assert run_now(simple_pipeline()).status == RunStatus.SUCCEEDED
    return pooled_pipelines(1)[0]


@pytest.mark.step_hooks
def test_a_step_whose_input_vanished_after_planning_fails_with_the_reason(wh, simple_pipeline):
    """What planning read is not what a step sees: each step reads its inputs as they are when it starts."""
    assert run_now(simple_pipeline()).status == RunStatus.SUCCEEDED
    people = Dataset.objects.get(layer="chart", table="people")
    pipeline = Pipeline.objects.create(name="two")
    first = Dataset.objects.create(name="first", layer="navigate", table="first")
    second = Dataset.objects.create(name="second", layer="navigate", table="second")
    Step.objects.create(pipeline=pipeline, name="a", kind="aggregate", output=first,
                        sql="SELECT count(*) AS n FROM chart.people")
    Step.objects.create(pipeline=pipeline, name="b", kind="aggregate", output=second, position=1,
                        sql="SELECT count(*) AS n FROM chart.people")
    with extensions.added("zz_run_cost", {"step_hooks": [DropPeopleAfterA]}):
        run = run_now(pipeline)
    by_name = {sr.step_name: sr for sr in run.step_runs.all()}
    assert by_name["a"].status == RunStatus.SUCCEEDED
    assert by_name["b"].status == RunStatus.FAILED
    assert by_name["b"].error == f"Input {people.qualified_table} has not been loaded yet; run the step that produces it."
    assert not memo.active()  # the run's scopes ended with it


class DropPeopleAfterA:
    """A hook of the test above: the table both steps read is dropped once step ``a`` published."""

    order = 950

    def published(self, ctx) -> None:
        if ctx.step.name == "a":
            ctx.warehouse.drop_table("chart", "people")


def test_a_lookup_that_failed_is_not_remembered():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("lost")
        return 42

    with memo.scope():
        with pytest.raises(ConnectionError):
            memo.remembered(("k",), flaky)
        assert memo.remembered(("k",), flaky) == 42
        assert memo.remembered(("k",), flaky) == 42
    assert len(calls) == 2
    assert memo.remembered(("k",), lambda: 7) == 7  # outside a scope: nothing remembered


@pytest.mark.step_hooks
def test_a_one_step_run_stays_within_its_metadata_query_budget(one_step, settings):
    settings.OPENLINEAGE_KEEP_WITHOUT_ENDPOINT = False
    settings.OPENLINEAGE_URL = ""
    events = OutboxEvent.objects.count()
    first, _ = metadata_queries(one_step)
    assert len(first) <= FIRST_RUN_BUDGET, "\n".join(first)
    output = one_step.steps.get().output
    assert sorted(LineageNode.objects.filter(parent__dataset=output).values_list("column", flat=True)) == [
        "people", "pipeline"]  # no event kept, the graph refreshed all the same
    nodes, edges = LineageNode.objects.count(), LineageEdge.objects.count()
    following, _ = metadata_queries(one_step)
    assert len(following) <= NEXT_RUN_BUDGET, "\n".join(following)
    # Nothing changed: the lineage graph and the catalogue's columns are not written again.
    assert written(following, "lineage_") == []
    assert written(following, "pipelines_datasetcolumn") == []
    assert (LineageNode.objects.count(), LineageEdge.objects.count()) == (nodes, edges)
    assert OutboxEvent.objects.count() == events  # no endpoint: no event kept


@pytest.mark.step_hooks
def test_a_one_step_run_with_its_events_kept_stays_within_its_budget(one_step):
    metadata_queries(one_step)
    kept = OutboxEvent.objects.count()
    queries, run = metadata_queries(one_step)
    assert len(queries) <= KEPT_EVENTS_BUDGET, "\n".join(queries)
    kinds = list(OutboxEvent.objects.order_by("id").values_list("event_type", flat=True))[kept:]
    assert kinds == ["START", "START", "COMPLETE", "COMPLETE"]  # the pipeline's, the step's, the step's, the pipeline's


@pytest.mark.step_hooks
def test_reading_once_records_what_a_fresh_trace_records(one_step, settings):
    """The graph a run leaves equals the graph traced from nothing; the catalogue follows the table's shape."""
    settings.OPENLINEAGE_KEEP_WITHOUT_ENDPOINT = False
    settings.OPENLINEAGE_URL = ""
    metadata_queries(one_step)
    step = one_step.steps.get()
    step.sql = "SELECT CAST(count(*) AS text) AS people, 1 AS one FROM chart.people"
    step.save()
    before = AuditEvent.objects.count()
    metadata_queries(one_step)
    output = Dataset.objects.get(pk=step.output_id)
    assert [(c.name, c.position) for c in output.columns.all()] == [("people", 0), ("one", 1)]
    assert output.row_count == 1
    fields = ("source_id", "target_id", "kind", "type", "subtype", "job_namespace", "job_name", "masking")
    after_run = set(LineageEdge.objects.filter(step=step).values_list(*fields))
    LineageEdge.objects.filter(step=step).delete()
    graph.refresh_step(Step.objects.select_related("pipeline", "output").get(pk=step.pk))
    assert set(LineageEdge.objects.filter(step=step).values_list(*fields)) == after_run
    columns = LineageNode.objects.filter(parent__dataset=output).order_by("position")
    assert [(c.column, c.position) for c in columns] == [("people", 0), ("one", 1)]
    assert AuditEvent.objects.count() == before + 1  # the run's trigger, as before; nothing more
