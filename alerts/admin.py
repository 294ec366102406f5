"""Admin: alert rules (with a test action), the events, and the outbox of deliveries (status, attempts, errors)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from atlas.admin_kit import (
    ADMIN_CSS,
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    RED,
    ManagedFromFilesWarning,
    Palette,
    ReadOnlyAdmin,
    ViewOnlyMixin,
)

from . import outbox, service
from .models import AlertEvent, AlertRule, Delivery

STATUS = Palette(
    {
        Delivery.Status.PENDING: BLUE,
        Delivery.Status.DELIVERED: GREEN,
        Delivery.Status.FAILED: RED,
        Delivery.Status.SUPPRESSED: ORANGE,
    },
    css=("atlas-badge-{}",),
    default=GREY,
)


@admin.register(AlertRule)
class AlertRuleAdmin(ManagedFromFilesWarning, SimpleHistoryAdmin):
    list_display = ["name", "enabled", "channel", "pipeline", "event_list", "min_severity", "rate"]
    list_filter = ["enabled", "channel", "min_severity"]
    search_fields = ["name"]
    actions = ["send_test"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "pipeline", "events", "min_severity"]}),
        ("Channel", {"fields": ["channel", "url", "auth_header_ref", "recipients"],
                     "description": "Secrets by reference: env:NAME of an environment variable, never in clear."}),
        ("Rate limit", {"fields": ["max_per_window", "window_minutes"]}),
    ]

    class Media:
        css = ADMIN_CSS

    @admin.display(description="events")
    def event_list(self, obj: AlertRule) -> str:
        return ", ".join(obj.events) if isinstance(obj.events, list) else ""

    @admin.display(description="rate limit")
    def rate(self, obj: AlertRule) -> str:
        return f"{obj.max_per_window} per {obj.window_minutes} min"

    @admin.action(description="Send a test alert with the selected rules", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset) -> None:
        for rule in queryset:
            service.send_test(rule)
        self.message_user(
            request, f"{queryset.count()} test alert(s) queued; the delivery task sends them (see Alert deliveries).",
            messages.SUCCESS,
        )


@admin.register(AlertEvent)
class AlertEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "severity", "title", "pipeline", "created_at"]
    list_filter = ["kind", "severity"]
    search_fields = ["title", "key"]
    readonly_fields = [f.name for f in AlertEvent._meta.fields]
    date_hierarchy = "created_at"


@admin.register(Delivery)
class DeliveryAdmin(ViewOnlyMixin, admin.ModelAdmin):
    """The outbox: what waits, what was sent, what was suppressed or failed and why; retry puts it back."""

    list_display = ["id", "event_title", "rule", "status_badge", "attempts", "next_attempt_at", "delivered_at",
                    "suppressed_count", "last_error"]
    list_filter = ["status", "rule", "event__kind"]
    search_fields = ["event__title", "rule__name"]
    list_select_related = ["event", "rule"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    actions = ["retry", "deliver_now"]

    class Media:
        css = ADMIN_CSS

    @admin.display(description="event", ordering="event__created_at")
    def event_title(self, obj: Delivery) -> str:
        return format_html("{}: {}", obj.event.kind, obj.event.title)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Delivery) -> str:
        return STATUS.badge(obj.status, obj.get_status_display())

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser

    @admin.action(description="Retry the selected deliveries at the next pass", permissions=["view"])
    def retry(self, request: HttpRequest, queryset) -> None:
        if not request.user.has_perm("alerts.change_alertrule"):
            self.message_user(request, "Retrying deliveries needs the permission to change alert rules.", messages.ERROR)
            return
        count = outbox.retry(queryset)
        self.message_user(request, f"{count} delivery(ies) will be sent at the next pass.", messages.SUCCESS)

    @admin.action(description="Deliver due alerts now", permissions=["view"])
    def deliver_now(self, request: HttpRequest, queryset) -> None:
        if not request.user.has_perm("alerts.change_alertrule"):
            self.message_user(request, "Delivering needs the permission to change alert rules.", messages.ERROR)
            return
        report = outbox.deliver_pending()
        level = messages.SUCCESS if not (report.retrying or report.failed) else messages.WARNING
        self.message_user(
            request,
            f"Delivered {len(report.delivered)}, suppressed {len(report.suppressed)}, will retry"
            f" {len(report.retrying)}, gave up on {len(report.failed)}.",
            level,
        )
