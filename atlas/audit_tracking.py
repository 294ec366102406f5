"""Audit events for every change of a definition or a role, from one mechanism.

Sources, datasets, pipelines, steps, checks, schedules, users and groups are
changed from the admin, the API, commands and tasks. Rather than an audit call
in each door, Atlas listens to the models themselves (``post_save``,
``post_delete``, ``m2m_changed``) for the models in ``TRACKED`` and records
``<app>.<model>.created|updated|deleted`` with the acting user and the changed
fields, before -> after. Secrets never enter the log: fields and JSON keys named
like a password, secret, token or key are masked, passwords in URLs too, and a
user's password change is recorded as "changed", never its hash.

The actor is the request's user (``atlas.middleware.AuditActorMiddleware``), an
actor set with ``acting_as(user)`` by a service, or else "system" (commands,
tasks, beat). Changes that a service already audits with a meaningful event
(column policies, retention policies, records of processing, subject keys) are
not recorded twice: their ``Tracked`` entry lists only the actions no service
covers.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

SYSTEM = "system"
MASK = "***"
CREATED, UPDATED, DELETED = "created", "updated", "deleted"
ALL_ACTIONS = (CREATED, UPDATED, DELETED)

_request: contextvars.ContextVar[Any] = contextvars.ContextVar("atlas_audit_request", default=None)
_actor: contextvars.ContextVar[Any] = contextvars.ContextVar("atlas_audit_actor", default=None)


# --- who acts -----------------------------------------------------------------------------


@contextmanager
def request_scope(request: Any) -> Iterator[None]:
    """While a request runs, its user is the actor (read when an event is recorded)."""
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


@contextmanager
def acting_as(actor: Any) -> Iterator[None]:
    """Changes made in this block are recorded as ``actor``'s (a user, or a name like "beat")."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


_suppressed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "atlas_audit_untracked", default=False
)


