"""Events other tools send us (Airflow, dbt, Spark): validated, kept, merged into the graph.

A RunEvent's job, inputs and outputs become dataset edges; an output's
``schema`` facet gives its columns and its ``columnLineage`` facet the column
edges. Datasets named in Atlas's own namespace as ``layer.table`` are linked to
the Atlas dataset, so an external job reading ``navigate.daily_revenue`` shows
downstream of it. A later event of the same job replaces that job's edges
into the outputs it names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from django.db import IntegrityError, transaction

from pipelines.models import Dataset

from . import events, graph
from .models import LineageEdge, LineageNode, NodeKind, Origin, ReceivedEvent

# Longest names the graph stores (LineageNode / LineageEdge fields).
MAX_NAMESPACE, MAX_NAME, MAX_FIELD = 300, 500, 200
EDGE_TYPES = {"DIRECT", "INDIRECT"}


@dataclass
class _Source:
    namespace: str
    name: str
    field: str
    transformations: list[tuple[str, str, bool]]  # (type, subtype, masking)


@dataclass
class _Dataset:
    namespace: str
    name: str
    columns: list[tuple[str, str]]  # (name, type) from the schema facet
    fields: dict[str, list[_Source]] = dc_field(default_factory=dict)  # column lineage per output field
    indirect: list[_Source] = dc_field(default_factory=list)  # dataset-wide lineage


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


class _Reader:
    """Reads what the graph needs from an event, and says what it cannot store (too long, wrong shape)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def name(self, value: Any, limit: int, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.problems.append(f"{where}: a non-empty string is needed.")
            return ""
        if len(value) > limit:
            self.problems.append(f"{where}: at most {limit} characters are stored, got {len(value)}.")
        return value

    def sources(self, raw: Any, where: str, default_type: str) -> list[_Source]:
        found = []
        for i, src in enumerate(_list(raw)):
            src = _dict(src)
            at = f"{where}[{i}]"
            transformations = []
            for j, t in enumerate(_list(src.get("transformations")) or [{"type": default_type}]):
                t = _dict(t)
                typ = str(t.get("type") or default_type).upper()
                if typ not in EDGE_TYPES:
                    self.problems.append(f"{at}.transformations[{j}].type: DIRECT or INDIRECT, not {typ!r}.")
                transformations.append((typ, str(t.get("subtype") or "")[:20], bool(t.get("masking"))))
            found.append(
                _Source(
                    self.name(src.get("namespace"), MAX_NAMESPACE, f"{at}.namespace"),
                    self.name(src.get("name"), MAX_NAME, f"{at}.name"),
                    self.name(src.get("field"), MAX_FIELD, f"{at}.field"),
                    transformations,
                )
            )
        return found

    def dataset(self, raw: Any, where: str) -> _Dataset:
        raw = _dict(raw)
        facets = _dict(raw.get("facets"))
        columns = []
        for i, f in enumerate(_list(_dict(facets.get("schema")).get("fields"))):
            f = _dict(f)
            columns.append((self.name(f.get("name"), MAX_FIELD, f"{where}.facets.schema.fields[{i}].name"), str(f.get("type") or "")[:100]))
        ds = _Dataset(
            self.name(raw.get("namespace"), MAX_NAMESPACE, f"{where}.namespace"),
            self.name(raw.get("name"), MAX_NAME, f"{where}.name"),
            columns,
        )
        lineage = _dict(facets.get("columnLineage"))
        for field_name, spec in _dict(lineage.get("fields")).items():
            at = f"{where}.facets.columnLineage.fields.{field_name}"
            self.name(field_name, MAX_FIELD, at)
            ds.fields[field_name] = self.sources(_dict(spec).get("inputFields"), f"{at}.inputFields", "DIRECT")
        ds.indirect = self.sources(lineage.get("dataset"), f"{where}.facets.columnLineage.dataset", "INDIRECT")
        return ds


def read_event(payload: dict[str, Any]) -> tuple[tuple[str, str] | None, list[_Dataset], list[_Dataset], list[str]]:
    """The job, inputs and outputs of an event (a DatasetEvent's dataset as an input), and what cannot be stored."""
    reader = _Reader()
    job = None
    if "job" in payload:
        raw = _dict(payload.get("job"))
        job = (
            reader.name(raw.get("namespace"), MAX_NAMESPACE, "job.namespace"),
            reader.name(raw.get("name"), MAX_NAME, "job.name"),
        )
    inputs = [reader.dataset(d, f"inputs[{i}]") for i, d in enumerate(_list(payload.get("inputs")))]
    outputs = [reader.dataset(d, f"outputs[{i}]") for i, d in enumerate(_list(payload.get("outputs")))]
    if "dataset" in payload:
        inputs.append(reader.dataset(payload.get("dataset"), "dataset"))
    return job, inputs, outputs, reader.problems


def _dataset(ns: str, name: str) -> LineageNode:
    if ns == graph.namespace() and "." in name:
        layer, _, table = name.partition(".")
        dataset = Dataset.objects.filter(layer=layer, table=table).first()
        if dataset is not None:
            return graph.dataset_node(dataset)
    node, _ = LineageNode.objects.get_or_create(
        namespace=ns, name=name, column="", defaults={"kind": NodeKind.DATASET, "origin": Origin.EXTERNAL}
    )
    return node


def _columns(node: LineageNode, columns: list[tuple[str, str]]) -> dict[str, LineageNode]:
    if node.origin != Origin.ATLAS and columns:
        graph.sync_columns(node, columns, prune=False)
    return {c.column: c for c in node.children.all()}


def _column(ns: str, name: str, column: str, cache: dict) -> LineageNode:
    key = (ns, name)
    if key not in cache:
        cache[key] = _dataset(ns, name)
    parent = cache[key]
    node, _ = LineageNode.objects.get_or_create(
        namespace=parent.namespace, name=parent.name, column=column,
        defaults={"kind": NodeKind.COLUMN, "origin": parent.origin, "parent": parent, "dataset": parent.dataset},
    )
    return node


@transaction.atomic
def merge_event(payload: dict[str, Any]) -> int:
    """Merge one valid event's lineage into the graph; returns the edges it wrote."""
    job, inputs, outputs, problems = read_event(payload)
    if problems:
        raise events.InvalidEvent(problems)
    in_nodes = []
    for ds in inputs:
        node = _dataset(ds.namespace, ds.name)
        _columns(node, ds.columns)
        in_nodes.append(node)
    if job is None:
        return 0
    job_ns, job_name = job
    edges: list[LineageEdge] = []
    cache: dict = {}

    def edge(source: LineageNode, target: LineageNode, kind: str, typ: str = "DIRECT", sub: str = "", masking: bool = False) -> None:
        edges.append(
            LineageEdge(
                source=source, target=target, kind=kind, type=typ, subtype=sub, job_namespace=job_ns,
                job_name=job_name, masking=masking,
            )
        )

    for ds in outputs:
        out = _dataset(ds.namespace, ds.name)
        if out.origin == Origin.ATLAS and job_ns == graph.namespace():
            continue  # Atlas's own steps keep their edges themselves.
        LineageEdge.objects.filter(target__in=[out, *out.children.all()], job_namespace=job_ns, job_name=job_name).delete()
        out_cols = _columns(out, ds.columns)
        cache[(out.namespace, out.name)] = out
        for node in in_nodes:
            edge(node, out, LineageEdge.Kind.DATASET)
        for field_name, sources in ds.fields.items():
            target = out_cols.get(field_name) or _column(out.namespace, out.name, field_name, cache)
            for src in sources:
                source = _column(src.namespace, src.name, src.field, cache)
                for typ, sub, masking in src.transformations:
                    edge(source, target, LineageEdge.Kind.COLUMN, typ, sub, masking)
        for src in ds.indirect:
            source = _column(src.namespace, src.name, src.field, cache)
            for typ, sub, masking in src.transformations:
                edge(source, out, LineageEdge.Kind.COLUMN, typ, sub, masking)
    LineageEdge.objects.bulk_create(edges, ignore_conflicts=True)
    return len(edges)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def digest(payload: dict) -> str:
    """The event's identity: SHA-256 of its canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def receive(payload: Any, *, user=None) -> tuple[ReceivedEvent, bool]:
    """Validate, keep and merge one incoming event: (the record, whether it is new).

    Idempotent: an event already received (same canonical JSON) is not stored or merged
    again — a sender retrying after a lost response changes nothing.
    :class:`events.InvalidEvent` says what is wrong.
    """
    events.validate(payload)
    problems = read_event(payload)[3]
    if problems:
        raise events.InvalidEvent(problems)
    if _has_nul(payload):
        # Valid JSON, but no database text (PostgreSQL's jsonb and text) can hold it.
        raise events.InvalidEvent(["The event contains NUL characters (\\u0000), which cannot be stored; remove them."])
    key = digest(payload)
    known = ReceivedEvent.objects.filter(digest=key).first()
    if known is not None:
        return known, False
    try:
        with transaction.atomic():
            return _store(payload, key, user), True
    except IntegrityError:  # the same event, received at the same moment by another request
        return ReceivedEvent.objects.get(digest=key), False


def _store(payload: dict, key: str, user) -> ReceivedEvent:
    with transaction.atomic():
        job = payload.get("job") or {}
        record = ReceivedEvent.objects.create(
            digest=key,
            event_type=str(payload.get("eventType") or "")[:10],
            run_uuid=str((payload.get("run") or {}).get("runId") or "")[:36],
            job_namespace=str(job.get("namespace", ""))[:300],
            job_name=str(job.get("name", ""))[:500],
            event_time=str(payload.get("eventTime", ""))[:64],
            payload=payload,
            received_by=user if getattr(user, "is_authenticated", False) else None,
        )
        merge_event(payload)
    return record
