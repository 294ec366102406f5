"""Viewsets that only declare; operations call the runner, as the admin and commands do."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from atlas.api import filters as api_filters
from atlas.api.exceptions import RULE, Conflict
from atlas.api.pagecache import CachedReadMixin
from atlas.api.pagination import CursorPagination
from atlas.api.permissions import HasPermission
from atlas.api.schema import ErrorSerializer
from atlas.api.throttling import RunRateThrottle, UserRateThrottle

from .. import backfills, runner, selection
from ..dag import PipelineDefinitionError
from ..models import Backfill, Dataset, Pipeline, PipelineRun, Source, Step, StepRun, Trigger
from . import filters, serializers

# Running and cancelling need what the admin's "Run now" and "Cancel" buttons need.
RUN_PERMISSION = "pipelines.change_pipeline"


class BrokerDown(APIException):
    """The run could not be handed to a worker (503); it was recorded as failed, nothing stays queued."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The task queue (broker) cannot be reached."
    default_code = "broker_unavailable"


class SourceViewSet(CachedReadMixin, viewsets.ModelViewSet):
    """Where raw data comes from and how to read it."""

    queryset = Source.objects.all()
    serializer_class = serializers.SourceSerializer
    filterset_class = filters.SourceFilter
    ordering_fields = ["name", "created_at"]


class DatasetViewSet(CachedReadMixin, viewsets.ModelViewSet):
    """Warehouse tables, one layer each, with their columns as last published."""

    queryset = Dataset.objects.prefetch_related("columns")
    serializer_class = serializers.DatasetSerializer
    filterset_class = filters.DatasetFilter
    ordering_fields = ["name", "layer", "last_loaded_at"]


class StepViewSet(CachedReadMixin, viewsets.ModelViewSet):
    """Steps of pipelines; each save is checked against the whole pipeline (order, inputs)."""

    queryset = Step.objects.select_related("pipeline", "output", "source").prefetch_related("inputs")
    serializer_class = serializers.StepSerializer
    filterset_class = filters.StepFilter
    ordering_fields = ["pipeline", "position", "id"]

    def perform_create(self, serializer: serializers.StepSerializer) -> None:
        with transaction.atomic():
            step = serializer.save()
            runner.save_step_inputs(step.pipeline)

    def perform_update(self, serializer: serializers.StepSerializer) -> None:
        self.perform_create(serializer)

    def perform_destroy(self, instance: Step) -> None:
        rest = [s for s in instance.pipeline.steps.select_related("output", "source") if s.pk != instance.pk]
        if rest:
            try:
                runner.plan_steps(instance.pipeline, rest)
            except PipelineDefinitionError as exc:
                raise Conflict(f"Deleting step {instance.name!r} would break the pipeline: {exc}", code="breaks_pipeline") from exc
        instance.delete()


