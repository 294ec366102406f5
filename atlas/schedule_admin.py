"""The periodic-tasks admin with roles at the door: nobody schedules a task they could not run.

django-celery-beat's admin checks only ``django_celery_beat.*`` model
permissions, so whoever may edit schedules (the Operator) could save, enable
or "run now" any task — ``retention.apply_all`` included, a Steward-only
action. Here every write to a periodic task (add, change, enable, disable,
toggle, run, delete) and to a schedule that periodic tasks use needs the
permission that runs the task itself, read from ``ATLAS_TASK_PERMISSIONS``
(an allowlist: a task not listed there is the superuser's alone).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)


def permission_for_task(task: str) -> str | None:
    """The permission that runs ``task`` (``app_label.codename``), or None: superuser only."""
    return dict(getattr(settings, "ATLAS_TASK_PERMISSIONS", {})).get(task or "")


def may_run_task(user: Any, task: str) -> bool:
    """Whether ``user`` may run (and so schedule, enable or start) the Celery task named ``task``."""
    if user is None or not getattr(user, "is_active", False):
        return False
    if user.is_superuser:
        return True
    permission = permission_for_task(task)
    return permission is not None and user.has_perm(permission)


def refusal(task: str) -> str:
    """Why a task was refused, naming the permission it needs (never a secret: task names are code)."""
    permission = permission_for_task(task)
    if permission is None:
        return f"The task {task!r} is not one Atlas lets a role schedule: only a superuser may schedule or run it."
    return f"Scheduling or running the task {task!r} needs the permission {permission} (the one that runs it)."


def may_touch_all(user: Any, tasks: Iterable[str]) -> bool:
    return all(may_run_task(user, task) for task in tasks)


class GuardedPeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin):
    """django-celery-beat's admin, with each write checked against the task's own permission."""

    def get_form(self, request: HttpRequest, obj: PeriodicTask | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        user = request.user

        class TaskForm(form):  # type: ignore[misc, valid-type]
            def clean(self) -> dict:
                data = super().clean()
                task = data.get("task") or ""
                if task and not may_run_task(user, task):
                    raise forms.ValidationError(refusal(task), code="task_not_permitted")
                return data

        return TaskForm

    def has_change_permission(self, request: HttpRequest, obj: PeriodicTask | None = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or may_run_task(request.user, obj.task))

    def has_delete_permission(self, request: HttpRequest, obj: PeriodicTask | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or may_run_task(request.user, obj.task))

    def _permitted(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        """The selected tasks the user may run; each refused one is reported, none is touched."""
        refused = [task for task in queryset if not may_run_task(request.user, task.task)]
        for task in refused:
            self.message_user(request, f"{task.name}: {refusal(task.task)}", messages.ERROR)
        return queryset.exclude(pk__in=[task.pk for task in refused])

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        allowed = self._permitted(request, queryset)
        if allowed.exists():
            super().enable_tasks(request, allowed)

    @admin.action(description="Disable selected tasks")
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        allowed = self._permitted(request, queryset)
        if allowed.exists():
            super().disable_tasks(request, allowed)

    @admin.action(description="Toggle activity of selected tasks")
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        allowed = self._permitted(request, queryset)
        if allowed.exists():
            super().toggle_tasks(request, allowed)

    @admin.action(description="Run selected tasks")
    def run_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        allowed = self._permitted(request, queryset)
        if allowed.exists():
            super().run_tasks(request, allowed)


SCHEDULE_FIELDS: dict[type, str] = {
    IntervalSchedule: "interval",
    CrontabSchedule: "crontab",
    SolarSchedule: "solar",
    ClockedSchedule: "clocked",
}


class GuardedSchedule:
    """A schedule is changed or deleted only by who may run every periodic task that uses it.

    Otherwise an Operator could move a Steward's retention job to "never" (or
    "every second") by editing the crontab it points to.
    """

    model: type

    def _tasks_using(self, obj: Any) -> list[str]:
        field = SCHEDULE_FIELDS[self.model]
        return list(PeriodicTask.objects.filter(**{field: obj}).values_list("task", flat=True))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_change_permission(request, obj)  # type: ignore[misc]
        return allowed and (obj is None or may_touch_all(request.user, self._tasks_using(obj)))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)  # type: ignore[misc]
        return allowed and (obj is None or may_touch_all(request.user, self._tasks_using(obj)))


def _guarded_schedule_admin(base: type) -> type:
    return type(f"Guarded{base.__name__}", (GuardedSchedule, base), {})


def install(site: admin.AdminSite = admin.site) -> None:
    """Replace django-celery-beat's admin classes with the guarded ones (called from ``atlas.admin``)."""
    replacements: dict[type, type] = {PeriodicTask: GuardedPeriodicTaskAdmin}
    for model in SCHEDULE_FIELDS:
        current = site._registry.get(model)
        if current is not None and not isinstance(current, GuardedSchedule):
            replacements[model] = _guarded_schedule_admin(type(current))
    for model, admin_class in replacements.items():
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, admin_class)
