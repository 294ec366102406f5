"""Receiving OpenLineage events on POST /api/v1/lineage: validated, stored, merged into the graph."""

import base64
import uuid

import pytest
from django.contrib.auth import get_user_model
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import column_lineage_dataset, schema_dataset
from openlineage.client.transport.http import HttpConfig, HttpTransport
from rest_framework.test import APIClient

from lineage import graph
from lineage.models import LineageEdge, ReceivedEvent

from .conftest import run_now


def _event() -> RunEvent:
    out_fields = column_lineage_dataset.Fields(
        inputFields=[column_lineage_dataset.InputField(namespace="atlas", name="navigate.people_total", field="amount",
                     transformations=[column_lineage_dataset.Transformation(type="DIRECT", subtype="TRANSFORMATION")])]
    )
    return RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-11-25T10:00:00Z",
        run=Run(runId=str(uuid.uuid4())),
        job=Job(namespace="airflow", name="reports.export_totals"),
        inputs=[InputDataset(namespace="atlas", name="navigate.people_total")],
        outputs=[
            OutputDataset(
                namespace="s3://reports", name="totals.csv",
                facets={
                    "schema": schema_dataset.SchemaDatasetFacet(fields=[schema_dataset.SchemaDatasetFacetFields(name="total", type="DECIMAL")]),
                    "columnLineage": column_lineage_dataset.ColumnLineageDatasetFacet(fields={"total": out_fields}),
                },
            )
        ],
        producer="https://github.com/apache/airflow",
    )


@pytest.mark.django_db(transaction=True)
def test_openlineage_http_transport_reports_into_atlas_and_the_graph_shows_it(live_server, wh, simple_pipeline, lineage_hook):
    run_now(simple_pipeline())
    get_user_model().objects.create_superuser("airflow", "a@example.com", "pw-airflow")
    basic = base64.b64encode(b"airflow:pw-airflow").decode()
    transport = HttpTransport(HttpConfig(url=live_server.url, custom_headers={"Authorization": f"Basic {basic}"}))
    transport.emit(_event())

    received = ReceivedEvent.objects.get()
    assert (received.job_namespace, received.job_name, received.event_type) == ("airflow", "reports.export_totals", "COMPLETE")
    assert received.received_by.username == "airflow"
    down = graph.column_lineage("people_total", graph.DOWNSTREAM)
    assert [(n.namespace, n.name, n.column) for n in down] == [("s3://reports", "totals.csv", "total")]
    up = graph.column_lineage("s3://reports:totals.csv", graph.UPSTREAM)
    assert {"explore.people.amount", "chart.people.amount"} <= {f"{n.name}.{n.column}" for n in up}

    transport.emit(_event())  # the same job again: its edges are replaced, not doubled
    assert LineageEdge.objects.filter(job_namespace="airflow", kind="column").count() == 1
    assert ReceivedEvent.objects.count() == 2


