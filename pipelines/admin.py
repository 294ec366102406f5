"""The operators' admin: declare sources, datasets and pipelines; run them; read every run.

Thin on purpose: runs are started and cancelled by :mod:`pipelines.runner`,
steps are validated by the models and :func:`runner.plan_steps`; this module
only calls them and formats what they return. History (runs, step runs,
batches) is read-only.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Count, OuterRef, Subquery
from django.forms import ModelForm, Textarea
from django.forms.models import BaseInlineFormSet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.views.decorators.http import require_POST
from simple_history.admin import SimpleHistoryAdmin

from atlas import extensions
from atlas.admin_kit import (
    ADMIN_CSS,
    ManagedFromFilesWarning,
    Palette,
    ReadOnlyAdmin,
    ReadOnlyInline,
    RunRecordDisplay,
    admin_link,
    first_line,
    json_pre,
    pre,
)
from atlas.request_limits import upload_refusal
from atlas.scrub import scrub
from atlas.warehouse import WarehouseError, get_warehouse

from . import browse, editor, live, pictures, runner
from .dag import PipelineDefinitionError
from .models import (
    PARTIALLY_FAILED,
    Dataset,
    DatasetColumn,
    Layer,
    LoadedBatch,
    Pipeline,
    PipelineRun,
    RunAttempt,
    RunStatus,
    Source,
    Step,
    StepRun,
    Trigger,
)

logger = logging.getLogger(__name__)

PREVIEW_ROWS = 20
LATEST_BATCHES = 20
PREVIEW_CELL_CHARS = 200

# One colour per status, for runs, step runs and loaded batches.
STATUS_COLOURS = {
    RunStatus.QUEUED: "#6c757d",
    RunStatus.RUNNING: "#0d6efd",
    RunStatus.SUCCEEDED: "#198754",
    RunStatus.FAILED: "#dc3545",
    RunStatus.CANCELLED: "#fd7e14",
    RunStatus.SKIPPED: "#6c757d",
    PARTIALLY_FAILED: "#d63384",
    LoadedBatch.Status.LOADED: "#198754",
    LoadedBatch.Status.REJECTED: "#dc3545",
}
STATUS = Palette(STATUS_COLOURS)


# --- what the other apps contribute (atlas.extensions) ----------------------------
def contributed_panels(kind: str, request: HttpRequest, obj) -> list[str]:
    """The sections apps contribute to ``obj``'s page, each rendered by its app with its own template."""
    return [mark_safe(html) for panel in extensions.contributions(kind) if (html := panel(request, obj))]


def build_dataset_admin(mixins: list[type] | None = None) -> type[admin.ModelAdmin]:
    """The Dataset admin, built once: this app's, plus each app's contributed ``dataset_admin`` mixin.

    A mixin adds methods (e.g. an action's permission check) and, merged here,
    ``dataset_list_display``, ``dataset_list_filter``, ``dataset_actions`` and
    ``dataset_select_related`` — no app unregisters and re-registers the admin.
    """
    mixins = extensions.contributions("dataset_admin") if mixins is None else mixins

    def merged(name: str) -> tuple:
        return tuple(item for mixin in mixins for item in getattr(mixin, name, ()))

    base = DatasetAdminBase
    attrs = {
        "list_display": (*base.list_display, *merged("dataset_list_display")),
        "list_filter": (*base.list_filter, *merged("dataset_list_filter")),
        "actions": (*(base.actions or ()), *merged("dataset_actions")),
        "list_select_related_extra": merged("dataset_select_related"),
        "__module__": __name__,
    }
    return type("DatasetAdmin", (*mixins, base), attrs)


# --- formatting ------------------------------------------------------------------
def status_badge(status: str, label: str | None = None) -> str:
    return STATUS.badge(status, label)


def table_preview(schema: str, table: str, limit: int = PREVIEW_ROWS) -> dict:
    """What the warehouse holds for one table, for a template; never raises.

    ``{"loaded": False}`` when the table does not exist, ``{"error": ...}`` when
    the warehouse cannot be read, else the row count, column names and rows.
    """
    try:
        wh = get_warehouse()
        if not wh.table_exists(schema, table):
            return {"loaded": False, "table": f"{schema}.{table}"}
        columns, rows = wh.preview(schema, table, limit)
        count = wh.row_count(schema, table)
    except WarehouseError as exc:
        logger.warning("Cannot preview %s.%s: %s", schema, table, exc)
        return {"loaded": False, "table": f"{schema}.{table}", "error": str(exc)}
    return {
        "loaded": True,
        "table": f"{schema}.{table}",
        "count": count,
        "columns": columns,
        "rows": [[_cell(v) for v in row] for row in rows],
        "limit": limit,
    }


