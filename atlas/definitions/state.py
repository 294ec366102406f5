"""Definitions as one comparable state: kind -> natural key -> field values.

Both sides of a plan are read into this form — the database (:func:`from_database`) and a
project directory (``atlas.definitions.project``) — with every field present (defaults filled
in), references by natural key and values as JSON has them, so that comparing them is
comparing dicts.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from .specs import Kind, default_of, kinds

Key = tuple[str, ...]
State = dict[str, dict[Key, dict[str, Any]]]


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def key_of(kind: Kind, obj: models.Model, parent_key: Key = ()) -> Key:
    return (*parent_key, *(str(getattr(obj, f)) for f in kind.key))


def parent_key(kind: Kind, obj: models.Model, keys: dict[str, dict[int, Key]]) -> Key:
    if kind.parent is None:
        return ()
    fk, parent_kind = kind.parent
    return keys[parent_kind][getattr(obj, f"{fk}_id")]


def fields_of(kind: Kind, obj: models.Model, keys: dict[str, dict[int, Key]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in kind.fields():
        if kind.parent and f.name == kind.parent[0] or f.name in kind.key:
            continue
        if f.name in kind.refs:
            ref = getattr(obj, f"{f.name}_id")
            out[f.name] = None if ref is None else "/".join(keys[kind.refs[f.name]][ref])
        else:
            out[f.name] = jsonable(getattr(obj, f.attname))
    return out


def from_database() -> State:
    """Every definition the database holds."""
    state: State = {}
    keys: dict[str, dict[int, Key]] = {}
    for kind in kinds():
        state[kind.name], keys[kind.name] = {}, {}
        for obj in kind.objects().order_by("pk"):
            try:
                key = key_of(kind, obj, parent_key(kind, obj, keys))
            except KeyError:
                continue  # its parent is not a definition
            keys[kind.name][obj.pk] = key
            values = fields_of(kind, obj, keys)
            state[kind.name][key] = values if kind.to_project is None else kind.to_project(values)
    return state


def defaults(kind: Kind) -> dict[str, Any]:
    """Each written field's value when a project file leaves it out."""
    out = {}
    for f in kind.fields():
        if kind.parent and f.name == kind.parent[0] or f.name in kind.key:
            continue
        out[f.name] = jsonable(default_of(f))
    return out
