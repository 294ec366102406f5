"""The JSON Schema of a project's files, made from the contributed kinds' model fields.

``manage.py atlas schema`` writes it (``atlas/definitions/schema.json`` ships with Atlas, and
a test keeps it equal to what the models say); editors use it to check and complete the YAML
(``# yaml-language-server: $schema=...``). It checks shape and types; what only the models
know (a dataset named that exists, SQL that validates) is checked by ``plan`` and ``apply``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import models

from .specs import Kind, kinds

SHIPPED = Path(__file__).with_name("schema.json")


def field_schema(kind: Kind, f: models.Field) -> dict[str, Any]:
    out: dict[str, Any]
    if f.name in kind.refs:
        out = {"type": "string", "description": f"The name of one of the project's {kind.refs[f.name]}."}
    elif isinstance(f, models.BooleanField):
        out = {"type": "boolean"}
    elif isinstance(f, models.IntegerField):
        out = {"type": "integer"}
        if isinstance(f, models.PositiveIntegerField | models.PositiveSmallIntegerField | models.PositiveBigIntegerField):
            out["minimum"] = 0
    elif isinstance(f, models.FloatField | models.DecimalField):
        out = {"type": "number"}
    elif isinstance(f, models.JSONField):
        out = {}
    elif isinstance(f, models.CharField | models.TextField):
        out = {"type": "string"}
        if f.max_length and not f.choices:
            out["maxLength"] = f.max_length
    elif isinstance(f, models.DateTimeField | models.DateField):
        out = {"type": "string", "format": "date-time" if isinstance(f, models.DateTimeField) else "date"}
    else:
        out = {}
    if f.choices:
        out["enum"] = [value for value, _label in f.flatchoices]
    if f.null and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"].append(None)
    if f.help_text:
        out["description"] = str(f.help_text)
    return out


def entry_schema(kind: Kind) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for f in kind.fields():
        if kind.parent and f.name == kind.parent[0]:
            continue
        props[f.name] = field_schema(kind, f)
        if f.name in kind.files:
            props[f"{f.name}_file"] = {"type": "string", "description": f"A file holding the {f.name}, relative to"
                                       f" the {kind.name}' folder."}
    for child in kinds():
        if child.parent and child.parent[1] == kind.name:
            ref = {"$ref": f"#/$defs/{child.name}"}
            props[child.name] = ref if child.single else {"type": "array", "items": ref}
    return {"type": "object", "properties": props, "required": list(kind.key), "additionalProperties": False}


def build() -> dict[str, Any]:
    """One schema: ``{"<kind>": [entries]}`` for every top-level kind; each kind's entry in ``$defs``."""
    all_kinds = kinds()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://atlas.invalid/schema/project.json",
        "title": "Atlas project definitions",
        "type": "object",
        "properties": {
            k.name: {"type": "array", "items": {"$ref": f"#/$defs/{k.name}"}} for k in all_kinds if k.parent is None
        },
        "additionalProperties": False,
        "$defs": {k.name: entry_schema(k) for k in all_kinds},
    }