def untracked(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` without per-object events: for code-defined deployment steps only.

    The role sync after ``migrate`` (and after every test-database flush) sets the
    groups' permissions from ``atlas.roles.ROLES``, i.e. from reviewed code, not
    from an operator's decision; recording each permission would only be noise.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _suppressed.set(True)
        try:
            return func(*args, **kwargs)
        finally:
            _suppressed.reset(token)

    return wrapper


def contextual_actor() -> Any:
    """The actor set by ``acting_as`` or the current request's user; None outside both."""
    explicit = _actor.get()
    if explicit is not None:
        return explicit
    request = _request.get()
    if request is None:
        return None
    user = getattr(request, "user", None)
    return user if getattr(user, "is_authenticated", False) else "anonymous"


def current_actor() -> Any:
    actor = contextual_actor()
    return SYSTEM if actor is None else actor


# --- what is tracked ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tracked:
    """One model whose changes are audited.

    ``fields``: an allowlist of what is recorded (empty: every concrete field but
    ``ignore``, the bookkeeping fields runs and beat update). ``actions``: what this
    mechanism records; the rest is audited by a service (``audited_by``).
    """

    label: str
    fields: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ("created_at", "updated_at")
    actions: tuple[str, ...] = ALL_ACTIONS
    audited_by: str = ""


TRACKED: list[Tracked] = [
    Tracked("pipelines.Source"),
    Tracked(
        "pipelines.Dataset", ignore=("created_at", "updated_at", "row_count", "last_loaded_at")
    ),
    Tracked("pipelines.Pipeline", ignore=("created_at", "updated_at", "periodic_task")),
    Tracked("pipelines.Step"),
    Tracked("quality.Check"),
    Tracked("compliance.ColumnPolicy", actions=(), audited_by="compliance.policies (pii.policy.*)"),
    Tracked(
        "retention.RetentionPolicy",
        actions=(),
        audited_by="retention.services (retention.policy_*)",
    ),
    Tracked(
        "retention.ProcessingRecord",
        actions=(DELETED,),
        audited_by="retention.records (retention.record_*)",
    ),
    Tracked("privacy.SubjectKey", actions=(DELETED,), audited_by="privacy.keys (dsr.key.*)"),
    Tracked("privacy.ErasureSetting"),
    Tracked(
        "django_celery_beat.PeriodicTask", ignore=("last_run_at", "total_run_count", "date_changed")
    ),
    Tracked("django_celery_beat.CrontabSchedule"),
    Tracked("django_celery_beat.IntervalSchedule"),
    Tracked("auth.User", fields=("username", "is_active", "is_staff", "is_superuser", "password")),
    Tracked("auth.Group", fields=("name",)),
]

# Many-to-many relations whose changes are role changes: (model label, field name).
TRACKED_M2M: list[tuple[str, str]] = [
    ("auth.User", "groups"),
    ("auth.User", "user_permissions"),
    ("auth.Group", "permissions"),
]

_SECRET_NAME = re.compile(
    r"(?:^|[_-])(?:password|passwd|pwd|secrets?|tokens?|credentials?|api_?key|private_?key|key"
    r"|authorization|cookie)"
    r"(?:$|[_-])",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):([^/@\s]*)@")
_PASSWORD_FIELD = "password"


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(str(name)))


def scrub(value: Any) -> Any:
    """A value fit for the log: secret-named JSON keys masked, passwords in URLs masked."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_name(k) else scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: f"{m[1]}:{MASK}@", value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if hasattr(value, "name") and hasattr(value, "storage"):  # a FieldFile
        return value.name or ""
    return str(value)


def _fields(model: type[models.Model], spec: Tracked) -> list[models.Field]:
    concrete = [f for f in model._meta.concrete_fields if not f.primary_key]
    if spec.fields:
        return [f for f in concrete if f.name in spec.fields]
    return [f for f in concrete if f.name not in spec.ignore]


def _raw(instance: models.Model, spec: Tracked) -> dict[str, Any]:
    """The tracked fields' values as stored (a foreign key is its id), for comparing."""
    values: dict[str, Any] = {}
    for f in _fields(type(instance), spec):
        value = getattr(instance, f.attname)
        with contextlib.suppress(ValidationError, TypeError, ValueError):
            value = f.to_python(value)  # "5" assigned to an integer field compares equal to 5
        values[f.name] = value
    return values


def _shown(name: str, value: Any, spec: Tracked) -> Any:
    """How a value appears in the log: a user's password only as set/unusable, secrets masked."""
    if spec.label == "auth.User" and name == _PASSWORD_FIELD:
        return "set" if value and not str(value).startswith("!") else "unusable"
    if is_secret_name(name):
        return MASK if value else ""
    return scrub(value)


def snapshot(instance: models.Model, spec: Tracked) -> dict[str, Any]:
    """The tracked fields of ``instance`` as the log shows them (masked)."""
    return {name: _shown(name, value, spec) for name, value in _raw(instance, spec).items()}


def diff(before: dict[str, Any], after: dict[str, Any], spec: Tracked) -> dict[str, Any]:
    """Changed fields as {name: {"from": old, "to": new}}, compared on the stored values.

    A change that masking hides (a password, a secret option) is still recorded, as
    "changed", without either value.
    """
    changes: dict[str, Any] = {}
    for name, new in after.items():
        old = before.get(name)
        if old == new:
            continue
        shown_old, shown_new = _shown(name, old, spec), _shown(name, new, spec)
        changes[name] = (
            {"from": shown_old, "to": shown_new} if shown_old != shown_new else "changed"
        )
    return changes


# --- the signal receivers ----------------------------------------------------------------

_specs: dict[type[models.Model], Tracked] = {}
_BEFORE = "_atlas_audit_before"


def _record(action: str, instance: models.Model, **detail: Any) -> None:
    from . import audit

    if _suppressed.get():
        return
    audit.record(
        f"{instance._meta.label_lower}.{action}", actor=current_actor(), target=instance, **detail
    )


def _on_pre_save(
    sender: type[models.Model], instance: models.Model, raw: bool = False, **kwargs: Any
) -> None:
    from .audit_key import audit_key

    audit_key()  # no key: refuse the change before it is written, not after
    before = None
    if instance.pk is not None and not instance._state.adding:
        manager = sender._base_manager.using(kwargs.get("using") or "default")
        old = manager.filter(pk=instance.pk).first()
        if old is not None:
            before = _raw(old, _specs[sender])
    instance.__dict__[_BEFORE] = before


def _on_post_save(
    sender: type[models.Model], instance: models.Model, created: bool, **kwargs: Any
) -> None:
    spec = _specs[sender]
    before = instance.__dict__.pop(_BEFORE, None)
    if created or before is None:
        if CREATED in spec.actions:
            _record(CREATED, instance, fields=snapshot(instance, spec))
        return
    changes = diff(before, _raw(instance, spec), spec)
    if changes and UPDATED in spec.actions:
        _record(UPDATED, instance, changes=changes)


def _on_pre_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    from .audit_key import audit_key

    audit_key()


def _on_post_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    spec = _specs[sender]
    if DELETED in spec.actions:
        _record(DELETED, instance, fields=snapshot(instance, spec))


def _on_m2m_changed(
    sender: Any,
    instance: models.Model,
    action: str,
    reverse: bool,
    model: type[models.Model],
    pk_set: set | None,
    **kwargs: Any,
) -> None:
    field = _m2m_fields.get(sender)
    if field is None:
        return
    if action == "pre_clear":  # what is about to go: after the clear it cannot be read
        instance.__dict__[f"_atlas_audit_clear_{sender._meta.label_lower}"] = _related_names(
            instance, sender, reverse
        )
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if action == "post_clear":
        names = instance.__dict__.pop(f"_atlas_audit_clear_{sender._meta.label_lower}", [])
        verb = "cleared"
    else:
        names = sorted(_name(obj) for obj in _named(model._base_manager.filter(pk__in=pk_set or ())))
        verb = "added" if action == "post_add" else "removed"
    if not names:
        return
    relation = field.name if not reverse else field.related_query_name()
    _record(f"{relation}_{verb}", instance, **{relation: names})


def _named(objs: models.QuerySet) -> models.QuerySet:
    """``objs`` with what :func:`_name` reads of them in the same query: a permission's name is its
    content type's app label and its codename (one query for a role's hundreds of permissions, not one each)."""
    return objs.select_related("content_type") if objs.model._meta.label == "auth.Permission" else objs


def _name(obj: models.Model) -> str:
    if obj._meta.label == "auth.Permission":
        return f"{obj.content_type.app_label}.{obj.codename}"
    return str(obj)


def _related_names(instance: models.Model, through: Any, reverse: bool) -> list[str]:
    field = _m2m_fields[through]
    if not reverse:
        objs = getattr(instance, field.name).all()
    else:
        objs = field.model._base_manager.filter(**{field.name: instance})
    return sorted(_name(obj) for obj in _named(objs))


_m2m_fields: dict[Any, models.ManyToManyField] = {}


def connect() -> None:
    """Connect the receivers for every tracked model (``AtlasConfig.ready``); idempotent."""
    for spec in TRACKED:
        try:
            model = apps.get_model(spec.label)
        except LookupError:  # the app is not installed here
            continue
        _specs[model] = spec
        uid = f"atlas.audit_tracking.{spec.label}"
        if CREATED in spec.actions or UPDATED in spec.actions:
            pre_save.connect(_on_pre_save, sender=model, dispatch_uid=f"{uid}.pre_save")
            post_save.connect(_on_post_save, sender=model, dispatch_uid=f"{uid}.post_save")
        if DELETED in spec.actions:  # (a delete receiver also turns off Django's fast delete)
            pre_delete.connect(_on_pre_delete, sender=model, dispatch_uid=f"{uid}.pre_delete")
            post_delete.connect(_on_post_delete, sender=model, dispatch_uid=f"{uid}.post_delete")
    for label, name in TRACKED_M2M:
        try:
            field = apps.get_model(label)._meta.get_field(name)
        except LookupError:
            continue
        through = field.remote_field.through
        _m2m_fields[through] = field
        m2m_changed.connect(
            _on_m2m_changed, sender=through, dispatch_uid=f"atlas.audit_tracking.{label}.{name}"
        )
