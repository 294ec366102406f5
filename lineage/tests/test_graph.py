"""The stored graph: refreshed by the hook, walked in one query, PII carried and stopped, printed."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from demo.install import PIPELINE
from lineage import graph
from lineage.models import LineageEdge, LineageNode
from pipelines.models import Dataset, Pipeline, RunStatus

from .conftest import run_now


def names(nodes):
    return {f"{n.name}.{n.column}" for n in nodes}


def test_a_published_step_stores_dataset_and_column_edges(wh, simple_pipeline, lineage_hook):
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.SUCCEEDED, run.error
    up = graph.column_lineage("people_total", graph.UPSTREAM)
    assert {"chart.people.amount", "explore.people.amount"} <= names(up)
    assert "explore.people.name" not in names(up)  # the total never reads names
    sources = [n for n in up if n.origin == "source"]
    assert {n.column for n in sources} == {"amount"} and sources[0].namespace == "file"
    edge = LineageEdge.objects.get(source__column="amount", source__name="chart.people", target__name="navigate.people_total")
    assert (edge.type, edge.subtype, edge.job_name) == ("DIRECT", "AGGREGATION", "people.total")


def test_downstream_and_depth_limits(wh, simple_pipeline, lineage_hook):
    run_now(simple_pipeline())
    down = graph.column_lineage("raw_people", graph.DOWNSTREAM)
    assert {"chart.people.name", "chart.people.amount", "navigate.people_total.amount"} <= names(down)
    near = graph.column_lineage("raw_people", graph.DOWNSTREAM, depth=1)
    assert "navigate.people_total.amount" not in names(near) and "chart.people.amount" in names(near)
    root = graph.find_dataset_node("people_total")
    reached = graph.walk([root.pk], graph.UPSTREAM, columns=False)
    assert {LineageNode.objects.get(pk=i).name for i in reached} >= {"chart.people", "explore.people"}


def test_an_upstream_walk_is_one_query_on_a_graph_of_thousands_of_columns(db):
    ns = graph.namespace()
    layers = [LineageNode.objects.create(kind="dataset", namespace=ns, name=f"big.t{i}") for i in range(30)]
    cols = []
    for ds in layers:
        cols.append(
            LineageNode.objects.bulk_create(
                [LineageNode(kind="column", namespace=ns, name=ds.name, column=f"c{j}", parent=ds) for j in range(100)]
            )
        )
    LineageEdge.objects.bulk_create(
        [
            LineageEdge(source=cols[i][j], target=cols[i + 1][j], kind="column", job_namespace=ns, job_name=f"j{i}")
            for i in range(29)
            for j in range(100)
        ]
    )
    start = [c.pk for c in cols[-1]]
    with CaptureQueriesContext(connection) as queries:
        reached = graph.walk(start, graph.UPSTREAM, columns=True)
    assert len(queries) == 1
    assert len([i for i in reached if i in {c.pk for layer in cols for c in layer}]) == 3000
    assert reached[cols[0][0].pk] == 29


def test_pii_flows_along_direct_edges_and_stops_at_a_protected_column(wh, simple_pipeline, lineage_hook):
    run_now(simple_pipeline())
    graph.mark_pii("raw_people", "name", "PERSON")
    carriers = graph.pii_carriers()
    name_cols = {n.name: n.pk for n in LineageNode.objects.filter(column="name")}
    assert carriers[name_cols["chart.people"]] == {"PERSON"}
    graph.set_pii_protected("people", "name")
    assert name_cols["chart.people"] not in graph.pii_carriers()
    with pytest.raises(graph.LineageError, match="no column 'nope'"):
        graph.mark_pii("people", "nope", "EMAIL_ADDRESS")
    with pytest.raises(graph.LineageError, match="Unknown dataset"):
        graph.mark_pii("no_such_dataset", "x", "EMAIL_ADDRESS")


def test_a_step_whose_inputs_were_never_published_keeps_its_dataset_lineage_with_a_warning(wh, simple_pipeline):
    pipeline = simple_pipeline()
    results = {r.step.name: r for r in graph.refresh_pipeline(pipeline)}
    assert "explore.people are not known yet" in results["refine"].warning
    assert LineageEdge.objects.filter(kind="dataset", target__name="chart.people").count() == 1


def test_the_demo_revenue_table_shows_every_explore_column_feeding_it_with_pii_flagged(wh, lineage_hook):
    call_command("load_demo", "--rows", "300")
    run = run_now(Pipeline.objects.get(name=PIPELINE))
    assert run.status == RunStatus.SUCCEEDED, run.error
    graph.mark_pii("explore.orders", "shipping_city", "LOCATION")
    graph.mark_pii("explore.customers", "customer_id", "PERSON_ID")
    up = [n for n in graph.column_lineage("navigate.daily_revenue", graph.UPSTREAM) if n.name.startswith("explore.")]
    assert names(up) == {
        "explore.orders.order_id", "explore.orders.order_date", "explore.orders.status", "explore.orders.currency",
        "explore.orders._ingested_at", "explore.orders._row_number",
        "explore.order_items.order_id", "explore.order_items.line_no", "explore.order_items.quantity",
        "explore.order_items.unit_price", "explore.order_items._ingested_at", "explore.order_items._row_number",
    }
    data = graph.graph("navigate.customer_lifetime_value", direction=graph.UPSTREAM, depth=5)
    by_name = {n["name"]: n for n in data["nodes"]}
    pii = {c["name"]: c["pii"] for c in by_name["navigate.customer_lifetime_value"]["columns"]}
    assert pii["customer_id"] == ["PERSON_ID"] and pii["orders"] == []
    explore_orders = {c["name"]: c for c in by_name["explore.orders"]["columns"]}
    assert explore_orders["shipping_city"]["pii"] == ["LOCATION"] and not explore_orders["shipping_city"]["in_lineage"]
    assert by_name["navigate.customer_lifetime_value"]["last_run"]["status"] == RunStatus.SUCCEEDED


def test_the_command_prints_upstream_columns_with_pii(wh, simple_pipeline, lineage_hook, capsys):
    run_now(simple_pipeline())
    graph.mark_pii("raw_people", "amount", "SALARY")
    call_command("lineage", "people_total", "--upstream", "--columns")
    out = capsys.readouterr().out
    assert "navigate.people_total.amount  PII: SALARY" in out
    assert "explore.people.amount  [atlas]  PII: SALARY" in out
    assert "downstream:" not in out
    call_command("lineage", "raw_people", "--downstream")
    out = capsys.readouterr().out
    assert "chart.people" in out and "navigate.people_total" in out
    with pytest.raises(CommandError, match="Unknown dataset"):
        call_command("lineage", "nothing_here")


def test_saving_a_step_refreshes_its_lineage(wh, simple_pipeline, lineage_hook, django_capture_on_commit_callbacks):
    pipeline = simple_pipeline()
    run_now(pipeline)
    step = pipeline.steps.get(name="total")
    step.sql = "SELECT count(*) AS people, sum(id) AS amount FROM chart.people"
    with django_capture_on_commit_callbacks(execute=True):
        step.save()
    sources = set(LineageEdge.objects.filter(step=step, kind="column", type="DIRECT").values_list("source__column", flat=True))
    assert sources == {"id"}
    assert Dataset.objects.filter(name="people_total").exists()


def test_a_column_a_policy_protects_stops_clear_pii_and_its_edges_say_masking(wh, simple_pipeline, settings):
    compliance = pytest.importorskip("compliance.models")
    settings.ATLAS_STEP_HOOKS = ["compliance.hooks.PiiHook", "lineage.hooks.LineageHook"]
    settings.PII_SCAN_AFTER_INGEST = False
    pipeline = simple_pipeline()
    chart = pipeline.steps.get(name="refine").output
    compliance.ColumnPolicy.objects.create(dataset=chart, column="name", action="hash", entity="PERSON")
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    graph.mark_pii("raw_people", "name", "PERSON")
    graph.mark_pii("raw_people", "id", "PERSON_ID")
    name_edge = LineageEdge.objects.get(target__name="chart.people", target__column="name", type="DIRECT")
    id_edge = LineageEdge.objects.get(target__name="chart.people", target__column="id", type="DIRECT")
    assert name_edge.masking and name_edge.source.column == "name" and not id_edge.masking
    carriers = graph.pii_carriers()
    chart_cols = {c.column: c.pk for c in LineageNode.objects.filter(name="chart.people").exclude(column="")}
    assert chart_cols["name"] not in carriers and carriers[chart_cols["id"]] == {"PERSON_ID"}
    from lineage.models import OutboxEvent

    complete = OutboxEvent.objects.get(event_type="COMPLETE", job_name__endswith="people.refine").payload
    name_in = complete["outputs"][0]["facets"]["columnLineage"]["fields"]["name"]["inputFields"][0]
    assert name_in["field"] == "name" and name_in["transformations"][0]["masking"] is True


def test_pii_flags_are_audited_with_who_set_them(wh, simple_pipeline, lineage_hook, django_user_model):
    from atlas.models import AuditEvent

    run_now(simple_pipeline())
    officer = django_user_model.objects.create_user("dpo")
    graph.mark_pii("raw_people", "name", "PERSON", actor=officer)
    graph.set_pii_protected("people", "name", actor=officer)
    events = list(AuditEvent.objects.filter(action__startswith="lineage.").order_by("id"))
    assert [e.action for e in events] == ["lineage.pii_flag", "lineage.pii_protected"]
    assert all(e.actor == officer for e in events)
