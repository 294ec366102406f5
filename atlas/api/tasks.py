"""``/api/v1/tasks/``: the status of heavy actions run in the background (:mod:`atlas.background`).

An action that enqueues answers :func:`accepted`: ``202`` with ``Location`` set to the
task; the task reads ``queued``, ``running`` (with ``progress`` when the action
reports it), then ``succeeded`` (``result``, ``result_url``) or ``failed`` (``error``,
never personal data). Whoever asked sees their tasks; ``atlas.view_backgroundtask``
(auditors, administrators) sees every task.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse

from atlas import background
from atlas.models import BackgroundTask

from .pagination import CursorPagination
from .schema import ErrorSerializer
from .serializers import ModelSerializer

VIEW_ALL = "atlas.view_backgroundtask"


class TaskSerializer(ModelSerializer):
    result_url = serializers.SerializerMethodField(help_text="Where the outcome is read, once it succeeded.")
    url = serializers.SerializerMethodField(help_text="This status resource.")

    class Meta:
        model = BackgroundTask
        fields = ["id", "url", "kind", "state", "target", "progress", "result", "result_url", "error",
                  "created_at", "started_at", "heartbeat_at", "finished_at"]
        read_only_fields = fields

    def get_result_url(self, task: BackgroundTask) -> str | None:
        if task.state != BackgroundTask.State.SUCCEEDED or not task.result_path:
            return None
        request = self.context.get("request")
        return request.build_absolute_uri(task.result_path) if request else task.result_path

    def get_url(self, task: BackgroundTask) -> str:
        return reverse("backgroundtask-detail", args=[task.pk], request=self.context.get("request"))


class TaskNotSent(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The task queue (broker) cannot be reached; nothing was done."
    default_code = "broker_unavailable"


# What every enqueuing operation documents (drf-spectacular ``responses``).
ACCEPTED = {
    202: OpenApiResponse(TaskSerializer, description="Enqueued: follow Location (the task) until it has ended."),
    503: OpenApiResponse(ErrorSerializer, description="The task queue (broker) cannot be reached; nothing was done."),
}


def accepted(request: Request, kind: str, *, target=None, result_path: str = "", **params) -> Response:
    """Enqueue ``kind`` and answer 202 with the task and its ``Location``."""
    try:
        task = background.enqueue(kind, actor=request.user, target=target, result_path=result_path, **params)
    except background.TaskNotSent as exc:
        raise TaskNotSent(str(exc)) from exc
    body = TaskSerializer(task, context={"request": request}).data
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class TaskPagination(CursorPagination):
    ordering = ("-created_at", "-id")


class TaskViewSet(viewsets.ReadOnlyModelViewSet):
    """Background tasks, newest first: your own, or every one with ``atlas.view_backgroundtask``."""

    serializer_class = TaskSerializer
    permission_classes = [permissions.IsAuthenticated]
    pagination_class = TaskPagination
    queryset = BackgroundTask.objects.all()

    def get_queryset(self):
        user = self.request.user
        qs = super().get_queryset()
        return qs if user.has_perm(VIEW_ALL) else qs.filter(requested_by=user)
