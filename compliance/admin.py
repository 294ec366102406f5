"""The stewards' admin: read scans, confirm or dismiss findings, set column policies.

Thin: decisions go through :func:`policies.decide_finding`, scans through
:func:`detection.scan_dataset`, and every policy change is audited. Sample
values are masked for users without ``compliance.view_pii_clear``.
"""

from __future__ import annotations

import threading

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, When
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST
from simple_history.admin import SimpleHistoryAdmin

from atlas import audit
from atlas.admin_kit import (
    ADMIN_CSS,
    ManagedFromFilesWarning,
    Palette,
    ReadOnlyAdmin,
    RunRecordDisplay,
    admin_link,
    enqueue_from_admin,
)
from pipelines.models import Dataset

from .dataset_admin import SCAN_PERMISSION, scan_for_pii  # noqa: F401 (the Dataset admin's action, compliance's)
from .detection import scan_dataset
from .masking import mask_samples
from .models import ColumnPolicy, PiiFinding, PiiScan
from .policies import PolicyError, decide_finding, keep_finding, record_policy_change, review_state


def _target_names(finding: PiiFinding) -> list[tuple[str, str]]:
    """(dataset name, column) of each Chart column the finding's data reaches (what Keep in clear keeps)."""
    from .policies import policy_targets

    targets = policy_targets(finding)
    names = dict(Dataset.objects.filter(pk__in={pk for pk, _c in targets}).values_list("pk", "name"))
    return [(names[pk], column) for pk, column in targets]


_viewer = threading.local()  # the user a change page is rendered for (masked samples)
FINDING_COLOURS = {"proposed": "#0d6efd", "confirmed": "#198754", "dismissed": "#6c757d"}
FINDINGS = Palette(FINDING_COLOURS, css=())




def _rescan(modeladmin: admin.ModelAdmin, request: HttpRequest, datasets, sample_size: int | None = None) -> list:
    """Scan each dataset once (the service ``manage.py scan_pii`` calls), one message per scan."""
    scans = []
    for dataset in {d.pk: d for d in datasets}.values():
        scan = scan_dataset(dataset, actor=request.user, trigger=PiiScan.Trigger.MANUAL, sample_size=sample_size)
        level = messages.SUCCESS if scan.status == "succeeded" else messages.ERROR
        text = f"{scan.findings_count} finding(s)" if scan.status == "succeeded" else scan.error
        modeladmin.message_user(request, format_html("{}: {}", admin_link(scan, str(scan)), text), level)
        scans.append(scan)
    return scans


def _enqueue_scans(modeladmin: admin.ModelAdmin, request: HttpRequest, datasets) -> None:
    """The list actions: each dataset's scan as a background task (atlas.background), one message each."""
    for dataset in {d.pk: d for d in datasets}.values():
        enqueue_from_admin(modeladmin, request, "compliance.pii_scan", target=dataset, dataset_id=dataset.pk)


class ScanForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("layer", "name"))
    sample_size = forms.IntegerField(
        min_value=1, max_value=100_000, initial=settings.PII_SAMPLE_SIZE,
        help_text="Distinct non-null values sampled per column, in the warehouse.",
    )


