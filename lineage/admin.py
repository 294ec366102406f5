"""Lineage in the admin: the graph page per dataset, the outbox (pending, failed, retry), received events.

Thin: the page reads :func:`lineage.graph.graph`; actions call :mod:`lineage.outbox`.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from atlas.admin_kit import ADMIN_CSS, Palette, ViewOnlyMixin
from pipelines.models import Dataset

from . import graph, outbox
from .models import LineageNode, NodeKind, OutboxEvent, ReceivedEvent

STATUS_COLOURS = {
    OutboxEvent.Status.PENDING: "#0d6efd",
    OutboxEvent.Status.DELIVERED: "#198754",
    OutboxEvent.Status.FAILED: "#dc3545",
}
STATUS = Palette(STATUS_COLOURS, css=())


class DatasetNodeFilter(admin.SimpleListFilter):
    title = "PII"
    parameter_name = "pii"

    def lookups(self, request, model_admin):
        return [("flagged", "Has PII-flagged columns")]

    def queryset(self, request, queryset):
        if self.value() == "flagged":
            return queryset.filter(children__pii_entity__gt="").distinct()
        return queryset


@admin.register(LineageNode)
class LineageNodeAdmin(ViewOnlyMixin, admin.ModelAdmin):
    """Datasets in the graph (Atlas's, sources, and those other tools report); each opens its lineage page."""

    list_display = ["name", "namespace", "origin", "column_count", "pii_count", "lineage_link"]
    list_filter = ["origin", DatasetNodeFilter]
    search_fields = ["name", "namespace"]
    list_select_related = ["dataset"]
    # PII flags are compliance's word (lineage.graph.mark_pii, audited): shown here, not edited.
    readonly_fields = [
        "kind", "origin", "namespace", "name", "column", "parent", "dataset", "position", "data_type",
        "pii_entity", "pii_protected",
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(kind=NodeKind.DATASET)
            .annotate(n_columns=Count("children"), n_pii=Count("children", filter=~Q(children__pii_entity="")))
        )

    @admin.display(description="columns", ordering="n_columns")
    def column_count(self, obj: LineageNode) -> int:
        return obj.n_columns

    @admin.display(description="PII columns", ordering="n_pii")
    def pii_count(self, obj: LineageNode) -> int:
        return obj.n_pii

    @admin.display(description="lineage")
    def lineage_link(self, obj: LineageNode) -> str:
        return format_html('<a href="{}">Show lineage</a>', reverse("admin:lineage_dataset_graph", args=[obj.pk]))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:node_id>/graph/", view(self.graph_view), name="lineage_dataset_graph"),
            path("dataset/<int:dataset_id>/", view(self.dataset_view), name="lineage_atlas_dataset"),
            *super().get_urls(),
        ]

    def dataset_view(self, request: HttpRequest, dataset_id: int) -> HttpResponse:
        """The lineage page of an Atlas dataset (by its id), its node created if needed."""
        node = graph.dataset_node(get_object_or_404(Dataset, pk=dataset_id))
        return HttpResponseRedirect(reverse("admin:lineage_dataset_graph", args=[node.pk]))

    def graph_view(self, request: HttpRequest, node_id: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise Http404
        node = get_object_or_404(LineageNode, pk=node_id, kind=NodeKind.DATASET)
        try:
            depth = max(0, min(int(request.GET.get("depth", 3)), graph.MAX_DEPTH))
        except ValueError:
            depth = 3
        direction = request.GET.get("direction", graph.BOTH)
        if direction not in (graph.UPSTREAM, graph.DOWNSTREAM, graph.BOTH):
            direction = graph.BOTH
        data = graph.graph(node, direction=direction, depth=depth)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Lineage of {node.name}",
            "node": node,
            "graph": data,
            "depth": depth,
            "direction": direction,
            "api_url": reverse("lineage-api"),
            "dataset_ref": f"{node.namespace}:{node.name}",
        }
        return TemplateResponse(request, "admin/lineage/graph.html", context)


@admin.register(OutboxEvent)
class OutboxEventAdmin(ViewOnlyMixin, admin.ModelAdmin):
    """Emitted events: what waits, what failed and why; retry puts them back in line."""

    list_display = ["id", "event_type", "job_name", "status_badge", "attempts", "next_attempt_at", "created_at", "short_error"]
    list_filter = ["status", "event_type"]
    search_fields = ["job_name", "run_uuid", "ordering_key"]
    actions = ["retry_events", "deliver_now"]
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]
    list_select_related = ["step_run"]

    class Media:
        css = ADMIN_CSS

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: OutboxEvent) -> str:
        return STATUS.badge(obj.status, obj.get_status_display())

    @admin.display(description="last error")
    def short_error(self, obj: OutboxEvent) -> str:
        return obj.last_error[:120]

    @admin.action(description="Retry the selected events now", permissions=["view"])
    def retry_events(self, request: HttpRequest, queryset) -> None:
        count = outbox.retry(queryset)
        self.message_user(request, f"{count} event(s) will be sent at the next delivery.", messages.SUCCESS)

    @admin.action(description="Deliver due events now", permissions=["view"])
    def deliver_now(self, request: HttpRequest, queryset) -> None:
        report = outbox.deliver_pending()
        if report.skipped_reason:
            self.message_user(request, report.skipped_reason, messages.WARNING)
            return
        level = messages.SUCCESS if not (report.retrying or report.failed) else messages.WARNING
        self.message_user(
            request,
            f"Delivered {len(report.delivered)}, will retry {len(report.retrying)}, gave up on {len(report.failed)}.",
            level,
        )


@admin.register(ReceivedEvent)
class ReceivedEventAdmin(ViewOnlyMixin, admin.ModelAdmin):
    """Events other tools sent to POST /api/v1/lineage, exactly as received."""

    list_display = ["id", "event_type", "job_namespace", "job_name", "event_time", "received_at", "received_by"]
    list_filter = ["event_type", "job_namespace"]
    search_fields = ["job_name", "run_uuid"]
    readonly_fields = [f.name for f in ReceivedEvent._meta.fields]
    list_select_related = ["received_by"]

