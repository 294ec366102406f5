"""Operator screens for quality: checks with their latest status and history, runs, results, quarantine.

Thin: checks run through :func:`quality.service.run_checks`; the quarantine is
read through :mod:`quality.quarantine`. History is read-only.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from atlas.warehouse import WarehouseError, get_warehouse
from pipelines.admin import ADMIN_CSS, ReadOnlyAdmin, ReadOnlyInline, admin_link, pre
from pipelines.models import Dataset

from . import quarantine
from .models import Check, CheckResult, CheckRun, Outcome
from .service import run_checks

COLOURS = {
    Outcome.PASS: "#198754", Outcome.WARN: "#fd7e14", Outcome.FAIL: "#dc3545", Outcome.ERROR: "#6f42c1",
    CheckRun.Status.PASSED: "#198754", CheckRun.Status.WARNED: "#fd7e14", CheckRun.Status.FAILED: "#dc3545",
    CheckRun.Status.ERROR: "#6f42c1", CheckRun.Status.RUNNING: "#0d6efd",
}
HISTORY = 20
QUARANTINE_PAGE = 50


def badge(value: str | None) -> str:
    if not value:
        return "-"
    return format_html(
        '<span class="atlas-badge" style="background-color: {}">{}</span>', COLOURS.get(value, "#6c757d"), value
    )


def share_chart(shares: list[float | None], width: int = 160, height: int = 32) -> str:
    """A small inline SVG of the failing share over the last runs (oldest left); no JavaScript."""
    points = [s for s in shares if s is not None]
    if not points:
        return "-"
    top = max(max(points), 0.01)
    step = width / max(len(points) - 1, 1)
    coords = " ".join(f"{i * step:.1f},{height - 2 - (s / top) * (height - 4):.1f}" for i, s in enumerate(points))
    return format_html(
        '<svg class="quality-chart" width="{}" height="{}" viewBox="0 0 {} {}" role="img"'
        ' aria-label="failing share over the last {} runs, latest {}"><title>failing share, max {}</title>'
        '<polyline fill="none" stroke="#dc3545" stroke-width="1.5" points="{}"/></svg>',
        width, height, width, height, len(points), f"{points[-1]:.2%}", f"{top:.2%}", coords,
    )


def _latest(field: str) -> Subquery:
    return Subquery(CheckResult.objects.filter(check_ref=OuterRef("pk")).order_by("-created_at", "-id").values(field)[:1])


class LatestOutcomeFilter(admin.SimpleListFilter):
    title = "latest outcome"
    parameter_name = "latest"

    def lookups(self, request, model_admin):
        return Outcome.choices

    def queryset(self, request, queryset):
        return queryset.filter(latest_outcome=self.value()) if self.value() else queryset


@admin.register(Check)
class CheckAdmin(admin.ModelAdmin):
    list_display = ("name", "dataset", "kind", "severity", "tolerance", "enabled", "latest_badge", "latest_at", "history_chart")
    list_filter = (LatestOutcomeFilter, "severity", "kind", "enabled", "dataset")
    list_select_related = ("dataset",)
    search_fields = ("name", "dataset__name", "description")
    fields = ("dataset", "name", "kind", "columns", "params", "severity", "tolerance", "enabled", "description", "recent_results")
    readonly_fields = ("recent_results",)
    actions = ("run_on_published",)

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(
            latest_outcome=_latest("outcome"), latest_created=_latest("created_at")
        )

    def get_urls(self):
        view = path(
            "quarantine/<int:dataset_id>/",
            self.admin_site.admin_view(self.quarantine_view),
            name="quality_quarantine",
        )
        return [view, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = getattr(response, "context_data", {}).get("cl") if hasattr(response, "context_data") else None
        if cl is not None:
            ids = [c.pk for c in cl.result_list]
            history: dict[int, list[float | None]] = {}
            for check_id, share in (
                CheckResult.objects.filter(check_ref__in=ids).order_by("created_at", "id").values_list("check_ref", "failing_share")
            ):
                history.setdefault(check_id, []).append(share)
            self._history = {k: v[-HISTORY:] for k, v in history.items()}
        return response

    @admin.display(description="latest", ordering="latest_outcome")
    def latest_badge(self, obj: Check) -> str:
        return badge(obj.latest_outcome)

    @admin.display(description="when", ordering="latest_created")
    def latest_at(self, obj: Check):
        return obj.latest_created

    @admin.display(description="failing share, last runs")
    def history_chart(self, obj: Check) -> str:
        history = getattr(self, "_history", None)
        if history is None:
            history = {obj.pk: list(obj.results.order_by("-created_at").values_list("failing_share", flat=True)[:HISTORY])[::-1]}
        return share_chart(history.get(obj.pk, []))

    @admin.display(description="recent results")
    def recent_results(self, obj: Check) -> str:
        if not obj.pk:
            return "-"
        results = list(obj.results.select_related("check_run").order_by("-created_at", "-id")[:HISTORY])
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((admin_link(r, r.created_at), badge(r.outcome), r.failing_rows if r.failing_rows is not None else "-",
              r.message, admin_link(r.check_run, f"run #{r.check_run_id}")) for r in results),
        )
        chart = share_chart([r.failing_share for r in reversed(results)])
        link = reverse("admin:quality_quarantine", args=[obj.dataset_id])
        return format_html(
            '<p>{}</p><p><a href="{}">Browse the quarantine of {}</a></p><table><thead><tr><th>when</th><th>outcome</th>'
            "<th>failing rows</th><th>message</th><th>check run</th></tr></thead><tbody>{}</tbody></table>",
            chart, link, obj.dataset.name, rows,
        )

    @admin.action(description="Run the checks of these datasets now (published tables)")
    def run_on_published(self, request: HttpRequest, queryset) -> None:
        for dataset in Dataset.objects.filter(pk__in=queryset.values("dataset")):
            run = run_checks(dataset, trigger=CheckRun.Trigger.MANUAL, actor=request.user, apply_drops=False)
            level = messages.SUCCESS if run.status in (CheckRun.Status.PASSED, CheckRun.Status.WARNED) else messages.ERROR
            self.message_user(request, format_html("{}: {} ({})", dataset.name, run.status, admin_link(run, f"check run #{run.pk}")), level)

    def quarantine_view(self, request: HttpRequest, dataset_id: int) -> HttpResponse:
        """Quarantined rows of one dataset, newest first, with the reason and the checks they failed."""
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        try:
            offset = max(int(request.GET.get("offset", 0)), 0)
        except ValueError:
            offset = 0
        context = {
            **self.admin_site.each_context(request),
            "title": f"Quarantine of {dataset.qualified_table}",
            "dataset": dataset,
            "offset": offset,
            "page": QUARANTINE_PAGE,
            "next_offset": offset + QUARANTINE_PAGE,
            "prev_offset": max(offset - QUARANTINE_PAGE, 0),
        }
        try:
            wh = get_warehouse()
            context["total"] = (
                wh.row_count(dataset.layer, quarantine.quarantine_name(dataset.table))
                if wh.table_exists(dataset.layer, quarantine.quarantine_name(dataset.table)) else 0
            )
            context["columns"], context["rows"] = quarantine.browse(
                wh, dataset.layer, dataset.table, limit=QUARANTINE_PAGE, offset=offset
            )
        except WarehouseError as exc:
            context["error"] = str(exc)
        return TemplateResponse(request, "admin/quality/quarantine.html", context)


class CheckResultInline(ReadOnlyInline, admin.TabularInline):
    model = CheckResult
    fields = ("check_link", "kind", "severity", "outcome_badge", "failing_rows", "failing_share", "rows_quarantined", "message", "query_group", "query_seconds")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("check_ref")

    @admin.display(description="check")
    def check_link(self, obj: CheckResult) -> str:
        return admin_link(obj, obj.check_name)

    @admin.display(description="outcome")
    def outcome_badge(self, obj: CheckResult) -> str:
        return badge(obj.outcome)


@admin.register(CheckRun)
class CheckRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "dataset", "table", "status_badge", "trigger", "started_at", "rows_checked", "rows_quarantined", "queries", "step_run_link")
    list_filter = ("status", "trigger", "dataset")
    list_select_related = ("dataset", "step_run__run__pipeline")
    search_fields = ("table", "dataset__name", "error")
    date_hierarchy = "started_at"
    fields = ("dataset", "table", "status_badge", "trigger", "triggered_by", "step_run_link", "started_at", "finished_at",
              "rows_checked", "rows_quarantined", "queries", "error", "quarantine_link")
    readonly_fields = fields
    inlines = (CheckResultInline,)

    class Media:
        css = ADMIN_CSS

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: CheckRun) -> str:
        return badge(obj.status)

    @admin.display(description="step run")
    def step_run_link(self, obj: CheckRun) -> str | None:
        return admin_link(obj.step_run, f"{obj.step_run.run} / {obj.step_run.step_name}") if obj.step_run_id else None

    @admin.display(description="quarantine")
    def quarantine_link(self, obj: CheckRun) -> str | None:
        if not obj.rows_quarantined:
            return None
        return format_html('<a href="{}">{} row(s) moved: browse</a>', reverse("admin:quality_quarantine", args=[obj.dataset_id]), obj.rows_quarantined)


@admin.register(CheckResult)
class CheckResultAdmin(ReadOnlyAdmin):
    list_display = ("check_name", "dataset", "kind", "severity", "outcome_badge", "failing_rows", "failing_share", "created_at", "run_link")
    list_filter = ("outcome", "severity", "kind", "check_run__dataset")
    list_select_related = ("check_run__dataset",)
    search_fields = ("check_name", "message")
    date_hierarchy = "created_at"
    fields = ("check_name", "run_link", "kind", "severity", "outcome_badge", "observed_pre", "failing_rows", "failing_share",
              "rows_quarantined", "message", "query_group", "query_seconds", "samples", "created_at")
    readonly_fields = fields

    class Media:
        css = ADMIN_CSS

    @admin.display(description="dataset")
    def dataset(self, obj: CheckResult) -> str:
        return obj.check_run.dataset.name

    @admin.display(description="outcome", ordering="outcome")
    def outcome_badge(self, obj: CheckResult) -> str:
        return badge(obj.outcome)

    @admin.display(description="check run")
    def run_link(self, obj: CheckResult) -> str:
        return admin_link(obj.check_run, f"check run #{obj.check_run_id}")

    @admin.display(description="observed")
    def observed_pre(self, obj: CheckResult) -> str:
        return pre(json.dumps(obj.observed, indent=2, default=str)) if obj.observed is not None else "-"

    @admin.display(description="sample of failing rows")
    def samples(self, obj: CheckResult) -> str:
        if not obj.sample_rows:
            return "-"
        head = format_html_join("", "<th>{}</th>", ((c,) for c in obj.sample_columns))
        body = format_html_join(
            "", "<tr>{}</tr>",
            ((format_html_join("", "<td>{}</td>", ((row.get(c) if row.get(c) is not None else "NULL",) for c in obj.sample_columns)),)
             for row in obj.sample_rows),
        )
        return format_html('<div class="atlas-preview"><table><thead><tr>{}</tr></thead><tbody>{}</tbody></table></div>', head, body)
