"""The stewards' admin for data-subject requests: thin doors onto ``privacy.service`` and ``privacy.keys``.

Requests: add (validated identifiers, due date), actions verify / run / verify
erasure / export / reject (with a reason), the proof, what was erased, the
exports with an audited, permission-checked download. Overdue requests carry
a badge and have a filter. Subject keys: declare, confirm, propose from PII
findings and lineage. Tombstones: read only (hashes, never identifiers).
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe

from atlas.admin_kit import (
    ADMIN_CSS,
    ReadOnlyAdmin,
    ReadOnlyInline,
    admin_link,
    badge,
    enqueue_from_admin,
)

from . import keys, service
from .api.masking import error_for, identifiers_for, may_see_identifiers
from .models import (
    DataSubjectRequest,
    DsrExport,
    ErasureRecord,
    ErasureSetting,
    RequestStatus,
    RetainedReference,
    SubjectKey,
    Tombstone,
)
from .search import DsrError, parse_identifiers

STATUS_COLOURS = {
    RequestStatus.RECEIVED: "#6c757d", RequestStatus.VERIFIED: "#0d6efd", RequestStatus.IN_PROGRESS: "#fd7e14",
    RequestStatus.COMPLETED: "#198754", RequestStatus.REJECTED: "#343a40", RequestStatus.NEEDS_REVIEW: "#dc3545",
}
PROCESS = "privacy.process_datasubjectrequest"
DOWNLOAD = "privacy.download_dsrexport"


class OverdueFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "deadline"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue"), ("open", "Open, on time")]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            return queryset.overdue()
        if self.value() == "open":
            return queryset.filter(status__in=["received", "verified", "review", "in_progress"], due_at__gte=timezone.now())
        return queryset


class RequestActionForm(helpers.ActionForm):
    reason = forms.CharField(required=False, label="Reason (reject)", widget=forms.TextInput(attrs={"size": 30}))


class RequestAddForm(forms.ModelForm):
    """A new request: a field per identifier kind (the kinds of confirmed subject keys), one value a line.

    :func:`request_add_form` adds the fields of the kinds known now; the values become the
    ``{kind: [value, ...]}`` that :func:`parse_identifiers` checks, as the API's JSON does.
    """

    kinds: tuple[str, ...] = ()

    class Meta:
        model = DataSubjectRequest
        fields = ("kind", "reference", "received_at", "assignee")

    def clean(self):
        cleaned = super().clean()
        raw = {kind: [v.strip() for v in (cleaned.get(identifier_field(kind)) or "").splitlines() if v.strip()]
               for kind in self.kinds}
        raw = {kind: values for kind, values in raw.items() if values}
        if not self.kinds:
            raise forms.ValidationError("No identifier kind is known yet: declare and confirm subject keys"
                                        " first — on the Subject keys panel of a dataset page holding personal"
                                        " data (Propose keys, then Confirm), or in Privacy › Subject keys.")
        if not raw:
            raise forms.ValidationError("Give at least one identifier: an e-mail address, a phone number or"
                                        " another kind below, one a line.")
        try:
            cleaned["identifiers"] = parse_identifiers(raw, kinds=self.kinds)
        except DsrError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return cleaned


def identifier_field(kind: str) -> str:
    return f"identifiers_{kind}"


def request_add_form(kinds: list[str]) -> type[RequestAddForm]:
    fields = {
        identifier_field(kind): forms.CharField(
            required=False, label=f"{kind.replace('_', ' ').capitalize()} identifiers",
            widget=forms.Textarea(attrs={"rows": 2, "cols": 60, "spellcheck": "false"}),
            help_text=f"The requester's {kind.replace('_', ' ')} values, one a line (searched in every column"
                      f" confirmed as a {kind} subject key).")
        for kind in kinds
    }
    return type("RequestAddForm", (RequestAddForm,), {**fields, "kinds": tuple(kinds), "__module__": __name__})


class ErasureInline(ReadOnlyInline, admin.TabularInline):
    model = ErasureRecord
    fields = ("table", "method", "rows_removed", "run_link", "created_at")
    readonly_fields = fields

    @admin.display(description="run")
    def run_link(self, obj: ErasureRecord):
        return admin_link(obj.run) if obj.run_id else "-"


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(admin.ModelAdmin):
    list_display = ("__str__", "kind", "status_badge", "deadline_badge", "received_at", "due_at", "assignee", "reference")
    list_filter = (OverdueFilter, "status", "kind")
    list_select_related = ("assignee",)
    search_fields = ("reference",)
    action_form = RequestActionForm
    actions = ("verify_requests", "run_requests", "verify_erasure", "export", "approve_expansion", "reject")
    inlines = (ErasureInline,)
    readonly_fields = (
        "kind", "status_badge", "deadline_badge", "identifiers_display", "received_at", "due_at", "verified_at",
        "completed_at", "reject_reason", "error", "submitted_by", "proof_display", "exports_display", "created_at",
    )

    class Media:
        css = ADMIN_CSS

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = request_add_form(keys.known_kinds())
        return super().get_form(request, obj, change, **kwargs)

    def get_inlines(self, request, obj=None):
        return () if obj is None else self.inlines

    # Who lacks privacy.view_identifiers_clear (the Auditor) sees the masked twins of these fields.
    MASKED_TWINS = {"identifiers_display": "identifiers_masked", "error": "error_masked"}

    def _for_viewer(self, request, names) -> tuple:
        if may_see_identifiers(request.user):
            return tuple(names)
        return tuple(self.MASKED_TWINS.get(name, name) for name in names)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("kind", *[identifier_field(k) for k in keys.known_kinds()], "reference", "received_at", "assignee")
        return self._for_viewer(request, (
            "kind", "status_badge", "deadline_badge", "identifiers_display", "reference", "assignee",
            "received_at", "due_at", "verified_at", "completed_at", "reject_reason", "error", "submitted_by",
            "proof_display", "exports_display", "created_at"))

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self._for_viewer(request, self.readonly_fields)

    def save_model(self, request, obj: DataSubjectRequest, form, change) -> None:
        if change:
            if "assignee" in form.changed_data:
                service.assign(obj, form.cleaned_data["assignee"], actor=request.user)
            DataSubjectRequest.objects.filter(pk=obj.pk).update(reference=obj.reference)
            return
        new = service.submit(
            form.cleaned_data["kind"], form.cleaned_data["identifiers"], actor=request.user,
            received_at=form.cleaned_data.get("received_at"), reference=form.cleaned_data.get("reference", ""),
            assignee=form.cleaned_data.get("assignee"),
        )
        obj.pk, obj.due_at, obj.status = new.pk, new.due_at, new.status

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_process_permission(self, request) -> bool:
        return request.user.has_perm(PROCESS)

    # --- columns -------------------------------------------------------------------------
    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: DataSubjectRequest) -> str:
        return badge(obj.get_status_display(), STATUS_COLOURS.get(obj.status, "#6c757d"))

    @admin.display(description="deadline", ordering="due_at")
    def deadline_badge(self, obj: DataSubjectRequest) -> str:
        if obj.is_overdue:
            days = (timezone.now() - obj.due_at).days
            return badge(f"OVERDUE by {days} day(s)" if days else "OVERDUE", "#dc3545")
        if obj.status in ("completed", "rejected"):
            return "-"
        return badge(f"due in {(obj.due_at - timezone.now()).days} day(s)", "#198754")

    @admin.display(description="identifiers")
    def identifiers_display(self, obj: DataSubjectRequest) -> str:
        if obj.identifiers_hashed:
            counts = ", ".join(f"{k}: {len(v)} hash(es)" for k, v in obj.identifiers.items())
            return f"Erased: kept only as HMAC hashes ({counts})."
        return format_html("<code>{}</code>", json.dumps(obj.identifiers, ensure_ascii=False))

    @admin.display(description="identifiers")
    def identifiers_masked(self, obj: DataSubjectRequest) -> str:
        if obj.identifiers_hashed:
            return self.identifiers_display(obj)
        shown = identifiers_for(None, obj)
        return format_html("<code>{}</code> (values masked: needs privacy.view_identifiers_clear)",
                           json.dumps(shown, ensure_ascii=False))

    @admin.display(description="error")
    def error_masked(self, obj: DataSubjectRequest) -> str:
        return error_for(None, obj) or "-"

    @admin.display(description="proof (verification scan)")
    def proof_display(self, obj: DataSubjectRequest) -> str:
        proof = obj.proof or {}
        tables = proof.get("tables") or []
        if not tables:
            return "No verification scan yet."
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td class='dsr-found'>{}</td><td>{}</td><td>{}</td></tr>",
            ((t["table"], t.get("columns_searched", 0), t["rows_found"],
              " ".join(r["message"] for r in t.get("references", [])) or "-", t["checked_at"][:19])
             for t in tables),
        )
        verdict = (
            badge(f"zero rows found in {len(tables)} table(s)", "#198754") if not proof.get("rows_found")
            else badge(f"{proof['rows_found']} row(s) still refer to the subject", "#dc3545")
        )
        return format_html(
            '<div id="dsr-proof">{} scanned {}<table><thead><tr><th>table</th><th>columns searched</th>'
            "<th>rows found</th><th>references</th><th>when</th></tr></thead><tbody>{}</tbody></table></div>",
            verdict, proof.get("scanned_at", "")[:19], rows,
        )

    @admin.display(description="exports")
    def exports_display(self, obj: DataSubjectRequest) -> str:
        exports = list(obj.exports.all())
        if not exports:
            return "-"
        return format_html_join(
            mark_safe("<br>"), "{} — {} row(s), {} — {}",
            (
                (
                    f"Export #{e.pk}", e.rows,
                    f"expires {e.expires_at:%Y-%m-%d %H:%M}" if not e.expired else "expired",
                    format_html('<a href="{}">download</a>', reverse("admin:privacy_dsr_download", args=[obj.pk, e.pk]))
                    if not e.expired else "deleted",
                )
                for e in exports
            ),
        )

    # --- actions -------------------------------------------------------------------------------
    def _each(self, request, queryset, fn, done: str) -> None:
        for req in queryset:
            try:
                result = fn(req)
            except DsrError as exc:
                self.message_user(request, f"{req}: {exc}", messages.ERROR)
                continue
            if isinstance(result, DataSubjectRequest) and result.error:
                self.message_user(request, f"{result}: {result.error}", messages.WARNING)
            else:
                self.message_user(request, f"{req}: {done}.", messages.SUCCESS)

    @admin.action(description="Verify: the requester's identity is checked", permissions=["process"])
    def verify_requests(self, request, queryset) -> None:
        self._each(request, queryset, lambda r: service.verify(r, actor=request.user), "verified")

    def _enqueue(self, request, queryset, kind: str, refusal) -> None:
        """A heavy action per request, as a background task (atlas.background); a refusal is said at once."""
        for req in queryset:
            refused = refusal(req)
            if refused:
                self.message_user(request, refused, messages.ERROR)
                continue
            enqueue_from_admin(self, request, kind, target=req, request_id=req.pk, trigger="manual",
                               result_path=reverse("admin:privacy_datasubjectrequest_change", args=[req.pk]))

    @admin.action(description="Run: export (access) or erase and verify (erasure), in the background",
                  permissions=["process"])
    def run_requests(self, request, queryset) -> None:
        self._enqueue(request, queryset, "privacy.run_request", service.run_refusal)

    @admin.action(description="Approve the expansion under review (give the note in the field above)",
                  permissions=["process"])
    def approve_expansion(self, request, queryset) -> None:
        note = request.POST.get("reason", "")
        self._each(request, queryset, lambda r: service.approve_expansion(r, actor=request.user, note=note),
                   "expansion approved; run it again")

    @admin.action(description="Verify erasure again (independent scan, in the background)", permissions=["process"])
    def verify_erasure(self, request, queryset) -> None:
        for req in queryset:
            refused = service.verify_erasure_refusal(req)
            if refused:
                self.message_user(request, refused, messages.ERROR)
                continue
            enqueue_from_admin(self, request, "privacy.verify_erasure", target=req, request_id=req.pk,
                               result_path=reverse("admin:privacy_datasubjectrequest_change", args=[req.pk]))

    @admin.action(description="New access export", permissions=["process"])
    def export(self, request, queryset) -> None:
        self._each(request, queryset, lambda r: service.create_export(r, actor=request.user), "export created")

    @admin.action(description="Reject (give the reason in the field above)", permissions=["process"])
    def reject(self, request, queryset) -> None:
        reason = request.POST.get("reason", "")
        self._each(request, queryset, lambda r: service.reject(r, actor=request.user, reason=reason), "rejected")

    # --- download --------------------------------------------------------------------------------
    def get_urls(self):
        return [
            path("<int:pk>/exports/<int:export_id>/download/", self.admin_site.admin_view(self.download_view),
                 name="privacy_dsr_download"),
            path("<int:pk>/act/", self.admin_site.admin_view(self.act_view), name="privacy_datasubjectrequest_act"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and self.has_process_permission(request):
            # the buttons this request's state allows: Verify while received, Run once verified (or in progress)
            context["can_verify"] = obj.status == "received"
            context["can_run"] = service.run_refusal(obj) is None
        return super().render_change_form(request, context, add, change, form_url, obj)

    def act_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The request page's buttons: Verify (the requester's identity is checked) and Run (in the background)."""
        if request.method != "POST":
            return HttpResponse("POST Verify or Run.", status=405, headers={"Allow": "POST"})
        if not self.has_process_permission(request):
            raise PermissionDenied
        queryset = DataSubjectRequest.objects.filter(pk=pk)
        action = request.POST.get("action")
        if action == "verify":
            self.verify_requests(request, queryset)
        elif action == "run":
            self.run_requests(request, queryset)
        else:
            self.message_user(request, "Choose Verify or Run.", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:privacy_datasubjectrequest_change", args=[pk]))

    def download_view(self, request: HttpRequest, pk: int, export_id: int):
        if not request.user.has_perm(DOWNLOAD):
            raise PermissionDenied("Downloading access exports needs privacy.download_dsrexport (Steward).")
        export = get_object_or_404(DsrExport, pk=export_id, request_id=pk)
        try:
            file = service.download(export, actor=request.user)
        except service.ExportExpired as exc:
            return HttpResponse(str(exc), status=410, content_type="text/plain; charset=utf-8")
        return FileResponse(open(file, "rb"), as_attachment=True, filename=file.name)


@admin.register(SubjectKey)
class SubjectKeyAdmin(admin.ModelAdmin):
    list_display = ("dataset", "column", "kind", "storage", "status_badge", "origin", "derived_from", "index_name")
    list_filter = ("status", "kind", "storage", "origin", "dataset__layer")
    list_select_related = ("dataset", "derived_from__dataset")
    search_fields = ("column", "kind", "dataset__name")
    fields = ("dataset", "column", "kind", "storage", "note", "status", "origin", "derived_from", "confirmed_by",
              "confirmed_at", "index_name")
    readonly_fields = ("status", "origin", "derived_from", "confirmed_by", "confirmed_at", "index_name")
    actions = ("confirm",)
    change_list_template = "admin/privacy/subjectkey/change_list.html"

    class Media:
        css = ADMIN_CSS

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: SubjectKey) -> str:
        return badge(obj.get_status_display(), "#198754" if obj.status == "confirmed" else "#0d6efd")

    def save_model(self, request, obj: SubjectKey, form, change) -> None:
        try:
            saved = keys.declare_key(obj.dataset, obj.column, kind=obj.kind, storage=obj.storage, actor=request.user,
                                     note=obj.note)
        except keys.SubjectKeyError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        obj.pk = saved.pk

    @admin.action(description="Confirm: these columns identify data subjects", permissions=["change"])
    def confirm(self, request, queryset) -> None:
        for key in queryset.select_related("dataset"):
            keys.confirm_key(key, actor=request.user)
        self.message_user(request, f"{queryset.count()} key(s) confirmed.")

    def get_urls(self):
        return [
            path("propose/", self.admin_site.admin_view(self.propose_view), name="privacy_subjectkey_propose"),
            path("<int:pk>/confirm/", self.admin_site.admin_view(self.confirm_view), name="privacy_subjectkey_confirm_one"),
            *super().get_urls(),
        ]

    def _back(self, request: HttpRequest) -> HttpResponseRedirect:
        """Back where the button was (the dataset page's panel), else the key list; only a path of this site."""
        target = request.GET.get("next", "")
        if not (target.startswith("/") and url_has_allowed_host_and_scheme(
                target, allowed_hosts={request.get_host()}, require_https=request.is_secure())):
            target = reverse("admin:privacy_subjectkey_changelist")
        return HttpResponseRedirect(target)

    def propose_view(self, request: HttpRequest):
        if request.method != "POST" or not self.has_add_permission(request):
            raise PermissionDenied
        created = keys.propose_keys(actor=request.user)
        if created:
            where = ", ".join(sorted({f"{k.dataset.name}.{k.column}" for k in created})[:6])
            more = f" and {len(created) - 6} more" if len(created) > 6 else ""
            self.message_user(request, f"{len(created)} key(s) proposed from PII findings and lineage ({where}{more});"
                              " confirm them.")
        else:
            self.message_user(request, "No new key to propose: every confirmed e-mail or phone finding, and every"
                              " column derived from a key, is a key already (or may not be one).", messages.WARNING)
        return self._back(request)

    def confirm_view(self, request: HttpRequest, pk: int):
        """One proposed key confirmed from where the steward met it (the dataset page)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        key = get_object_or_404(SubjectKey.objects.select_related("dataset"), pk=pk)
        was = key.status
        keys.confirm_key(key, actor=request.user)
        if was == SubjectKey.Status.CONFIRMED:
            self.message_user(request, f"Already confirmed: {key.dataset.name}.{key.column} is a {key.kind} subject key.", messages.INFO)
        else:
            self.message_user(request, f"Confirmed {key.dataset.name}.{key.column} as a {key.kind} subject key:"
                              " data-subject requests now search it.")
        return self._back(request)


@admin.register(RetainedReference)
class RetainedReferenceAdmin(admin.ModelAdmin):
    """Columns that may keep referring to erased subjects, each with its recorded legal basis (audited)."""

    list_display = ("dataset", "column", "legal_basis", "decided_by", "updated_at")
    fields = ("dataset", "column", "legal_basis")

    def save_model(self, request, obj: RetainedReference, form, change) -> None:
        try:
            saved = service.retain_reference(obj.dataset, obj.column, legal_basis=obj.legal_basis, actor=request.user)
        except DsrError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        obj.pk = saved.pk


@admin.register(ErasureSetting)
class ErasureSettingAdmin(admin.ModelAdmin):
    list_display = ("dataset", "mode", "updated_at")
    list_filter = ("mode",)


@admin.register(Tombstone)
class TombstoneAdmin(ReadOnlyAdmin):
    list_display = ("kind", "short_hash", "key_id", "request", "created_at")
    list_filter = ("kind",)
    fields = ("kind", "hash", "key_id", "request", "created_at")
    readonly_fields = fields

    @admin.display(description="hash")
    def short_hash(self, obj: Tombstone) -> str:
        return obj.hash[:16] + "…"


@admin.register(DsrExport)
class DsrExportAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "request", "rows", "size_bytes", "created_at", "expires_at", "deleted_at", "downloads")
    fields = ("request", "rows", "size_bytes", "manifest", "created_by", "created_at", "expires_at", "deleted_at", "downloads")
    readonly_fields = fields