@extend_schema_view(
    run=extend_schema(
        request=serializers.RunRequestSerializer,
        responses={
            201: serializers.PipelineRunSerializer,
            400: OpenApiResponse(ErrorSerializer, description="A selector does not parse, names no step, or selects nothing."),
            409: OpenApiResponse(ErrorSerializer, description="A run is already queued or running (error.detail.active_run), or the pipeline is disabled."),
        },
    )
)
class PipelineViewSet(CachedReadMixin, viewsets.ModelViewSet):
    """Pipelines with their steps; ``POST .../{id}/run/`` starts a run."""

    queryset = Pipeline.objects.prefetch_related(
        Prefetch("steps", queryset=Step.objects.select_related("output", "source").prefetch_related("inputs"))
    )
    serializer_class = serializers.PipelineSerializer
    filterset_class = filters.PipelineFilter
    ordering_fields = ["name", "created_at"]

    @action(
        detail=True,
        methods=["post"],
        permission_classes=[HasPermission.of(RUN_PERMISSION)],
        throttle_classes=[UserRateThrottle, RunRateThrottle],
    )
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Queue a run (``runner.start_run``, trigger ``api``) and return it; 409 when one is active."""
        pipeline = self.get_object()
        body = serializers.RunRequestSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        try:
            only = selection.select_steps(pipeline, body.validated_data.get("select", ()),
                                          body.validated_data.get("exclude", ()))
        except selection.SelectionError as exc:
            raise ValidationError({"select": [str(exc)]}, code=RULE) from exc  # a selector naming nothing: a rule (409)
        try:
            run = runner.start_run(pipeline, actor=request.user, trigger=Trigger.API, only_steps=only,
                                   full_refresh=body.validated_data["full_refresh"], force=body.validated_data["force"])
        except runner.RunAlreadyActive as exc:
            raise Conflict(str(exc), code="run_active", context={"active_run": exc.active.pk if exc.active else None}) from exc
        except runner.BrokerUnavailable as exc:
            raise BrokerDown(str(exc)) from exc
        except runner.RunRefused as exc:
            raise Conflict(str(exc), code="run_refused") from exc
        location = reverse("pipelinerun-detail", args=[run.pk], request=request)
        return Response(
            serializers.PipelineRunSerializer(run, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )


class RunPagination(CursorPagination):
    ordering = ("-created_at", "-id")


@extend_schema_view(
    cancel=extend_schema(
        request=None,
        responses={
            200: serializers.CancelResultSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The run has already ended."),
        },
    ),
    rerun_failed=extend_schema(
        request=None,
        responses={
            201: serializers.PipelineRunSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The run did not fail, or a run is active."),
            503: OpenApiResponse(ErrorSerializer, description="The broker cannot be reached."),
        },
    ),
)
class PipelineRunViewSet(CachedReadMixin, viewsets.ReadOnlyModelViewSet):
    """Runs, newest first (cursor pages); filter by pipeline, status, trigger and time."""

    queryset = PipelineRun.objects.select_related("pipeline", "triggered_by")
    filterset_class = filters.PipelineRunFilter
    pagination_class = RunPagination
    filter_backends = [api_filters.FilterBackend]

    def get_queryset(self):
        qs = super().get_queryset()
        if self.action == "retrieve":
            qs = qs.prefetch_related(Prefetch("step_runs", queryset=StepRun.objects.select_related("output")))
        return qs

    def get_serializer_class(self):
        return serializers.PipelineRunDetailSerializer if self.action == "retrieve" else serializers.PipelineRunSerializer

    @action(detail=True, methods=["post"], permission_classes=[HasPermission.of(RUN_PERMISSION)])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel (``runner.cancel_run``): a queued run at once, a running one after its current step."""
        run = self.get_object()
        outcome = runner.cancel_run(run, actor=request.user)
        if outcome is None:
            raise Conflict(f"Run #{run.pk} has already ended ({run.status}).", code="run_finished")
        run.refresh_from_db()
        data = {"outcome": outcome, "run": serializers.PipelineRunSerializer(run, context=self.get_serializer_context()).data}
        return Response(data)

    @action(detail=True, methods=["post"], url_path="rerun-failed", permission_classes=[HasPermission.of(RUN_PERMISSION)],
            throttle_classes=[UserRateThrottle, RunRateThrottle])
    def rerun_failed(self, request: Request, pk: str | None = None) -> Response:
        """Re-run the failed and skipped steps of a failed or partially failed run (``runner.rerun_failed``)."""
        run = self.get_object()
        try:
            rerun = runner.rerun_failed(run, actor=request.user, trigger=Trigger.API)
        except runner.BrokerUnavailable as exc:
            raise BrokerDown(str(exc)) from exc
        except runner.RunRefused as exc:
            raise Conflict(str(exc), code="run_refused") from exc
        location = reverse("pipelinerun-detail", args=[rerun.pk], request=request)
        return Response(
            serializers.PipelineRunSerializer(rerun, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )


class StepRunPagination(CursorPagination):
    ordering = "-id"


class StepRunViewSet(CachedReadMixin, viewsets.ReadOnlyModelViewSet):
    """Step runs, newest first (cursor pages); filter by run, pipeline, status, layer and time."""

    queryset = StepRun.objects.select_related("output")
    serializer_class = serializers.StepRunSerializer
    filterset_class = filters.StepRunFilter
    pagination_class = StepRunPagination
    filter_backends = [api_filters.FilterBackend]


@extend_schema_view(
    create=extend_schema(
        responses={
            201: serializers.BackfillDetailSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The range, interval or pipeline is refused."),
        },
    ),
    rerun_failed=extend_schema(request=None, responses={200: serializers.BackfillDetailSerializer}),
    cancel=extend_schema(
        request=None,
        responses={
            200: serializers.BackfillDetailSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The backfill has already ended."),
        },
    ),
)
class BackfillViewSet(CachedReadMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Backfills (``pipelines.backfills``): ``POST`` one (pipeline, start, end, interval); each interval's
    status and run; ``POST .../rerun_failed/`` queues failed intervals again; ``POST .../cancel/`` stops it."""

    queryset = Backfill.objects.select_related("pipeline", "created_by").order_by("-created_at", "-id")
    pagination_class = RunPagination

    def get_queryset(self):
        from ..backfills import with_counts

        return with_counts(super().get_queryset())  # the counts of a page in its one query

    def get_serializer_class(self):
        if self.action in ("retrieve", "create", "rerun_failed", "cancel"):
            return serializers.BackfillDetailSerializer
        return serializers.BackfillSerializer

    def get_permissions(self):
        if self.action in ("create", "rerun_failed", "cancel"):
            return [HasPermission.of(RUN_PERMISSION)()]
        return super().get_permissions()

    def _detail(self, backfill: Backfill, code: int = status.HTTP_200_OK) -> Response:
        backfill.refresh_from_db()
        return Response(self.get_serializer(backfill).data, status=code)

    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            backfill = backfills.create_backfill(
                data["pipeline"], data["start"], data["end"], interval=data.get("interval", ""), actor=request.user
            )
        except backfills.BackfillRefused as exc:
            raise Conflict(str(exc), code="backfill_refused") from exc
        return self._detail(backfill, status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def rerun_failed(self, request: Request, pk: str | None = None) -> Response:
        backfill = self.get_object()
        backfills.rerun_failed(backfill, actor=request.user)
        return self._detail(backfill)

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        backfill = self.get_object()
        try:
            backfills.cancel_backfill(backfill, actor=request.user)
        except backfills.BackfillRefused as exc:
            raise Conflict(str(exc), code="backfill_finished") from exc
        return self._detail(backfill)
