"""Operator screens for quality: checks with their latest status and history, runs, results, quarantine.

Thin: checks run through :func:`quality.service.run_checks`; the quarantine is
read through :mod:`quality.quarantine`. History is read-only.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from simple_history.admin import SimpleHistoryAdmin

from atlas import charts, extensions
from atlas.admin_kit import (
    ADMIN_CSS,
    ManagedFromFilesWarning,
    Palette,
    ReadOnlyAdmin,
    ReadOnlyInline,
    admin_link,
    json_pre,
)
from atlas.humanize import percent
from atlas.warehouse import WarehouseError, get_warehouse
from pipelines.models import Dataset

from . import quarantine
from .kinds import describe
from .models import Check, CheckResult, CheckRun, Outcome, Severity
from .reprocess import ReprocessError, current_check_runs, reprocess
from .service import run_checks
from .status import NEVER, dataset_status

COLOURS = {
    "no_checks": "#6c757d", "not_run": "#6c757d", NEVER: "#6c757d",
    Outcome.PASS: "#198754", Outcome.WARN: "#fd7e14", Outcome.FAIL: "#dc3545", Outcome.ERROR: "#6f42c1",
    CheckRun.Status.PASSED: "#198754", CheckRun.Status.WARNED: "#fd7e14", CheckRun.Status.FAILED: "#dc3545",
    CheckRun.Status.ERROR: "#6f42c1", CheckRun.Status.RUNNING: "#0d6efd",
}
OUTCOMES = Palette(COLOURS, css=())
HISTORY = 20
QUARANTINE_PAGE = 50


REPROCESS_PERMISSION = "quality.change_check"


def mask(user, dataset: Dataset, columns: list[str], rows: list) -> list[list]:
    """Rows as ``user`` may see them: PII columns masked without the permission (the contributed row masker)."""
    return extensions.mask_rows(user, dataset, columns, rows)


def history(check_ids: list[int], limit: int = HISTORY) -> dict[int, list[float | None]]:
    """The failing share of each check's last ``limit`` results, oldest first."""
    out: dict[int, list[float | None]] = {}
    rows = CheckResult.objects.filter(check_ref__in=check_ids).order_by("created_at", "id")
    for check_id, share in rows.values_list("check_ref", "failing_share"):
        out.setdefault(check_id, []).append(share)
    return {k: v[-limit:] for k, v in out.items()}


def badge(value: str | None) -> str:
    return OUTCOMES.badge(value)


def share_chart(shares: list[float | None], width: int = 160, height: int = 32) -> str:
    """A small inline SVG of the failing share over the last runs (oldest left); no JavaScript.

    Red only when the latest run had failing rows; a single run is a dot; all-zero is a flat green line.
    """
    points = [s for s in shares if s is not None]
    if not points:
        return "-"
    top = max(max(points), 0.01)
    step = width / max(len(points) - 1, 1)
    coords = [(i * step if len(points) > 1 else width / 2, height - 2 - (s / top) * (height - 4)) for i, s in enumerate(points)]
    colour = "#dc3545" if points[-1] > 0 else "#198754"
    mark = (
        format_html('<circle cx="{}" cy="{}" r="3" fill="{}"/>', f"{coords[0][0]:.1f}", f"{coords[0][1]:.1f}", colour)
        if len(points) == 1 else
        format_html('<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>', colour,
                    " ".join(f"{x:.1f},{y:.1f}" for x, y in coords))
    )
    return format_html(
        '<svg class="quality-chart" width="{}" height="{}" viewBox="0 0 {} {}" role="img"'
        ' aria-label="failing share over the last {} runs, latest {}"><title>failing share: latest {}, highest {}</title>'
        "{}</svg>",
        width, height, width, height, len(points), percent(points[-1]), percent(points[-1]), percent(max(points)), mark,
    )


