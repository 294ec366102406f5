"""Quality endpoints: thin viewsets over quality's models and its quarantine reader."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from atlas.api import filters as api_filters
from atlas.api.pagination import CursorPagination
from atlas.api.permissions import HasPermission
from atlas.warehouse import WarehouseError, get_warehouse
from pipelines.models import Dataset

from .. import quarantine
from ..models import Check, CheckResult
from ..service import jsonable
from . import filters, serializers

QUARANTINE_MAX_LIMIT = 500


class CheckViewSet(viewsets.ModelViewSet):
    """Checks declared on datasets; a definition that could not run is refused (400) as in the admin."""

    queryset = Check.objects.select_related("dataset")
    serializer_class = serializers.CheckSerializer
    filterset_class = filters.CheckFilter
    ordering_fields = ["dataset", "name", "created_at"]


class CheckResultPagination(CursorPagination):
    ordering = "-id"


class CheckResultViewSet(viewsets.ReadOnlyModelViewSet):
    """Every check outcome, newest first (cursor pages); filter by dataset, check, outcome, severity and time.

    Sample rows are masked for users without ``compliance.view_pii_clear``.
    """

    queryset = CheckResult.objects.select_related("check_run__dataset", "check_ref")
    serializer_class = serializers.CheckResultSerializer
    filterset_class = filters.CheckResultFilter
    pagination_class = CheckResultPagination
    filter_backends = [api_filters.FilterBackend]


def _int(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise exceptions.ValidationError({name: [f"A whole number from 0 to {high}."]}) from None
    if not 0 <= value <= high:
        raise exceptions.ValidationError({name: [f"A whole number from 0 to {high}."]})
    return value


class QuarantineViewSet(viewsets.ViewSet):
    """The quarantine of a dataset (``/api/v1/quarantine/{dataset id}/``): rows that failed to parse or a drop check."""

    permission_classes = [HasPermission.of("pipelines.view_dataset", "quality.view_checkresult")]
    serializer_class = serializers.QuarantinePageSerializer

    @extend_schema(
        summary="Quarantined rows of a dataset, newest first",
        parameters=[
            OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The dataset's id."),
            OpenApiParameter("offset", OpenApiTypes.INT, default=0, description="Rows to skip (0-1000000000)."),
            OpenApiParameter("limit", OpenApiTypes.INT, default=50, description=f"Rows to return (0-{QUARANTINE_MAX_LIMIT})."),
        ],
        responses={200: serializers.QuarantinePageSerializer},
        tags=["quarantine"],
    )
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        if not str(pk).isdigit():
            raise exceptions.NotFound("No dataset with that id.")
        dataset = get_object_or_404(Dataset, pk=int(pk))
        offset = _int(request, "offset", 0, 1_000_000_000)
        limit = _int(request, "limit", 50, QUARANTINE_MAX_LIMIT)
        wh = get_warehouse()
        name = quarantine.quarantine_name(dataset.table)
        try:
            total = wh.row_count(dataset.layer, name) if wh.table_exists(dataset.layer, name) else 0
            columns, rows = quarantine.browse(wh, dataset.layer, dataset.table, limit=limit, offset=offset)
        except WarehouseError as exc:
            raise exceptions.APIException(f"The warehouse could not be read: {exc}") from exc
        rows = serializers.mask(request.user, dataset, list(columns), [list(r) for r in rows])
        data = {
            "dataset": dataset.pk,
            "table": f"{dataset.layer}.{name}",
            "total": total,
            "offset": offset,
            "limit": limit,
            "next_offset": offset + limit if offset + limit < total else None,
            "columns": list(columns),
            "rows": [[jsonable(v) for v in r] for r in rows],
        }
        return Response(data)
