"""The DSR API: thin doors onto ``privacy.service`` and ``privacy.keys`` (the same functions as the admin).

Stewards manage (``privacy.*``); auditors read (``view_*``). Operations need
``privacy.process_datasubjectrequest``, as the admin's actions do. An illegal
transition is 409, bad identifiers 400, an expired export 410.
"""

from __future__ import annotations

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from atlas.api.exceptions import RULE, Conflict
from atlas.api.parsers import BoundedJSONParser
from atlas.api.permissions import HasPermission
from atlas.api.schema import ErrorSerializer
from atlas.api.tasks import ACCEPTED, accepted

from .. import keys, service
from ..models import DataSubjectRequest, DsrExport, SubjectKey, Tombstone
from ..search import DsrError
from . import serializers

PROCESS = "privacy.process_datasubjectrequest"
DOWNLOAD = "privacy.download_dsrexport"
CONFLICT = OpenApiResponse(ErrorSerializer, description="The request's status does not allow it.")


class Gone(exceptions.APIException):
    status_code = status.HTTP_410_GONE
    default_code = "gone"


def _conflict(exc: DsrError) -> Conflict:
    return Conflict(str(exc), code="dsr_refused")


class RequestViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Data-subject requests; ``POST`` submits one; operations verify, run, verify-erasure, export, reject."""

    queryset = DataSubjectRequest.objects.select_related("assignee").prefetch_related("erasures", "exports")
    serializer_class = serializers.RequestSerializer
    filterset_fields = ["status", "kind"]
    ordering_fields = ["due_at", "received_at", "id"]
    # JSON bodies only: identifiers are an object, which form encoding cannot carry (the schema then offers none).
    parser_classes = [BoundedJSONParser]

    def get_serializer_class(self):
        return serializers.RequestCreateSerializer if self.action == "create" else serializers.RequestSerializer

    @extend_schema(request=serializers.RequestCreateSerializer, responses={201: serializers.RequestSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = serializers.RequestCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            req = service.submit(
                data.validated_data["kind"], data.validated_data["identifiers"], actor=request.user,
                received_at=data.validated_data.get("received_at"), reference=data.validated_data.get("reference", ""),
            )
        except DsrError as exc:
            raise exceptions.ValidationError({"identifiers": [str(exc)]}, code=RULE) from exc
        context = self.get_serializer_context()
        return Response(serializers.RequestSerializer(req, context=context).data, status=status.HTTP_201_CREATED)

    def _operate(self, fn) -> Response:
        req = self.get_object()
        try:
            result = fn(req)
        except DsrError as exc:
            raise _conflict(exc) from exc
        req.refresh_from_db()
        body = serializers.RequestSerializer(req, context=self.get_serializer_context()).data
        if isinstance(result, DsrExport):
            body = {**body, "export": serializers.DsrExportSerializer(result).data}
        return Response(body)

    @extend_schema(request=None, responses={200: serializers.RequestSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], permission_classes=[HasPermission.of(PROCESS)])
    def verify(self, request: Request, pk=None) -> Response:
        """The requester's identity is checked: received -> verified."""
        return self._operate(lambda r: service.verify(r, actor=request.user))

    def _enqueue(self, request: Request, kind: str, refusal) -> Response:
        req = self.get_object()
        refused = refusal(req)
        if refused:
            raise _conflict(DsrError(refused))
        path = reverse("datasubjectrequest-detail", args=[req.pk])
        return accepted(request, kind, target=req, result_path=path, request_id=req.pk)

    @extend_schema(request=None, responses={**ACCEPTED, 409: CONFLICT})
    @action(detail=True, methods=["post"], permission_classes=[HasPermission.of(PROCESS)])
    def run(self, request: Request, pk=None) -> Response:
        """Carry it out in the background (202; the task's ``result_url`` is the request): an access
        export, or the erasure, rebuild, tombstones and verification scan."""
        return self._enqueue(request, "privacy.run_request", service.run_refusal)

    @extend_schema(request=None, responses={**ACCEPTED, 409: CONFLICT})
    @action(detail=True, methods=["post"], url_path="verify-erasure", permission_classes=[HasPermission.of(PROCESS)])
    def verify_erasure(self, request: Request, pk=None) -> Response:
        """The independent verification scan again, in the background (202); completes the request when
        nothing unexplained refers to the subject."""
        return self._enqueue(request, "privacy.verify_erasure", service.verify_erasure_refusal)

    @extend_schema(request=None, responses={200: serializers.RequestSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], permission_classes=[HasPermission.of(PROCESS)])
    def export(self, request: Request, pk=None) -> Response:
        """A new access export (zip), kept for ATLAS_DSR_EXPORT_TTL_HOURS."""
        return self._operate(lambda r: service.create_export(r, actor=request.user))

    @extend_schema(request=serializers.RejectSerializer, responses={200: serializers.RequestSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], permission_classes=[HasPermission.of(PROCESS)])
    def reject(self, request: Request, pk=None) -> Response:
        """Reject with a reason (kept and shown)."""
        data = serializers.RejectSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._operate(lambda r: service.reject(r, actor=request.user, reason=data.validated_data["reason"]))

    @extend_schema(request=serializers.ApproveSerializer, responses={200: serializers.RequestSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"], url_path="approve-expansion", permission_classes=[HasPermission.of(PROCESS)])
    def approve_expansion(self, request: Request, pk=None) -> Response:
        """Approve the expansion of a request under review (it is one person): review -> verified."""
        data = serializers.ApproveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._operate(lambda r: service.approve_expansion(r, actor=request.user, note=data.validated_data["note"]))

    @extend_schema(
        request=None,
        responses={(200, "application/zip"): OpenApiResponse(description="The zip."),
                   410: OpenApiResponse(ErrorSerializer, description="The export expired.")},
    )
    @action(detail=True, methods=["get"], url_path=r"exports/(?P<export_id>[0-9]+)/download",
            permission_classes=[HasPermission.of(DOWNLOAD)])
    def download(self, request: Request, pk=None, export_id=None):
        """Download an access export (audited)."""
        req = self.get_object()
        export = DsrExport.objects.filter(pk=export_id, request=req).first()
        if export is None:
            raise exceptions.NotFound(f"{req} has no export #{export_id}.")
        try:
            path = service.download(export, actor=request.user)
        except service.ExportExpired as exc:
            raise Gone(str(exc)) from exc
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)


class SubjectKeyViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Subject keys; ``POST`` declares one (confirmed); ``confirm`` and ``propose`` as in the admin."""

    queryset = SubjectKey.objects.select_related("dataset")
    serializer_class = serializers.SubjectKeySerializer
    filterset_fields = ["status", "kind", "storage"]

    def perform_create(self, serializer) -> None:
        data = serializer.validated_data
        try:
            serializer.instance = keys.declare_key(
                data["dataset"], data["column"], kind=data["kind"], storage=data.get("storage", "clear"),
                actor=self.request.user, note=data.get("note", ""),
            )
        except keys.SubjectKeyError as exc:
            raise exceptions.ValidationError({"column": [str(exc)]}) from exc

    @extend_schema(request=None, responses=ACCEPTED)
    @action(detail=True, methods=["post"], permission_classes=[HasPermission.of("privacy.change_subjectkey")])
    def confirm(self, request: Request, pk=None) -> Response:
        """Confirm the key now; its index (PostgreSQL) is built in the background (202, the task)."""
        key = keys.confirm_key(self.get_object(), actor=request.user, build_index=False)
        path = reverse("subjectkey-detail", args=[key.pk])
        return accepted(request, "privacy.build_key_index", target=key, result_path=path, key_id=key.pk)

    @extend_schema(request=None, responses={200: serializers.SubjectKeySerializer(many=True)})
    @action(detail=False, methods=["post"], permission_classes=[HasPermission.of("privacy.add_subjectkey")],
            pagination_class=None, filter_backends=[])
    def propose(self, request: Request) -> Response:
        created = keys.propose_keys(actor=request.user)
        return Response(serializers.SubjectKeySerializer(created, many=True).data)


class TombstoneViewSet(viewsets.ReadOnlyModelViewSet):
    """Erased subjects, as HMAC hashes only."""

    queryset = Tombstone.objects.all()
    serializer_class = serializers.TombstoneSerializer
    filterset_fields = ["kind"]