def test_an_invalid_event_is_refused_with_the_schema_errors_and_nothing_is_stored(admin_client, db):
    response = admin_client.post(
        "/api/v1/lineage", {"eventType": "START", "run": {"runId": "nope"}}, content_type="application/json"
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "run/runId: 'nope' is not a valid uuid" in body and "the required property job is missing" in body
    assert not ReceivedEvent.objects.exists()
    response = admin_client.post("/api/v1/lineage", "[1, 2]", content_type="application/json")
    assert response.status_code == 400 and "JSON object" in response.content.decode()


def test_receiving_needs_a_staff_login(db):
    response = APIClient().post("/api/v1/lineage", {}, format="json")
    assert response.status_code in (401, 403)


def test_the_graph_endpoint_returns_the_pages_json(admin_client, wh, simple_pipeline, lineage_hook):
    run_now(simple_pipeline())
    response = admin_client.get("/api/v1/lineage", {"dataset": "people", "depth": 2})
    assert response.status_code == 200
    data = response.json()
    assert {n["name"] for n in data["nodes"]} == {"explore.people", "chart.people", "navigate.people_total", "people"} or {
        n["name"] for n in data["nodes"]
    } >= {"explore.people", "chart.people", "navigate.people_total"}
    assert data["edges"] and data["column_edges"]
    assert admin_client.get("/api/v1/lineage", {"dataset": "nothing"}).status_code == 404
    assert admin_client.get("/api/v1/lineage").status_code == 400
    assert admin_client.get("/api/v1/lineage", {"dataset": "people", "depth": "x"}).status_code == 400
    assert admin_client.get("/api/v1/lineage", {"dataset": "people", "direction": "sideways"}).status_code == 400


def test_a_dataset_event_adds_the_dataset_and_its_columns(admin_client, db):
    event = {
        "eventTime": "2026-11-25T10:00:00Z",
        "producer": "https://github.com/dbt-labs/dbt-core",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
        "dataset": {
            "namespace": "snowflake://acme", "name": "analytics.customers",
            "facets": {"schema": {
                "_producer": "https://github.com/dbt-labs/dbt-core",
                "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
                "fields": [{"name": "id", "type": "NUMBER"}, {"name": "email", "type": "TEXT"}],
            }},
        },
    }
    response = admin_client.post("/api/v1/lineage", event, content_type="application/json")
    assert response.status_code == 201, response.content
    node = graph.find_dataset_node("snowflake://acme:analytics.customers")
    assert [(c.column, c.data_type) for c in node.children.order_by("position")] == [("id", "NUMBER"), ("email", "TEXT")]
    assert node.origin == "external"


def test_nul_characters_are_refused_clearly_not_a_server_error(admin_client, db):
    event = {
        "eventTime": "2026-11-25T10:00:00Z", "producer": "https://x.example", "eventType": "START",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())}, "job": {"namespace": "n", "name": "bad\x00name"},
    }
    response = admin_client.post("/api/v1/lineage", event, content_type="application/json")
    assert response.status_code == 400 and "NUL characters" in response.content.decode()
    assert not ReceivedEvent.objects.exists()
    response = admin_client.get("/api/v1/lineage", {"dataset": "a\x00b"})
    assert response.status_code == 400 and "NUL" in response.content.decode()
    with pytest.raises(graph.LineageError, match="NUL"):
        graph.find_dataset_node("a\x00b")


def test_names_too_long_to_store_and_unknown_edge_types_are_refused_with_where(admin_client, db):
    event = {
        "eventTime": "2026-11-25T10:00:00Z", "producer": "https://x.example", "eventType": "COMPLETE",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())}, "job": {"namespace": "n", "name": "j"},
        "inputs": [{"namespace": "n", "name": "x" * 501}],
        "outputs": [{"namespace": "n", "name": "out", "facets": {"columnLineage": {
            "_producer": "https://x.example", "_schemaURL": "https://example.com/custom.json",
            "fields": {"a": {"inputFields": [{"namespace": "n", "name": "in", "field": "a",
                                              "transformations": [{"type": "SIDEWAYS"}]}]}},
        }}}],
    }
    response = admin_client.post("/api/v1/lineage", event, content_type="application/json")
    body = response.content.decode()
    assert response.status_code == 400
    assert "inputs[0].name: at most 500 characters" in body
    assert "transformations[0].type: DIRECT or INDIRECT" in body
    assert not ReceivedEvent.objects.exists() and not LineageEdge.objects.exists()


def test_the_dataset_lineage_route_returns_the_same_graph_as_the_page(wh, simple_pipeline, lineage_hook):
    from atlas.api.testing import assert_error, token_client, user_with_role
    from lineage import graph
    from pipelines.models import Dataset

    run_now(simple_pipeline())
    total = Dataset.objects.get(name="people_total")
    analyst = token_client(user_with_role("Analyst"))
    response = analyst.get(f"/api/v1/dataset-lineage/{total.pk}/", {"direction": "upstream", "depth": 2})
    assert response.status_code == 200
    assert response.json() == graph.graph(total, direction="upstream", depth=2)
    assert response.json() == analyst.get("/api/v1/lineage", {"dataset": "people_total", "direction": "upstream", "depth": 2}).json()
    assert [n["name"] for n in response.json()["nodes"]][-1] == "navigate.people_total"
    assert_error(analyst.get(f"/api/v1/dataset-lineage/{total.pk}/", {"direction": "sideways"}), 400, "invalid")
    assert_error(analyst.get(f"/api/v1/dataset-lineage/{total.pk}/", {"depth": "deep"}), 400, "invalid")
    assert_error(analyst.get("/api/v1/dataset-lineage/999999/"), 404, "not_found")
    assert_error(token_client(user_with_role(None)).get(f"/api/v1/dataset-lineage/{total.pk}/"), 403)