@admin.register(PiiScan)
class PiiScanAdmin(RunRecordDisplay, ReadOnlyAdmin):
    list_display = ("__str__", "dataset", "trigger", "status_badge", "columns_scanned", "findings_count",
                    "sample_size", "duration_display", "created_at")
    list_filter = ("status", "trigger", "dataset")
    list_select_related = ("dataset", "triggered_by")
    readonly_fields = ("dataset", "trigger", "triggered_by", "status_badge", "sample_size", "columns_scanned",
                       "findings_count", "rows_in", "created_at", "started_at", "finished_at", "duration_display",
                       "error", "traceback_pre", "details")
    fields = readonly_fields
    actions = ("scan_again",)
    change_list_template = "admin/compliance/piiscan/change_list.html"

    class Media:
        css = ADMIN_CSS

    def has_scan_pii_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(SCAN_PERMISSION)

    @admin.action(description="Scan these datasets again", permissions=["scan_pii"])
    def scan_again(self, request: HttpRequest, queryset) -> None:
        _enqueue_scans(self, request, [s.dataset for s in queryset.select_related("dataset")])

    def get_urls(self):
        view = self.admin_site.admin_view(self.scan_view)
        return [path("scan/", view, name="compliance_piiscan_scan"), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra = {"can_scan": self.has_scan_pii_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def scan_view(self, request: HttpRequest) -> HttpResponse:
        """Scan one dataset now, with a chosen sample size; the scan is recorded like every other."""
        if not self.has_scan_pii_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = ScanForm(request.POST)
            if form.is_valid():
                [scan] = _rescan(self, request, [form.cleaned_data["dataset"]], form.cleaned_data["sample_size"])
                return HttpResponseRedirect(reverse("admin:compliance_piiscan_change", args=[scan.pk]))
        else:
            form = ScanForm(initial={"dataset": request.GET.get("dataset")})
        context = {
            **self.admin_site.each_context(request),
            "title": "Scan a dataset for PII",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/compliance/piiscan/scan.html", context)


@admin.register(PiiFinding)
class PiiFindingAdmin(admin.ModelAdmin):
    list_display = ("dataset", "column", "entity", "status_badge", "review", "confidence", "free_text", "share",
                    "mean_score", "name_evidence", "sample_size", "decided_by", "updated_at")
    list_filter = ("status", "entity", "free_text", "dataset")
    list_select_related = ("dataset", "decided_by")
    search_fields = ("column", "entity", "dataset__name")
    readonly_fields = ("dataset", "column", "entity", "free_text", "status_badge", "review", "confidence", "share",
                       "mean_score",
                       "name_evidence", "sample_size", "sample_values", "last_scan_link", "decided_by",
                       "decided_at", "first_seen_at", "updated_at")
    fields = (*readonly_fields, "note")
    actions = ("confirm", "dismiss", "rescan")
    change_form_template = "admin/compliance/piifinding/change_form.html"
    DECISIONS = {"confirm": PiiFinding.Status.CONFIRMED, "dismiss": PiiFinding.Status.DISMISSED, "keep": "keep"}

    def get_urls(self):
        decide = path("<path:object_id>/decide/", self.admin_site.admin_view(self.decide_view),
                      name=f"{self.opts.app_label}_{self.opts.model_name}_decide")
        return [decide, *super().get_urls()]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["can_decide"] = self.has_change_permission(request, obj)
            context["targets"] = sorted(f"{d}.{c}" for d, c in _target_names(obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    @method_decorator(require_POST)
    def decide_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The finding page's buttons: Confirm, Dismiss, Keep in clear (with a reason)."""
        finding = self.get_object(request, unquote(object_id))
        if finding is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, finding):
            raise PermissionDenied
        back = HttpResponseRedirect(reverse("admin:compliance_piifinding_change", args=[finding.pk]))
        decision = self.DECISIONS.get(request.POST.get("decision", ""))
        reason = request.POST.get("reason", "").strip()
        if decision is None:
            self.message_user(request, "Choose Confirm, Dismiss or Keep in clear.", messages.ERROR)
            return back
        try:
            if decision == "keep":
                kept = keep_finding(finding, reason=reason, actor=request.user)
                where = ", ".join(f"{p.dataset.name}.{p.column}" for p in kept) or "no Chart column yet"
                self.message_user(request, f"Confirmed as PII and kept in clear ({where}): {reason}", messages.SUCCESS)
            else:
                proposed = decide_finding(finding, status=decision, actor=request.user, note=reason)
                text = (f"Confirmed as PII; {len(proposed)} policy(ies) proposed for review." if decision ==
                        PiiFinding.Status.CONFIRMED else "Dismissed: not PII; its default protection is withdrawn.")
                self.message_user(request, text, messages.SUCCESS)
        except PolicyError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return back

    class Media:
        css = ADMIN_CSS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: PiiFinding) -> str:
        return FINDINGS.badge(obj.status, obj.get_status_display())

    def get_queryset(self, request: HttpRequest):
        # the steward's queue by risk: what waits for review first, unprotected before protected by
        # default, then by confidence; decided findings after
        waiting = Q(status=PiiFinding.Status.PROPOSED)
        protected = Exists(ColumnPolicy.objects.filter(default_for=OuterRef("pk"), by_default=True))
        rank = Case(When(waiting & ~protected, then=0), When(waiting, then=1), default=2, output_field=IntegerField())
        queryset = self.model._default_manager.get_queryset().annotate(review_rank=rank)
        return queryset.prefetch_related("default_policies__dataset").order_by(*self.get_ordering(request))

    def get_ordering(self, request: HttpRequest):
        return ("review_rank", "-confidence", "dataset__name", "column")

    @admin.display(description="review")
    def review(self, obj: PiiFinding) -> str:
        """Privacy by default: whether Chart is protected while the finding waits for a steward, and how."""
        policies = list(obj.default_policies.all())
        state = review_state(obj, policies)
        applied = [f"{p.dataset.name}.{p.column}: {p.action}" for p in policies if p.by_default]
        return f"{state} ({'; '.join(applied)})" if applied else state

    @admin.display(description="sample values")
    def sample_values(self, obj: PiiFinding) -> str:
        return format_html_join(", ", "<code>{}</code>", ((v,) for v in mask_samples(getattr(_viewer, 'user', None), obj))) or "-"

    @admin.display(description="last scan")
    def last_scan_link(self, obj: PiiFinding) -> str | None:
        return admin_link(obj.last_scan) if obj.last_scan_id else None

    def get_form(self, request, obj=None, change=False, **kwargs):
        _viewer.user = request.user
        return super().get_form(request, obj, change, **kwargs)

    def save_model(self, request, obj: PiiFinding, form, change) -> None:
        super().save_model(request, obj, form, change)
        if change and "note" in form.changed_data:
            audit.record("pii.finding.note", actor=request.user, target=obj, column=obj.column, note=obj.note)

    def _decide(self, request: HttpRequest, queryset, status: str) -> None:
        proposed = 0
        for finding in queryset.select_related("dataset"):
            proposed += len(decide_finding(finding, status=status, actor=request.user))
        self.message_user(request, f"{queryset.count()} finding(s) {status}; {proposed} policy(ies) proposed.")

    @admin.action(description="Confirm: this column carries PII (proposes policies)", permissions=["change"])
    def confirm(self, request: HttpRequest, queryset) -> None:
        self._decide(request, queryset, PiiFinding.Status.CONFIRMED)

    @admin.action(description="Dismiss: not PII", permissions=["change"])
    def dismiss(self, request: HttpRequest, queryset) -> None:
        self._decide(request, queryset, PiiFinding.Status.DISMISSED)

    def has_scan_pii_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(SCAN_PERMISSION)

    @admin.action(description="Scan their datasets again", permissions=["scan_pii"])
    def rescan(self, request: HttpRequest, queryset) -> None:
        _enqueue_scans(self, request, [f.dataset for f in queryset.select_related("dataset")])


@admin.register(ColumnPolicy)
class ColumnPolicyAdmin(ManagedFromFilesWarning, SimpleHistoryAdmin):
    list_display = ("dataset", "column", "action", "options", "entity", "proposed", "by_default", "reason",
                    "updated_by", "updated_at")
    list_filter = ("action", "proposed", "by_default", "dataset")
    list_select_related = ("dataset", "updated_by")
    search_fields = ("column", "dataset__name", "reason")
    fields = ("dataset", "column", "action", "options", "reason", "entity", "proposed", "by_default", "default_for",
              "updated_by", "created_at", "updated_at")
    readonly_fields = ("proposed", "by_default", "default_for", "updated_by", "created_at", "updated_at")

    def save_model(self, request, obj: ColumnPolicy, form, change) -> None:
        before = None
        if change and obj.pk:
            old = ColumnPolicy.objects.get(pk=obj.pk)
            before = {"action": old.action, "options": old.options, "reason": old.reason}
        obj.updated_by, obj.proposed = request.user, False
        obj.by_default, obj.default_for = False, None  # a steward set it: no longer a default awaiting review
        super().save_model(request, obj, form, change)
        record_policy_change(obj, actor=request.user, before=before)

    def delete_model(self, request, obj: ColumnPolicy) -> None:
        record_policy_change(obj, actor=request.user, before=None, deleted=True)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            record_policy_change(obj, actor=request.user, before=None, deleted=True)
        super().delete_queryset(request, queryset)