def mask_previews(user, dataset: Dataset, context: dict) -> None:
    """Hide PII from users who may not see it (the row masker an app contributes: compliance's)."""
    for key in ("preview", "quarantine"):
        preview = context.get(key)
        if preview and preview.get("loaded"):
            preview["rows"] = extensions.mask_rows(user, dataset, preview["columns"], preview["rows"])


def _cell(value: object) -> object:
    if value is None or isinstance(value, int | float):
        return value
    return Truncator(str(value)).chars(PREVIEW_CELL_CHARS)


# --- sources -----------------------------------------------------------------------
@admin.register(Source)
class SourceAdmin(ManagedFromFilesWarning, SimpleHistoryAdmin):
    list_display = ("name", "kind", "format", "location", "steps_count")
    list_filter = ("kind", "format")
    search_fields = ("name", "location", "description", "database")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "format", "description")}),
        ("Where", {"fields": ("location", "upload", "database", "query")}),
        ("How to read it", {"fields": ("options", "schema")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).annotate(steps_count=Count("steps"))

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        """The model's form, plus the refusal of an upload stopped at ATLAS_UPLOAD_MAX_BYTES while it streamed."""
        form = super().get_form(request, obj, change, **kwargs)
        refused = upload_refusal(request)
        if not refused:
            return form

        class RefusedUploadForm(form):  # type: ignore[valid-type, misc]
            def clean(self) -> dict:
                cleaned = super().clean()
                self.add_error("upload" if "upload" in self.fields else None, refused)
                return cleaned

        return RefusedUploadForm

    @admin.display(description="steps", ordering="steps_count")
    def steps_count(self, obj: Source) -> int:
        return obj.steps_count


# --- datasets ----------------------------------------------------------------------
class DatasetColumnInline(admin.TabularInline):
    model = DatasetColumn
    fields = ("position", "name", "data_type", "nullable", "description")
    readonly_fields = ("position", "name", "data_type", "nullable")
    extra = 0
    can_delete = False
    formfield_overrides = {models.TextField: {"widget": Textarea(attrs={"rows": 1, "cols": 60})}}

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("dataset")

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class DatasetAdminBase(ManagedFromFilesWarning, SimpleHistoryAdmin):
    """The Dataset admin of this app; :func:`build_dataset_admin` adds what the other apps contribute."""

    list_display = (
        "name",
        "layer",
        "qualified_table",
        "row_count",
        "last_loaded_at",
        "columns_count",
    )
    list_filter = ("layer",)
    search_fields = ("name", "table", "description")
    autocomplete_fields = ("owner",)
    readonly_fields = ("row_count", "last_loaded_at", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "layer", "table", "description", "owner")}),
        (
            "Load statistics",
            {"fields": ("row_count", "last_loaded_at", "created_at", "updated_at")},
        ),
    )
    inlines = (DatasetColumnInline,)
    change_form_template = "admin/pipelines/dataset/change_form.html"
    list_select_related_extra: tuple[str, ...] = ()

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest):
        queryset = super().get_queryset(request).annotate(columns_count=Count("columns"))
        return queryset.select_related(*self.list_select_related_extra) if self.list_select_related_extra else queryset

    @admin.display(description="table", ordering="table")
    def qualified_table(self, obj: Dataset) -> str:
        return obj.qualified_table

    @admin.display(description="columns", ordering="columns_count")
    def columns_count(self, obj: Dataset) -> int:
        return obj.columns_count

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context.update(self.warehouse_context(obj))
            mask_previews(request.user, obj, context)
            context["series"] = pictures.time_series(request.user, obj)
            context["dataset_panels"] = contributed_panels("dataset_panels", request, obj)
            context["dataset_tools"] = [tool for make in extensions.contributions("dataset_tools")
                                        if (tool := make(request, obj))]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        data = path("<path:object_id>/data/", self.admin_site.admin_view(self.data_view),
                    name=f"{self.opts.app_label}_{self.opts.model_name}_data")
        data_csv = path("<path:object_id>/data.csv", self.admin_site.admin_view(self.data_csv_view),
                        name=f"{self.opts.app_label}_{self.opts.model_name}_data_csv")
        return [data, data_csv, *super().get_urls()]

    def _browsed(self, request: HttpRequest, object_id: str) -> tuple[Dataset, browse.Query]:
        dataset = self.get_object(request, unquote(object_id))
        if dataset is None or not self.has_view_permission(request, dataset):
            raise Http404("No such dataset.")
        wh = get_warehouse()
        if not wh.table_exists(dataset.layer, dataset.table):
            raise Http404(f"{dataset.qualified_table} is not loaded yet.")
        return dataset, browse.parse(request.GET, browse.table_columns(dataset))

    def data_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The dataset's rows: pages, a sort, the columns chosen; the CSV of the same (pipelines.browse)."""
        dataset, query = self._browsed(request, object_id)
        context = {**self.admin_site.each_context(request), "opts": self.opts, "original": dataset,
                   "title": f"Data of {dataset.qualified_table}", "query": query, "page_sizes": browse.PAGE_SIZES}
        try:
            context["data"] = browse.page(request.user, dataset, query)
        except WarehouseError as exc:
            context["error"] = scrub(str(exc))
        base = reverse("admin:pipelines_dataset_data", args=[dataset.pk])
        context["csv_url"] = reverse("admin:pipelines_dataset_data_csv", args=[dataset.pk]) + "?" + urlencode(
            query.params(page=None, size=None), doseq=True)
        context["headers"] = [
            {"name": c, "sorted": query.sort == c and ("desc" if query.descending else "asc"),
             "url": base + "?" + urlencode(query.params(sort=c, page=1, dir="desc" if query.sort == c and not query.descending else "asc"), doseq=True)}
            for c in query.columns
        ]
        data = context.get("data")
        if data:
            context["prev_url"] = base + "?" + urlencode(query.params(page=query.page - 1), doseq=True) if query.page > 1 else None
            context["next_url"] = (base + "?" + urlencode(query.params(page=query.page + 1), doseq=True)
                                   if query.page < data["pages"] else None)
        return TemplateResponse(request, "admin/pipelines/dataset/data.html", context)

    def data_csv_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        dataset, query = self._browsed(request, object_id)
        if query.problems:
            return HttpResponse(" ".join(query.problems), status=400, content_type="text/plain; charset=utf-8")
        response = StreamingHttpResponse(browse.csv_lines(request.user, dataset, query), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{dataset.layer}.{dataset.table}.csv"'
        return response

    def warehouse_context(self, dataset: Dataset) -> dict:
        context = {"preview": table_preview(dataset.layer, dataset.table)}
        if context["preview"].get("loaded"):
            context["preview"]["browse_url"] = reverse("admin:pipelines_dataset_data", args=[dataset.pk])
        if dataset.layer == Layer.EXPLORE:
            batches = dataset.batches.select_related("step_run")[:LATEST_BATCHES]
            context["batches"] = [
                {
                    "batch": b,
                    "badge": status_badge(b.status, b.get_status_display()),
                    "step_run": admin_link(b.step_run, f"step run #{b.step_run_id}"),
                }
                for b in batches
            ]
            context["quarantine"] = table_preview(dataset.layer, f"{dataset.table}__quarantine")
        return context


# --- pipelines ---------------------------------------------------------------------
class StepForm(ModelForm):
    class Meta:
        model = Step
        fields = (
            "name",
            "kind",
            "position",
            "source",
            "output",
            "sql",
            "write_mode",
            "merge_keys",
            "incremental",
            "max_rejected_share",
            "timeout_seconds",
            "hard_timeout_seconds",
        )
        widgets = {
            "sql": Textarea(
                attrs={"rows": 10, "cols": 100, "class": "atlas-sql", "spellcheck": "false"}
            ),
        }


class StepFormSet(BaseInlineFormSet):
    """Refuses steps that cannot run together: a cycle, or a read nobody produces."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return  # the plan would be judged on an incomplete set of steps
        steps = [
            form.instance
            for form in self.forms
            if form.cleaned_data and not (self.can_delete and self._should_delete_form(form))
        ]
        if not steps:
            return
        try:
            runner.plan_steps(self.instance, steps=steps)
        except PipelineDefinitionError as exc:
            raise ValidationError(str(exc)) from exc


class StepInline(admin.StackedInline):
    model = Step
    form = StepForm
    formset = StepFormSet
    extra = 0
    autocomplete_fields = ("source", "output")
    readonly_fields = ("derived_inputs",)
    fieldsets = (
        (None, {"fields": (("name", "kind", "position", "tags"), ("source", "output"), "sql")}),
        (None, {"fields": (("write_mode", "merge_keys", "incremental", "max_rejected_share"), "derived_inputs")}),
        ("Time limits", {"fields": (("timeout_seconds", "hard_timeout_seconds"),)}),
    )

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("pipeline").prefetch_related("inputs")

    @admin.display(description="inputs (from the SQL)")
    def derived_inputs(self, obj: Step) -> str | None:
        if not obj.pk:
            return None
        return (
            format_html_join(
                ", ", "{}", ((admin_link(ds, ds.qualified_table),) for ds in obj.inputs.all())
            )
            or None
        )


def _last_run(field: str) -> Subquery:
    runs = PipelineRun.objects.filter(pipeline=OuterRef("pk")).order_by("-created_at", "-id")
    return Subquery(runs.values(field)[:1])


@admin.register(Pipeline)
class PipelineAdmin(ManagedFromFilesWarning, SimpleHistoryAdmin):
    list_display = (
        "name",
        "enabled",
        "schedule",
        "steps_count",
        "last_run_badge",
        "last_run_at",
    )
    list_filter = ("enabled",)
    search_fields = ("name", "description")
    readonly_fields = ("periodic_task_link", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "description", "enabled")}),
        ("Schedule", {"fields": ("schedule", "periodic_task_link")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (StepInline,)
    actions = ("run_now", "run_now_forced")
    change_form_template = "admin/pipelines/pipeline/change_form.html"

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest):
        return (
            super()
            .get_queryset(request)
            .annotate(
                steps_count=Count("steps"),
                last_run_id=_last_run("id"),
                last_run_status=_last_run("status"),
                last_run_at=_last_run("created_at"),
            )
        )

    def get_urls(self):
        run = path(
            "<path:object_id>/run/",
            self.admin_site.admin_view(self.run_now_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_run",
        )
        step_sql = path(
            "step-sql/",
            self.admin_site.admin_view(self.step_sql_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_step_sql",
        )
        return [step_sql, run, *super().get_urls()]

    @method_decorator(require_POST)
    def step_sql_view(self, request: HttpRequest) -> JsonResponse:
        """The editor's Validate and Preview buttons (pipelines.editor): JSON for the step form to draw."""
        if not (self.has_change_permission(request) or self.has_add_permission(request)):
            return JsonResponse({"error": "You may not edit pipelines."}, status=403)
        kind, sql = request.POST.get("kind", ""), request.POST.get("sql", "")
        wanted = request.POST.get("action", "validate")
        if wanted not in ("validate", "preview"):
            return JsonResponse({"error": "The action is validate or preview."}, status=400)
        try:
            if wanted == "preview":
                check, rows = editor.preview_step_sql(request.user, kind, sql)
            else:
                check, rows = editor.check_step_sql(kind, sql), None
        except editor.EditorError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        answer = {
            "kind": check.kind, "layer": check.layer, "columns": check.columns,
            "reads": [{"name": ds.qualified_table, "url": reverse("admin:pipelines_dataset_change", args=[ds.pk])}
                      for ds in check.reads],
            "missing": [ds.qualified_table for ds in check.missing],
        }
        if rows is not None:
            answer["rows"] = [[editor.cell(v) for v in row] for row in rows]
        return JsonResponse(answer)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:  # the steps as a graph, coloured by the last run (pipelines.graph)
            from .graph import graph_context

            context["graph"] = graph_context(obj)
            context["history"] = pictures.run_history(obj)
        context["step_kind_fields"] = editor.KIND_FIELDS
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="steps", ordering="steps_count")
    def steps_count(self, obj: Pipeline) -> int:
        return obj.steps_count

    @admin.display(description="last run", ordering="last_run_status")
    def last_run_badge(self, obj: Pipeline) -> str | None:
        if not obj.last_run_status:
            return None
        url = reverse("admin:pipelines_pipelinerun_change", args=[obj.last_run_id])
        label = RunStatus(obj.last_run_status).label
        return format_html('<a href="{}">{}</a>', url, status_badge(obj.last_run_status, label))

    @admin.display(description="last run at", ordering="last_run_at")
    def last_run_at(self, obj: Pipeline):
        return obj.last_run_at

    @admin.display(description="beat task")
    def periodic_task_link(self, obj: Pipeline) -> str:
        task = obj.periodic_task
        if task is None:
            return "None (no schedule)."
        try:
            url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        except NoReverseMatch:
            return str(task)
        return format_html('<a href="{}">{}</a> (managed by Atlas)', url, task)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        runner.save_step_inputs(form.instance)

    # --- running -----------------------------------------------------------------
    def _start(self, request: HttpRequest, pipeline: Pipeline, *, force: bool = False) -> PipelineRun | None:
        try:
            run = runner.start_run(pipeline, actor=request.user, trigger=Trigger.MANUAL, force=force)
        except runner.RunRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        return run

    @admin.action(description="Run selected pipelines now", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset, *, force: bool = False) -> None:
        started = [run for pipeline in queryset if (run := self._start(request, pipeline, force=force))]
        if started:
            links = format_html_join(
                ", ",
                "{} ({})",
                ((admin_link(run, f"run #{run.pk}"), run.pipeline) for run in started),
            )
            self.message_user(request, format_html("Started {}.", links), messages.SUCCESS)

    @admin.action(description="Run selected pipelines now, every step (forced: even steps up to date)",
                  permissions=["change"])
    def run_now_forced(self, request: HttpRequest, queryset) -> None:
        self.run_now(request, queryset, force=True)

    @method_decorator(require_POST)
    def run_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        pipeline = self.get_object(request, unquote(object_id))
        if pipeline is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, pipeline):
            raise PermissionDenied
        run = self._start(request, pipeline, force=request.POST.get("force") in ("1", "true", "on"))
        if run is None:
            return HttpResponseRedirect(
                reverse("admin:pipelines_pipeline_change", args=[pipeline.pk])
            )
        self.message_user(
            request,
            format_html("Started {} of {}.", admin_link(run, f"run #{run.pk}"), pipeline),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:pipelines_pipelinerun_change", args=[run.pk]))


# --- runs --------------------------------------------------------------------------
class StepRunInline(RunRecordDisplay, ReadOnlyInline, admin.TabularInline):
    model = StepRun
    fields = (
        "position",
        "step_name",
        "kind",
        "output_link",
        "status_badge",
        "duration_display",
        "rows_in",
        "rows_out",
        "rows_rejected",
        "error_line",
        "details_link",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("run__pipeline", "output")

    @admin.display(description="output")
    def output_link(self, obj: StepRun) -> str | None:
        return admin_link(obj.output, obj.output.qualified_table) if obj.output else None

    @admin.display(description="details")
    def details_link(self, obj: StepRun) -> str | None:
        return admin_link(obj, "details")


class RunAttemptInline(ReadOnlyInline, admin.TabularInline):
    """Every attempt at the run: the worker, when, and how it ended (lost: resumed by the next)."""

    model = RunAttempt
    fields = ("number", "worker", "started_at", "ended_at", "outcome", "reason")
    readonly_fields = fields
    verbose_name_plural = "attempts"


class CancelPermission:
    """Whoever may run pipelines may cancel their runs."""

    def has_cancel_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("pipelines.change_pipeline")


@admin.register(PipelineRun)
class PipelineRunAdmin(RunRecordDisplay, CancelPermission, ReadOnlyAdmin):
    list_display = (
        "id",
        "pipeline",
        "status_badge",
        "trigger",
        "triggered_by",
        "created_at",
        "duration_display",
        "rows_in",
        "rows_out",
        "rows_rejected",
    )
    list_display_links = ("id",)
    list_filter = ("status", "trigger", "pipeline")
    list_select_related = ("pipeline", "triggered_by")
    date_hierarchy = "created_at"
    search_fields = ("pipeline__name", "error")
    readonly_fields = (
        "pipeline_link",
        "status_badge",
        "trigger",
        "triggered_by",
        "current_step",
        "cancel_requested",
        "attempt",
        "rerun_of",
        "celery_task_id",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "duration_display",
        "rows_in",
        "rows_out",
        "rows_rejected",
        "error",
        "traceback_pre",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "pipeline_link",
                    "status_badge",
                    "trigger",
                    "triggered_by",
                    "current_step",
                    "cancel_requested",
                    "attempt",
                    "rerun_of",
                )
            },
        ),
        (
            "Timings",
            {
                "fields": (
                    "created_at",
                    "started_at",
                    "finished_at",
                    "heartbeat_at",
                    "duration_display",
                )
            },
        ),
        ("Rows", {
            "fields": ("rows_in", "rows_out", "rows_rejected"),
            "description": "Rows in: what the run took in — read by its ingest steps from their sources (a run"
            " without one, such as a rebuild, by its first steps). Rows out: written by all its steps, every layer."
            " Rejected: refused by any step. Each step's own counts are in the table below.",
        }),
        ("Error", {"fields": ("error", "traceback_pre", "celery_task_id")}),
    )
    inlines = (StepRunInline, RunAttemptInline)
    actions = ("cancel", "rerun_failed")
    change_form_template = "admin/pipelines/pipelinerun/change_form.html"

    class Media:
        css = ADMIN_CSS

    def get_urls(self):
        cancel = path(
            "<path:object_id>/cancel/",
            self.admin_site.admin_view(self.cancel_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_cancel",
        )
        rerun = path(
            "<path:object_id>/rerun-failed/",
            self.admin_site.admin_view(self.rerun_failed_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_rerun_failed",
        )
        state = path(
            "<path:object_id>/live/",
            self.admin_site.admin_view(self.live_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_live",
        )
        return [cancel, rerun, state, *super().get_urls()]

    def live_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The run now, as JSON (pipelines.live.run_state): the run page polls it while the run is active."""
        run = self.get_object(request, unquote(object_id))
        if run is None or not self.has_view_permission(request, run):
            return JsonResponse({"error": "No such run."}, status=404)
        return JsonResponse(live.run_state(run))  # never cached: admin_view marks every answer so

    def _rerun(self, request: HttpRequest, runs) -> None:
        for run in runs:
            try:
                rerun = runner.rerun_failed(run, actor=request.user, trigger=Trigger.MANUAL)
            except runner.RunRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(
                request,
                format_html("Re-running the failed and skipped steps of run #{} as {}.", run.pk,
                            admin_link(rerun, f"run #{rerun.pk}")),
                messages.SUCCESS,
            )

    @admin.action(description="Re-run failed and skipped steps", permissions=["cancel"])
    def rerun_failed(self, request: HttpRequest, queryset) -> None:
        self._rerun(request, queryset.select_related("pipeline"))

    @method_decorator(require_POST)
    def rerun_failed_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        run = self.get_object(request, unquote(object_id))
        if run is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_cancel_permission(request, run):
            raise PermissionDenied
        self._rerun(request, [run])
        return HttpResponseRedirect(reverse("admin:pipelines_pipelinerun_change", args=[run.pk]))

    @admin.display(description="pipeline")
    def pipeline_link(self, obj: PipelineRun) -> str:
        return admin_link(obj.pipeline)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["run_panels"] = contributed_panels("run_panels", request, obj)
        if obj is not None and obj.is_active:
            context["live"] = live.run_state(obj)
            context["can_cancel"] = self.has_cancel_permission(request, obj)
        if obj is not None and obj.status in (RunStatus.FAILED, PARTIALLY_FAILED):
            context["can_rerun"] = self.has_cancel_permission(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _cancel(self, request: HttpRequest, runs) -> None:
        cancelled, stopping, finished = [], [], []
        for run in runs:
            outcome = runner.cancel_run(run, actor=request.user)
            {"cancelled": cancelled, "stopping": stopping, None: finished}[outcome].append(run)
        for runs_, text, level in (
            (cancelled, "Cancelled {}.", messages.SUCCESS),
            (stopping, "Asked {} to stop after the current file or step.", messages.SUCCESS),
            (finished, "Not cancelled (already finished): {}.", messages.WARNING),
        ):
            if runs_:
                links = format_html_join(
                    ", ", "{}", ((admin_link(r, f"run #{r.pk}"),) for r in runs_)
                )
                self.message_user(request, format_html(text, links), level)

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel(self, request: HttpRequest, queryset) -> None:
        self._cancel(request, queryset)

    @method_decorator(require_POST)
    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        run = self.get_object(request, unquote(object_id))
        if run is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_cancel_permission(request, run):
            raise PermissionDenied
        self._cancel(request, [run])
        return HttpResponseRedirect(reverse("admin:pipelines_pipelinerun_change", args=[run.pk]))


class LoadedBatchInline(ReadOnlyInline, admin.TabularInline):
    model = LoadedBatch
    fields = (
        "file",
        "batch_id",
        "status_badge",
        "rows_loaded",
        "rows_rejected",
        "reason",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("dataset")

    @admin.display(description="status")
    def status_badge(self, obj: LoadedBatch) -> str:
        return status_badge(obj.status, obj.get_status_display())


@admin.register(StepRun)
class StepRunAdmin(RunRecordDisplay, ReadOnlyAdmin):
    list_display = (
        "run",
        "step_name",
        "kind",
        "status_badge",
        "duration_display",
        "rows_in",
        "rows_out",
        "rows_rejected",
        "started_at",
    )
    list_filter = ("status", "kind")
    list_select_related = ("run__pipeline",)
    search_fields = ("step_name", "run__pipeline__name", "error")
    readonly_fields = (
        "run_link",
        "step_name",
        "kind",
        "position",
        "output_link",
        "status_badge",
        "started_at",
        "finished_at",
        "duration_display",
        "rows_in",
        "rows_out",
        "rows_rejected",
        "error",
        "traceback_pre",
        "tries_pre",
        "sql_pre",
        "details_pre",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "run_link",
                    "step_name",
                    "kind",
                    "position",
                    "output_link",
                    "status_badge",
                )
            },
        ),
        (
            "Timings and rows",
            {
                "fields": (
                    "started_at",
                    "finished_at",
                    "duration_display",
                    "rows_in",
                    "rows_out",
                    "rows_rejected",
                )
            },
        ),
        ("Error", {"fields": ("error", "traceback_pre")}),
        ("Tries", {"fields": ("tries_pre",)}),
        ("As executed", {"fields": ("sql_pre", "details_pre")}),
    )
    inlines = (LoadedBatchInline,)

    class Media:
        css = ADMIN_CSS

    @admin.display(description="run")
    def run_link(self, obj: StepRun) -> str:
        return admin_link(obj.run)

    @admin.display(description="output")
    def output_link(self, obj: StepRun) -> str | None:
        return admin_link(obj.output, obj.output.qualified_table) if obj.output else None

    @admin.display(description="tries (retries and interrupted attempts)")
    def tries_pre(self, obj: StepRun) -> str | None:
        return json_pre(obj.tries) if obj.tries else None

    @admin.display(description="SQL as executed")
    def sql_pre(self, obj: StepRun) -> str | None:
        return pre(obj.sql)

    @admin.display(description="details")
    def details_pre(self, obj: StepRun) -> str | None:
        return (
            json_pre(obj.details, sort_keys=True)
            if obj.details
            else None
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["run_panels"] = contributed_panels("run_panels", request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(LoadedBatch)
class LoadedBatchAdmin(ReadOnlyAdmin):
    list_display = (
        "dataset",
        "file",
        "status_badge",
        "rows_loaded",
        "rows_rejected",
        "reason_line",
        "created_at",
    )
    list_filter = ("status", "dataset")
    list_select_related = ("dataset",)
    search_fields = ("file", "batch_id", "checksum", "dataset__name")
    date_hierarchy = "created_at"
    readonly_fields = (
        "dataset_link",
        "step_run_link",
        "batch_id",
        "file",
        "checksum",
        "size_bytes",
        "status_badge",
        "rows_loaded",
        "rows_rejected",
        "reason",
        "created_at",
    )
    fields = readonly_fields

    class Media:
        css = ADMIN_CSS

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: LoadedBatch) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="reason")
    def reason_line(self, obj: LoadedBatch) -> str:
        return first_line(obj.reason)

    @admin.display(description="dataset")
    def dataset_link(self, obj: LoadedBatch) -> str:
        return admin_link(obj.dataset)

    @admin.display(description="step run")
    def step_run_link(self, obj: LoadedBatch) -> str | None:
        return admin_link(obj.step_run, f"step run #{obj.step_run_id}") if obj.step_run_id else None


# Last, once every admin class above exists: the apps' mixins may use them.
DatasetAdmin = build_dataset_admin()
admin.site.register(Dataset, DatasetAdmin)

from . import backfill_admin  # noqa: E402, F401  (Backfill and SourceWatermark admins)