def share_history_chart(check: Check, results: list[CheckResult]) -> str:
    """The failing share of a check's last runs with axes and its tolerance as a dashed line, plus the table."""
    measured = [r for r in results if r.failing_share is not None]
    if not measured:
        return ""
    labels = [timezone.localtime(r.created_at).strftime("%d %b %H:%M") for r in measured]
    series = [charts.Series("fail", "failing share", [r.failing_share for r in measured])]
    thresholds = [charts.Threshold(check.tolerance, "tolerance")] if check.tolerance else []
    top = max([0.01, *(r.failing_share for r in measured), *(t.value for t in thresholds)])
    svg = charts.lines(labels, series, title=f"Failing share of {check.name} over its last {len(measured)} runs",
                       thresholds=thresholds, fmt=percent, top=top)
    rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                            ((label, percent(r.failing_share), r.outcome) for label, r in zip(labels, measured, strict=True)))
    return format_html(
        '<figure class="atlas-figure" id="quality-share-history">{}<details><summary>The numbers</summary>'
        '<table class="atlas-chart-table"><thead><tr><th scope="col">run</th><th scope="col">failing share</th>'
        '<th scope="col">outcome</th></tr></thead><tbody>{}</tbody></table></details></figure>',
        svg, rows,
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
class CheckAdmin(ManagedFromFilesWarning, SimpleHistoryAdmin):
    list_display = ("name", "dataset", "kind", "rule", "severity", "tolerance", "enabled", "latest_badge", "latest_at", "history_chart")
    list_filter = (LatestOutcomeFilter, "severity", "kind", "enabled", "dataset")
    list_select_related = ("dataset",)
    search_fields = ("name", "dataset__name", "description")
    fields = ("dataset", "name", "kind", "columns", "params", "rule", "severity", "tolerance", "enabled", "description", "recent_results")
    readonly_fields = ("rule", "recent_results")
    actions = ("run_on_published",)

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(
            latest_outcome=_latest("outcome"), latest_created=_latest("created_at")
        )

    def get_urls(self):
        views = [
            path("quarantine/<int:dataset_id>/", self.admin_site.admin_view(self.quarantine_view), name="quality_quarantine"),
            path("dataset/<int:dataset_id>/", self.admin_site.admin_view(self.dataset_view), name="quality_dataset"),
            path(
                "dataset/<int:dataset_id>/reprocess/",
                self.admin_site.admin_view(require_POST(self.reprocess_view)),
                name="quality_reprocess",
            ),
        ]
        return views + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = getattr(response, "context_data", {}).get("cl") if hasattr(response, "context_data") else None
        if cl is not None:
            self._history = history([c.pk for c in cl.result_list])
        return response

    @admin.display(description="rule")
    def rule(self, obj: Check) -> str:
        """The definition in one sentence (each kind describes itself)."""
        return describe(obj) if obj.pk else "-"

    @admin.display(description="latest", ordering="latest_outcome")
    def latest_badge(self, obj: Check) -> str:
        return badge(obj.latest_outcome)

    @admin.display(description="when", ordering="latest_created")
    def latest_at(self, obj: Check):
        return obj.latest_created

    @admin.display(description="failing share, last runs")
    def history_chart(self, obj: Check) -> str:
        shares = getattr(self, "_history", None)
        if shares is None:
            shares = history([obj.pk])
        return share_chart(shares.get(obj.pk, []))

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
        chart = share_history_chart(obj, list(reversed(results))) or share_chart([r.failing_share for r in reversed(results)])
        link = reverse("admin:quality_quarantine", args=[obj.dataset_id])
        return format_html(
            '<div>{}</div><p><a href="{}">Browse the quarantine of {}</a></p><table><thead><tr><th>when</th><th>outcome</th>'
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
        """Quarantined rows of one dataset, newest first, with the reason and the checks they failed (PII masked)."""
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        try:
            offset = max(int(request.GET.get("offset", 0)), 0)
        except ValueError:
            offset = 0
        run_ids = _run_ids(request.GET.get("check_run"))
        history = request.GET.get("history") == "1"
        context = {
            **self.admin_site.each_context(request),
            "title": f"Quarantine of {dataset.qualified_table}",
            "dataset": dataset,
            "offset": offset,
            "page": QUARANTINE_PAGE,
            "next_offset": offset + QUARANTINE_PAGE,
            "prev_offset": max(offset - QUARANTINE_PAGE, 0),
            "check_run": request.GET.get("check_run", ""),
            "can_reprocess": request.user.has_perm(REPROCESS_PERMISSION),
        }
        page = quarantine_page(request.user, dataset, limit=QUARANTINE_PAGE, offset=offset, check_run_ids=run_ids,
                               history=history)
        context.update(page, q=page)
        return TemplateResponse(request, "admin/quality/quarantine.html", context)

    def dataset_view(self, request: HttpRequest, dataset_id: int) -> HttpResponse:
        """One dataset's quality: overall status, each check's latest outcome and history, runs, quarantine."""
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        outcome = request.GET.get("outcome") or None
        severity = request.GET.get("severity") or None
        try:
            status = dataset_status(dataset, outcome=outcome, severity=severity)
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            outcome = severity = None
            status = dataset_status(dataset)
        shares = history([c["id"] for c in status["checks"]])
        for row in status["checks"]:
            row["badge"] = badge(row["outcome"])
            row["chart"] = share_chart(shares.get(row["id"], []))
            row["url"] = reverse("admin:quality_check_change", args=[row["id"]])
            row["result_url"] = reverse("admin:quality_checkresult_change", args=[row["result"]]) if row["result"] else ""
        runs = list(CheckRun.objects.filter(dataset=dataset).select_related("step_run__run").order_by("-started_at", "-id")[:10])

        def choices(param: str, values: list[tuple[str, str]], current: str | None) -> list[dict]:
            other = {k: v for k, v in request.GET.items() if k != param and v}
            items = [{"label": "All", "query": _query(other), "selected": current is None}]
            for value, label in values:
                items.append({"label": label, "query": _query({**other, param: value}), "selected": current == value})
            return items

        context = {
            **self.admin_site.each_context(request),
            "title": f"Quality of {dataset.name}",
            "dataset": dataset,
            "status": status,
            "status_badge": badge(status["status"]),
            "outcome_filter": choices("outcome", [*Outcome.choices, (NEVER, "Never run")], outcome),
            "severity_filter": choices("severity", list(Severity.choices), severity),
            "runs": [{"run": r, "badge": badge(r.status), "url": reverse("admin:quality_checkrun_change", args=[r.pk])}
                     for r in runs],
            "can_reprocess": request.user.has_perm(REPROCESS_PERMISSION),
            "quarantine": quarantine_page(request.user, dataset, limit=10, offset=0, check_run_ids=None),
        }
        return TemplateResponse(request, "admin/quality/dataset.html", context)

    def reprocess_view(self, request: HttpRequest, dataset_id: int) -> HttpResponse:
        """POST: re-process the dataset's check-quarantined rows (all, or one check run's) through its checks."""
        if not request.user.has_perm(REPROCESS_PERMISSION):
            raise PermissionDenied
        dataset = get_object_or_404(Dataset, pk=dataset_id)
        run_ids = _run_ids(request.POST.get("check_run"))
        _reprocess_and_report(self, request, dataset, run_ids)
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
            target = reverse("admin:quality_dataset", args=[dataset.pk])
        return HttpResponseRedirect(target)


def _query(params: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return "?" + urlencode(params) if params else "?"


def _run_ids(value: str | None) -> list[int] | None:
    """``check_run`` from a request: one or several ids, comma-separated; anything else selects all."""
    if not value:
        return None
    try:
        return [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        return None


def quarantine_page(
    user, dataset: Dataset, *, limit: int, offset: int, check_run_ids: list[int] | None, history: bool = False
) -> dict:
    """A page of the quarantine for a template, masked for ``user``; never raises.

    By default, a dataset its step rebuilds shows the rows of the table as it is (ingest rejects and
    the latest build's check rejects): the copies earlier builds quarantined stay as history
    (``superseded``), shown with ``history`` — a re-run does not show the same rows twice.
    """
    try:
        wh = get_warehouse()
        name = quarantine.quarantine_name(dataset.table)
        if not wh.table_exists(dataset.layer, name):
            return {"total": 0, "from_checks": 0, "superseded": 0, "columns": [], "rows": []}
        current = current_check_runs(dataset)
        everything = wh.row_count(dataset.layer, name)
        superseded = 0
        if check_run_ids is None and current is not None and not history:
            total = quarantine.count_rows(wh, dataset.layer, dataset.table, current, with_rejects=True)
            superseded = everything - total
            columns, rows = quarantine.browse(wh, dataset.layer, dataset.table, limit=limit, offset=offset,
                                              check_run_ids=current, with_rejects=True)
        else:
            total = everything if check_run_ids is None else quarantine.count_rows(wh, dataset.layer, dataset.table, check_run_ids)
            columns, rows = quarantine.browse(wh, dataset.layer, dataset.table, limit=limit, offset=offset,
                                              check_run_ids=check_run_ids)
        selection = current if check_run_ids is None else check_run_ids
        from_checks = quarantine.count_rows(wh, dataset.layer, dataset.table, selection)
    except WarehouseError as exc:
        return {"error": str(exc), "total": 0, "from_checks": 0, "superseded": 0, "columns": [], "rows": []}
    return {"total": total, "from_checks": from_checks, "superseded": superseded, "history": history,
            "columns": columns, "rows": mask(user, dataset, columns, rows)}


def _reprocess_and_report(model_admin, request: HttpRequest, dataset: Dataset, run_ids: list[int] | None) -> None:
    try:
        done = reprocess(dataset, check_run_ids=run_ids, actor=request.user)
    except ReprocessError as exc:
        model_admin.message_user(request, f"{dataset.name}: {exc}", messages.ERROR)
        return
    text = f"{dataset.name}: {done}"
    if done.check_run is not None:
        model_admin.message_user(request, format_html("{} ({})", text, admin_link(done.check_run, f"check run #{done.check_run.pk}")),
                                 messages.SUCCESS)
    else:
        model_admin.message_user(request, text, messages.INFO)


class CheckResultInline(ReadOnlyInline, admin.TabularInline):
    model = CheckResult
    fields = ("check_link", "kind", "severity", "outcome_badge", "covers_shown", "failing_rows", "failing_share", "rows_quarantined",
              "message", "query_group", "query_seconds")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("check_ref", "check_run")

    @admin.display(description="covers")
    def covers_shown(self, obj: CheckResult) -> str:
        return obj.covers_shown

    @admin.display(description="check")
    def check_link(self, obj: CheckResult) -> str:
        return admin_link(obj, obj.check_name)

    @admin.display(description="outcome")
    def outcome_badge(self, obj: CheckResult) -> str:
        return badge(obj.outcome)


@admin.register(CheckRun)
class CheckRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "dataset", "table_display", "status_badge", "trigger", "started_at", "rows_checked", "rows_quarantined", "queries", "step_run_link")
    list_filter = ("status", "trigger", "dataset")
    list_select_related = ("dataset", "step_run__run__pipeline")
    search_fields = ("table", "dataset__name", "error")
    date_hierarchy = "started_at"
    fields = ("dataset", "table_display", "status_badge", "trigger", "triggered_by", "step_run_link", "started_at",
              "finished_at", "rows_checked", "rows_quarantined", "queries", "error", "quarantine_link")
    readonly_fields = fields
    inlines = (CheckResultInline,)

    @admin.display(description="table", ordering="table")
    def table_display(self, obj: CheckRun) -> str:
        return obj.table_shown
    actions = ("reprocess_quarantined",)

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        if not request.user.has_perm(REPROCESS_PERMISSION):
            actions.pop("reprocess_quarantined", None)
        return actions

    @admin.action(description="Re-process the rows these check runs quarantined (same checks again)")
    def reprocess_quarantined(self, request: HttpRequest, queryset) -> None:
        by_dataset: dict[int, list[int]] = {}
        for run in queryset.select_related(None).only("pk", "dataset_id"):
            by_dataset.setdefault(run.dataset_id, []).append(run.pk)
        for dataset in Dataset.objects.filter(pk__in=by_dataset):
            _reprocess_and_report(self, request, dataset, sorted(by_dataset[dataset.pk]))

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
        page = reverse("admin:quality_dataset", args=[obj.dataset_id])
        if not obj.rows_quarantined:
            return format_html('<a href="{}">Quality of {}</a>', page, obj.dataset.name)
        return format_html(
            '<a href="{}?check_run={}">{} row(s) moved: browse</a> · <a href="{}">Quality of {}</a>',
            reverse("admin:quality_quarantine", args=[obj.dataset_id]), obj.pk, obj.rows_quarantined, page, obj.dataset.name,
        )


@admin.register(CheckResult)
class CheckResultAdmin(ReadOnlyAdmin):
    list_display = ("check_name", "dataset", "kind", "severity", "outcome_badge", "failing_rows", "failing_share", "created_at", "run_link")
    list_filter = ("outcome", "severity", "kind", "check_run__dataset")
    list_select_related = ("check_run__dataset",)
    search_fields = ("check_name", "message")
    date_hierarchy = "created_at"
    fields = ("check_name", "run_link", "kind", "rule", "severity", "outcome_badge", "covers_shown", "observed_pre", "failing_rows",
              "failing_share", "rows_quarantined", "message", "query_group", "query_seconds", "created_at")
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

    @admin.display(description="rule")
    def rule(self, obj: CheckResult) -> str:
        """The check's definition as it is now (``-`` once the check is deleted)."""
        return describe(obj.check_ref) if obj.check_ref_id else "-"

    @admin.display(description="observed")
    def observed_pre(self, obj: CheckResult) -> str:
        return json_pre(obj.observed)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = {**(extra_context or {}), "samples": self.samples(obj, request.user) if obj is not None else "-"}
        return super().change_view(request, object_id, form_url, extra)

    @staticmethod
    def samples(obj: CheckResult, user) -> str:
        """The stored failing rows as ``user`` may see them (PII columns masked without the permission)."""
        if not obj.sample_rows:
            return "-"
        columns = list(obj.sample_columns)
        rows = [[row.get(c) for c in columns] for row in obj.sample_rows]
        rows = mask(user, obj.check_run.dataset, columns, rows)
        head = format_html_join("", "<th>{}</th>", ((c,) for c in columns))
        body = format_html_join(
            "", "<tr>{}</tr>",
            ((format_html_join("", "<td>{}</td>", ((v if v is not None else "NULL",) for v in row)),) for row in rows),
        )
        return format_html('<div class="atlas-preview"><table><thead><tr>{}</tr></thead><tbody>{}</tbody></table></div>', head, body)
