"""The four roles, in one place: which Django permissions each group holds.

A role is a Django group; what it may do is the set of model permissions
matched by its patterns (``app_label.codename``, shell-style wildcards).
The admin, the API (``atlas.api.permissions``) and commands all check these
same permissions, so granting a role grants the same thing at every door.

Patterns rather than lists, because apps keep adding models: a new model in
``quality`` gets ``quality.view_<model>`` and the Analyst reads it without
anyone editing this file. The data migration ``atlas/0002_roles`` creates
the groups with the permissions that exist then; :func:`sync_roles` (run after
every ``migrate``, in ``post_migrate``'s last turn) adds those of models added later. Sync only adds
what the patterns grant and removes what a role must never hold
(``never``); permissions an administrator added by hand are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

PII_CLEAR = "compliance.view_pii_clear"
# Data subjects' identifiers (the e-mails of a request) in clear: the Steward's, granted on purpose.
IDENTIFIERS_CLEAR = "privacy.view_identifiers_clear"

# Permissions that are nobody's role: secrets (API tokens), login records, sessions, Django internals.
INTERNAL = (
    "authtoken.*", "knox.*", "axes.*", "sessions.*", "contenttypes.*", "auth.add_*", "auth.change_*", "auth.delete_*",
)


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    grants: tuple[str, ...]
    never: tuple[str, ...] = field(default=())

    def matches(self, perm: str) -> bool:
        if any(fnmatchcase(perm, pattern) for pattern in self.never):
            return False
        return any(fnmatchcase(perm, pattern) for pattern in self.grants)


ROLES: tuple[Role, ...] = (
    Role(
        "Operator",
        "Manages sources, datasets, pipelines, schedules and quality checks; triggers and cancels runs.",
        grants=(
            "pipelines.view_*",
            *(f"pipelines.{action}_{model}" for action in ("add", "change", "delete")
              for model in ("source", "dataset", "datasetcolumn", "pipeline", "step")),
            "django_celery_beat.*",
            "quality.view_*",
            *(f"quality.{action}_check" for action in ("add", "change", "delete")),
            "lineage.add_receivedevent",  # other tools (Airflow, dbt, Spark) report lineage with an Operator's token
            "lineage.view_*",
            "alerts.view_*",
            *(f"alerts.{action}_alertrule" for action in ("add", "change", "delete")),
            "atlas.view_backgroundtask",  # the heavy actions' status (ids and states, never personal data)
        ),
        never=(PII_CLEAR, IDENTIFIERS_CLEAR, *INTERNAL),
    ),
    Role(
        "Steward",
        "Decides PII findings, manages column policies and compliance work; sees PII in clear.",
        grants=("compliance.*", "privacy.*", "retention.*", PII_CLEAR, "pipelines.view_*", "quality.view_*", "lineage.view_*",
                "atlas.view_backgroundtask"),
        never=INTERNAL,
    ),
    Role(
        "Analyst",
        "Reads datasets, runs, check results and lineage; never PII in clear.",
        grants=("pipelines.view_*", "quality.view_*", "lineage.view_*", "retention.view_*"),
        never=(PII_CLEAR, IDENTIFIERS_CLEAR, "pipelines.view_source", *INTERNAL),
    ),
    Role(
        "Auditor",
        "Reads everything, including the audit log and who holds which role; changes nothing.",
        grants=("*.view_*",),
        never=(PII_CLEAR, IDENTIFIERS_CLEAR, *INTERNAL),
    ),
)


def role(name: str) -> Role:
    for r in ROLES:
        if r.name == name:
            return r
    raise KeyError(f"No role named {name!r} (roles: {', '.join(r.name for r in ROLES)}).")


def _perm_name(perm: Any) -> str:
    return f"{perm.content_type.app_label}.{perm.codename}"


def sync_roles(group_model: Any = None, permission_model: Any = None, *, using: str = "default") -> dict[str, int]:
    """Create the role groups and give each the permissions its patterns match; idempotent.

    Takes the models as arguments so the data migration can pass its
    historical ones. Returns how many permissions each group gained.
    """
    if group_model is None or permission_model is None:
        from django.contrib.auth.models import Group, Permission

        group_model, permission_model = Group, Permission
    perms = list(permission_model.objects.using(using).select_related("content_type"))
    gained: dict[str, int] = {}
    for spec in ROLES:
        group, _ = group_model.objects.using(using).get_or_create(name=spec.name)
        held = {p.pk for p in group.permissions.all()}
        wanted = [p for p in perms if spec.matches(_perm_name(p))]
        forbidden = [p for p in perms if p.pk in held and any(fnmatchcase(_perm_name(p), n) for n in spec.never)]
        add = [p for p in wanted if p.pk not in held]
        if add:
            group.permissions.add(*add)
        if forbidden:
            group.permissions.remove(*forbidden)
        gained[spec.name] = len(add)
    return gained


def sync_roles_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """``post_migrate`` receiver: permissions of models added since join their roles.

    Django sends ``post_migrate`` once for every installed app with models, in turn, and each
    app's permissions are created in its own turn (``django.contrib.auth``'s receiver, connected
    before this one). So the roles are synced once, in the last app's turn, when every permission
    exists: the same result as a sync in every turn, which ran 17 times a ``migrate`` (and a
    test database ``flush``: about a quarter of a second each, on every transactional test).
    """
    if not _last_turn(sender):
        return
    apps_ = kwargs.get("apps")
    if apps_ is None:
        sync_roles(using=using)
        return
    try:
        group_model, permission_model = apps_.get_model("auth", "Group"), apps_.get_model("auth", "Permission")
    except LookupError:  # auth not migrated in this (partial) migrate
        return
    sync_roles(group_model, permission_model, using=using)


def _last_turn(sender: Any) -> bool:
    """Whether ``sender`` is the last app ``post_migrate`` is sent for (Django's ``emit_post_migrate_signal`` order).

    Read from the app registry when the signal comes, so a registry narrowed to a test's
    ``available_apps`` gives its own last app.
    """
    from django.apps import apps

    with_models = [config.label for config in apps.get_app_configs() if config.models_module is not None]
    label = getattr(sender, "label", None)  # a sender that is no app: sent by hand, synced
    return label is None or not with_models or label == with_models[-1]
