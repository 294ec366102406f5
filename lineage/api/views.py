"""The lineage API: receive OpenLineage events, and read the graph around a dataset."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.authentication import BasicAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pipelines.models import Dataset

from .. import graph, receive
from ..events import InvalidEvent
from .permissions import LineagePermission
from .serializers import GraphSerializer, ReceivedSerializer


class LineageView(APIView):
    """``/api/v1/lineage``, as Marquez has it.

    ``POST``: one OpenLineage event, validated, stored and merged into the graph.
    ``GET ?dataset=NAME&direction=both&depth=3``: the graph around a dataset, as the page draws it.
    Besides the project's authentication, HTTP Basic works: OpenLineage clients
    (Airflow, dbt, Spark) send it as a custom header.
    """

    authentication_classes = [*APIView.authentication_classes, BasicAuthentication]
    permission_classes = [LineagePermission]

    @extend_schema(
        operation_id="lineage_receive",
        summary="Receive one OpenLineage event",
        description="A RunEvent, DatasetEvent or JobEvent (OpenLineage 2-0-x), validated against the official"
        " schema (formats included: RFC 3339 times, URIs), stored, and merged into the lineage graph; the same"
        " event sent again is answered 200 with the first record, and changes nothing. Needs"
        " lineage.add_receivedevent.",
        request=OpenApiTypes.OBJECT,
        responses={201: ReceivedSerializer, 200: ReceivedSerializer},
        tags=["lineage"],
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError({"event": ["Send one OpenLineage event as a JSON object."]})
        try:
            record, new = receive.receive(dict(request.data), user=request.user)
        except InvalidEvent as exc:
            raise exceptions.ValidationError({"event": exc.errors[:50]}) from exc
        return Response(
            {"id": record.pk, "eventType": record.event_type},
            status=status.HTTP_201_CREATED if new else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="lineage_graph",
        summary="The lineage graph around a dataset",
        description="Datasets upstream and downstream within depth hops, with their columns, column edges, PII"
        " carried and the last run of each. Needs lineage.view_lineagenode.",
        parameters=[
            OpenApiParameter("dataset", str, required=True, description="Atlas dataset name, layer.table, or namespace:name."),
            OpenApiParameter("direction", str, enum=["both", "upstream", "downstream"], default="both"),
            OpenApiParameter("depth", int, default=3, description="Hops to follow (0-100)."),
        ],
        responses={200: GraphSerializer},
        tags=["lineage"],
    )
    def get(self, request: Request) -> Response:
        ref = request.query_params.get("dataset", "").strip()
        if "\x00" in ref:
            raise exceptions.ValidationError({"dataset": ["A dataset name cannot contain NUL characters."]})
        if not ref:
            raise exceptions.ValidationError({"dataset": ["Give ?dataset= (an Atlas dataset name, layer.table, or namespace:name)."]})
        return Response(graph_response(request, ref))


def graph_response(request: Request, ref) -> dict:
    """The graph around ``ref`` with ``?direction=`` and ``?depth=`` read and checked: what the admin page draws."""
    try:
        depth = int(request.query_params.get("depth", "3"))
    except ValueError:
        raise exceptions.ValidationError({"depth": ["A whole number of hops (0-100)."]}) from None
    direction = request.query_params.get("direction", graph.BOTH)
    if direction not in (graph.BOTH, graph.UPSTREAM, graph.DOWNSTREAM):
        raise exceptions.ValidationError({"direction": ["One of both, upstream, downstream."]})
    try:
        return graph.graph(ref, direction=direction, depth=depth)
    except graph.LineageError as exc:
        raise exceptions.NotFound(str(exc)) from exc


class DatasetLineageViewSet(viewsets.ViewSet):
    """``/api/v1/dataset-lineage/{dataset id}/``: the lineage page of a dataset, as JSON."""

    permission_classes = [LineagePermission]
    serializer_class = GraphSerializer

    @extend_schema(
        operation_id="dataset_lineage",
        summary="The lineage graph of an Atlas dataset (by id)",
        description="The same graph the admin's lineage page draws. Needs lineage.view_lineagenode.",
        parameters=[
            OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The dataset's id."),
            OpenApiParameter("direction", str, enum=["both", "upstream", "downstream"], default="both"),
            OpenApiParameter("depth", int, default=3, description="Hops to follow (0-100)."),
        ],
        responses={200: GraphSerializer},
        tags=["lineage"],
    )
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        if not str(pk).isdigit():
            raise exceptions.NotFound("No dataset with that id.")
        dataset = get_object_or_404(Dataset, pk=int(pk))
        return Response(graph_response(request, graph.dataset_node(dataset)))
