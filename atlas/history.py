"""Every edit of a definition, versioned: who, when, what changed — and in the audit log.

A definition model (a source, a dataset, a pipeline, a step, a check) declares
``history = DefinitionHistory()``; django-simple-history then keeps a row per save and
delete in a historical table (the admin's "History", with "Revert to this version"). The
user is the one Atlas's audit log records (the request's, or an ``acting_as`` block's:
``manage.py atlas apply`` and other commands), and each version is also an audit event
naming the fields that changed, so the tamper-evident chain holds definition edits too.
A run records the version of every definition it executed (``PipelineRun.definitions``).
"""

from __future__ import annotations

from typing import Any

from simple_history.models import HistoricalRecords

from . import audit
from .audit_tracking import contextual_actor

ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}


class DefinitionHistory(HistoricalRecords):
    """``HistoricalRecords`` whose versions are audited; saves of bookkeeping fields only are no version.

    ``bookkeeping``: fields Atlas itself updates (a dataset's row count after a load), kept out
    of the versions; a save that names only those (``update_fields``) makes none.
    """

    def __init__(self, *args: Any, bookkeeping: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.bookkeeping = frozenset({*bookkeeping, "updated_at"})
        super().__init__(*args, excluded_fields=[*bookkeeping, "updated_at"], **kwargs)

    def post_save(self, instance: Any, created: bool, using: str | None = None, **kwargs: Any) -> None:
        fields = kwargs.get("update_fields")
        if not created and fields and set(fields) <= self.bookkeeping:
            return
        super().post_save(instance, created, using=using, **kwargs)

    def get_history_user(self, instance: Any) -> Any:
        user = getattr(instance, "_history_user", None) or contextual_actor()
        return user if getattr(user, "is_authenticated", False) else None

    def create_historical_record(self, instance: Any, history_type: str, using: str | None = None) -> None:
        super().create_historical_record(instance, history_type, using=using)
        version = getattr(instance, self.manager_name).order_by("-history_id").first()
        changed: list[str] = []
        if history_type == "~" and version is not None and version.prev_record is not None:
            changed = sorted(version.diff_against(version.prev_record).changed_fields)
        label = instance._meta.model_name
        audit.record(
            f"definition.{ACTIONS.get(history_type, history_type)}",
            target=instance if history_type != "-" else None,
            kind=label, object_id=instance.pk, name=str(instance)[:200],
            version=version.history_id if version else None, changed=changed,
        )


def latest_versions(objects: list[Any]) -> dict[str, int]:
    """``"<model>:<pk>" -> history id`` of each object's current version (the ids a run records)."""
    out: dict[str, int] = {}
    by_model: dict[type, list[Any]] = {}
    for obj in objects:
        by_model.setdefault(type(obj), []).append(obj)
    for model, objs in by_model.items():
        history = getattr(model, "history", None)
        if history is None:
            continue
        rows = history.filter(id__in=[o.pk for o in objs]).order_by("id", "-history_id").values_list("id", "history_id")
        for pk, hid in rows:
            out.setdefault(f"{model._meta.model_name}:{pk}", hid)
    return out
