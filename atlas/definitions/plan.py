"""What applying a project would change, and applying it: in one transaction, deletions only when asked.

A plan compares the project's state with the database's (both ``atlas.definitions.state``):
objects to create, objects whose fields differ (each field's old and new value), objects
to delete. ``apply`` saves through the models — ``full_clean`` first, so a definition is
refused in a file exactly as it would be in the admin — in the kinds' order (what is
referenced first), deletes in the reverse order, then lets each kind check what it changed
as a whole (a pipeline's steps must still order) or record it as the admin would (each
object carries its :class:`Change` as ``definition_change``). Any error rolls everything back.
"""

from __future__ import annotations

import difflib
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from atlas import audit

from .specs import Kind, by_name, kinds
from .state import Key, State, from_database


class ApplyError(ValueError):
    """The project cannot be applied; nothing was changed. The message names the object and why."""


@dataclass
class Change:
    kind: str
    key: Key
    action: str  # create | update | delete
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (old, new)

    @property
    def label(self) -> str:
        return f"{self.kind} {'/'.join(self.key)}"


@dataclass
class Plan:
    changes: list[Change]

    def of(self, action: str) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def text(self) -> str:
        """The plan as an operator reads it: + created, ~ changed (field by field), - deleted."""
        if not self.changes:
            return "No changes: the database holds what the project defines."
        lines = []
        mark = {"create": "+", "update": "~", "delete": "-"}
        for c in self.changes:
            lines.append(f"{mark[c.action]} {c.label}")
            for name, (old, new) in c.fields.items():
                if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
                    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=1)
                    lines.append(f"    {name}:")
                    lines += [f"      {d}" for d in list(diff)[2:]]
                elif c.action == "update":
                    lines.append(f"    {name}: {old!r} -> {new!r}")
        counts = ", ".join(f"{len(self.of(a))} to {a}" for a in ("create", "update", "delete"))
        return "\n".join([*lines, f"Plan: {counts}."])


def make_plan(desired: State, current: State | None = None, *, prune: bool = True) -> Plan:
    """What applying ``desired`` changes; ``prune=False``: nothing deleted (a project that adds to others)."""
    current = from_database() if current is None else current
    changes: list[Change] = []
    for kind in kinds():
        want, have = desired.get(kind.name, {}), current.get(kind.name, {})
        if kind.to_project is not None and kind.from_project is not None:
            # The files' form on both sides: a path written absolute and the same path written
            # relative to its data root are one definition.
            want = {key: kind.to_project(kind.from_project(values)) for key, values in want.items()}
        for key in sorted(want):
            if key not in have:
                changes.append(Change(kind.name, key, "create", {n: (None, v) for n, v in want[key].items()}))
                continue
            diff = {n: (have[key].get(n), v) for n, v in want[key].items() if have[key].get(n) != v}
            if diff:
                changes.append(Change(kind.name, key, "update", diff))
        for key in sorted(set(have) - set(want)) if prune else ():
            changes.append(Change(kind.name, key, "delete", {}))
    return Plan(changes)


def apply(desired: State, *, allow_delete: bool = False, prune: bool = True, actor=None, origin: str = "") -> Plan:
    """Make the database hold ``desired``; the plan carried out. :class:`ApplyError` changes nothing.

    ``prune=False``: create and update only, leaving what the project does not define (a project
    applied beside others', like the demo's).

    Recorded in the audit log (who, from where, how many of each change), in the same transaction.
    """
    plan = make_plan(desired, prune=prune)
    deletes = plan.of("delete")
    if deletes and not allow_delete:
        raise ApplyError(
            f"The project would delete {len(deletes)} object(s) ({', '.join(c.label for c in deletes[:5])}"
            f"{', ...' if len(deletes) > 5 else ''}); nothing was changed. Apply with --allow-delete to delete them."
        )
    kinds_by_name = by_name()
    try:
        with transaction.atomic(), ExitStack() as scopes:
            for scope in dict.fromkeys(k.apply_scope for k in kinds() if k.apply_scope is not None):
                scopes.enter_context(scope())
            touched: dict[str, list[Any]] = {}
            for change in plan.changes:
                if change.action != "delete":
                    kind = kinds_by_name[change.kind]
                    saved = _save(kind, change.key, desired[kind.name][change.key], origin)
                    saved.definition_change = change
                    touched.setdefault(kind.name, []).append(saved)
            for change in reversed(deletes):
                kind = kinds_by_name[change.kind]
                obj = _find(kind, change.key)
                obj._change_reason = f"{APPLY_REASON} {origin}".strip()[:100]
                obj.definition_change = change
                touched.setdefault(kind.name, []).append(obj)
                obj.delete()
            for kind in kinds():
                if kind.after_apply is not None and kind.name in touched:
                    kind.after_apply(touched[kind.name])
            if plan:
                audit.record("definitions.apply", actor=actor, origin=origin, **{
                    f"{action}d": [c.label for c in plan.of(action)] for action in ("create", "update", "delete")
                })
    except ApplyError:
        raise
    except ValidationError as exc:
        raise ApplyError(_messages(exc)) from None
    except Exception as exc:  # a protected reference, a constraint: named, nothing kept
        raise ApplyError(f"Nothing was changed: {exc}") from None
    return plan


APPLY_REASON = "atlas apply"


def _save(kind: Kind, key: Key, values: dict[str, Any], origin: str = "") -> Any:
    obj = _find(kind, key, missing_ok=True) or kind.model()
    if kind.parent is not None:
        fk, parent_kind = kind.parent
        setattr(obj, fk, _find(by_name()[parent_kind], kind.parent_part(key)))
    for name, value in zip(kind.key, kind.own(key), strict=True):
        setattr(obj, name, value)
    if kind.from_project is not None:
        values = kind.from_project(values)
    for name, value in values.items():
        if name in kind.refs:
            target = by_name()[kind.refs[name]]
            setattr(obj, name, None if value is None else _find(target, tuple(str(value).split("/")), label=name))
        else:
            setattr(obj, kind.field(name).attname, value)
    if kind.before_save is not None:
        kind.before_save(obj)
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise ApplyError(f"{kind.name} {'/'.join(key)}: {_messages(exc)}") from None
    obj._change_reason = f"{APPLY_REASON} {origin}".strip()[:100]  # the version says it came from files
    obj.save()
    return obj


def _find(kind: Kind, key: Key, *, missing_ok: bool = False, label: str | None = None) -> Any:
    filters: dict[str, Any] = {}
    filters.update(zip(kind.key, kind.own(key), strict=True))
    if kind.parent is not None:
        fk, parent_kind = kind.parent
        filters[fk] = _find(by_name()[parent_kind], kind.parent_part(key))
    obj = kind.model._default_manager.filter(**filters).first()
    if obj is None and not missing_ok:
        what = f"{label} names " if label else ""
        raise ApplyError(f"{what}{kind.name} {'/'.join(key)!r}, which neither the project nor the database defines.")
    return obj


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


def managed_from_files(obj: Any) -> Any:
    """The latest version of ``obj`` that an apply wrote, if it is managed from files (else None)."""
    history = getattr(obj, "history", None)
    if history is None or obj.pk is None:
        return None
    return history.filter(history_change_reason__startswith=APPLY_REASON).order_by("-history_id").first()

