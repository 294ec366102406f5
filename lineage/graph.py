"""The lineage graph: refreshed from steps, walked with one recursive SQL query, PII carried along.

PII marks come from the ``pii_columns`` extension point (compliance reports its
findings and policies; :func:`sync_pii`), and flow along DIRECT column edges.
Writes (``refresh_step``, ``mark_pii``, ``merge_*``) keep the node and edge
tables; reads walk them with ``WITH RECURSIVE`` on Django's own database
(SQLite or PostgreSQL), so upstream or downstream at any depth is one query
however many columns the graph holds.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.db.models import OuterRef, Q, Subquery
from django.urls import reverse

from atlas import audit, extensions
from atlas.extensions import PiiColumn
from atlas.warehouse.base import LOAD_COLUMNS
from pipelines.models import Dataset, Pipeline, Source, Step, StepRun

from .extract import DIRECT, IDENTITY, INDIRECT, LineageExtractionError, QueryLineage, extract
from .models import LineageEdge, LineageNode, NodeKind, Origin

logger = logging.getLogger(__name__)

UPSTREAM, DOWNSTREAM, BOTH = "upstream", "downstream", "both"
MAX_DEPTH = 100


class LineageError(Exception):
    """A lineage request that cannot be answered; the message says why."""


def namespace() -> str:
    return settings.OPENLINEAGE_NAMESPACE


def job_name(step: Step) -> str:
    """The OpenLineage job of a step: ``pipeline.step``."""
    return f"{step.pipeline.name}.{step.name}"


# --- nodes --------------------------------------------------------------------------
def dataset_node(dataset: Dataset) -> LineageNode:
    """The node of an Atlas dataset, created on first use, its columns synced from the catalogue."""
    return _dataset_node(dataset)[0]


def _dataset_node(dataset: Dataset) -> tuple[LineageNode, dict[str, LineageNode]]:
    """The dataset's node and its column nodes by name; written only where they differ from the catalogue."""
    node, children = _node({"namespace": namespace(), "name": dataset.qualified_table, "column": ""},
                           {"kind": NodeKind.DATASET, "origin": Origin.ATLAS, "dataset_id": dataset.pk})
    return node, sync_columns(node, [(c.name, c.data_type) for c in dataset.columns.all()], existing=children)


def source_identity(source: Source) -> tuple[str, str]:
    """OpenLineage (namespace, name) of a source: a file path, a URL, or a query on a named database."""
    if source.kind == Source.Kind.URL:
        parts = urlsplit(source.location)
        return f"{parts.scheme}://{parts.netloc}", parts.path or "/"
    if source.kind == Source.Kind.SQL:
        return f"atlas-source-db://{source.database}", source.name
    if source.kind == Source.Kind.UPLOAD:
        return "file", source.upload.name if source.upload else source.name
    return "file", source.location or source.name


def source_node(source: Source, columns: Iterable[str]) -> LineageNode:
    return _source_node(source, columns)[0]


def _source_node(source: Source, columns: Iterable[str]) -> tuple[LineageNode, dict[str, LineageNode]]:
    ns, name = source_identity(source)
    node, children = _node({"namespace": ns, "name": name, "column": ""}, {"kind": NodeKind.DATASET, "origin": Origin.SOURCE})
    return node, sync_columns(node, [(c, "") for c in columns], prune=False, existing=children)


def _node(lookup: dict, wanted: dict) -> tuple[LineageNode, dict[str, LineageNode]]:
    """``update_or_create`` that writes only what differs (a run of an unchanged step writes no node).

    With the node, its column nodes by name, read in the same query: they carry its namespace and name.
    """
    family = list(LineageNode.objects.filter(namespace=lookup["namespace"], name=lookup["name"]).order_by())
    node = next((n for n in family if n.column == lookup["column"]), None)
    if node is None:
        node, _ = LineageNode.objects.update_or_create(**lookup, defaults=wanted)
    elif changed := [k for k, v in wanted.items() if getattr(node, k) != v]:
        for key in changed:
            setattr(node, key, wanted[key])
        node.save(update_fields=[*changed, "updated_at"])
    return node, {n.column: n for n in family if n.parent_id == node.pk}


def sync_columns(
    node: LineageNode, columns: list[tuple[str, str]], *, prune: bool = True, existing: dict[str, LineageNode] | None = None
) -> dict[str, LineageNode]:
    """Make ``node``'s column nodes match ``columns`` (name, type); PII flags survive.

    ``existing``: its column nodes by name, when the caller has just read them.
    """
    if existing is None:
        existing = {c.column: c for c in node.children.all()}
    wanted = {name for name, _ in columns}
    new, changed = [], []
    for pos, (name, data_type) in enumerate(columns):
        col = existing.get(name)
        if col is None:
            new.append(
                LineageNode(
                    kind=NodeKind.COLUMN, origin=node.origin, namespace=node.namespace, name=node.name,
                    column=name, parent=node, dataset_id=node.dataset_id, position=pos, data_type=data_type,
                )
            )
        elif (col.position, col.data_type, col.dataset_id) != (pos, data_type or col.data_type, node.dataset_id):
            col.position, col.data_type, col.dataset_id = pos, data_type or col.data_type, node.dataset_id
            changed.append(col)
    LineageNode.objects.bulk_create(new)
    LineageNode.objects.bulk_update(changed, ["position", "data_type", "dataset"])
    # Keep flagged columns even when the table lost them: compliance's word is not thrown away.
    gone = [c.pk for c in existing.values() if c.column not in wanted and not c.pii_entity] if prune and columns else []
    if gone:
        node.children.filter(pk__in=gone, pii_entity="").delete()
    if not gone and all(c.pk for c in new):  # nothing removed: the columns read above, as updated, and the new ones
        return {**existing, **{c.column: c for c in new}}
    return {c.column: c for c in node.children.all()}


def find_dataset_node(ref: str | Dataset | LineageNode) -> LineageNode:
    """A dataset node by Atlas dataset, its name, ``layer.table``, or ``namespace:name``."""
    if isinstance(ref, LineageNode):
        return ref
    if isinstance(ref, Dataset):
        return dataset_node(ref)
    if "\x00" in ref:
        raise LineageError("A dataset name cannot contain NUL characters.")
    dataset = Dataset.objects.filter(name=ref).first()
    if dataset is None and "." in ref:
        layer, _, table = ref.partition(".")
        dataset = Dataset.objects.filter(layer=layer, table=table).first()
    if dataset is not None:
        return dataset_node(dataset)
    ns, sep, name = ref.rpartition(":")
    qs = LineageNode.objects.filter(kind=NodeKind.DATASET)
    node = qs.filter(namespace=ns, name=name).first() if sep else qs.filter(name=ref).first()
    if node is None:
        raise LineageError(
            f"Unknown dataset {ref!r}: give an Atlas dataset name, layer.table, or namespace:name of a reported dataset."
        )
    return node


# --- PII -----------------------------------------------------------------------------
def _column_node(dataset: str | Dataset | LineageNode, column: str) -> LineageNode:
    parent = find_dataset_node(dataset)
    col = parent.children.filter(column=column).first()
    if col is None:
        known = ", ".join(parent.children.values_list("column", flat=True)) or "none known yet"
        raise LineageError(f"{parent} has no column {column!r} (columns: {known}).")
    return col


@transaction.atomic
def mark_pii(dataset: str | Dataset | LineageNode, column: str, entity: str | None, *, actor=None) -> LineageNode:
    """Flag a column by hand as holding PII of ``entity`` (None or "" clears it). Audited.

    Atlas's own datasets are marked from compliance's report (:func:`sync_pii`), which
    takes over a hand mark on a column it reports; this is for the rest (e.g. a dataset
    another system reported through OpenLineage)."""
    col = _column_node(dataset, column)
    previous, col.pii_entity, col.pii_reported = col.pii_entity, (entity or "").strip()[:100], False
    col.save(update_fields=["pii_entity", "pii_reported", "updated_at"])
    audit.record("lineage.pii_flag", actor=actor, target=col, column=str(col), entity=col.pii_entity, previous=previous)
    return col


@transaction.atomic
def set_pii_protected(dataset: str | Dataset | LineageNode, column: str, protected: bool = True, *, actor=None) -> LineageNode:
    """Record that a policy protects a column itself, so clear PII stops there. Audited."""
    col = _column_node(dataset, column)
    col.pii_protected = protected
    col.save(update_fields=["pii_protected", "updated_at"])
    audit.record("lineage.pii_protected", actor=actor, target=col, column=str(col), protected=protected)
    return col


def _tables() -> tuple[str, str]:
    q = connection.ops.quote_name
    return q(LineageNode._meta.db_table), q(LineageEdge._meta.db_table)


ENTITY_SEP = ","
# Policy actions that leave a column's values in clear: PII flows through them.
CLEAR_POLICIES = {"", "keep"}


def sync_pii(*, actor=None) -> dict[tuple[int, str], PiiColumn]:
    """Mark the columns of Atlas datasets as the ``pii_columns`` providers (compliance) report them.

    Each column's ``pii_entity`` (entities found on it, comma-separated) and
    ``pii_protected`` (a policy other than keep protects it) follow the report;
    what changed is written in one bulk update and audited per column. Returns
    the report, by (dataset id, column), for the policy of each column.
    """
    facts = extensions.pii_columns()
    wanted = {
        key: (ENTITY_SEP.join(f.entities)[:100], f.policy not in CLEAR_POLICIES) for key, f in facts.items()
    }
    dataset_ids = {key[0] for key in wanted}
    nodes = LineageNode.objects.filter(kind=NodeKind.COLUMN, dataset__isnull=False).filter(
        Q(dataset_id__in=dataset_ids) | Q(pii_reported=True)
    )
    changed = []
    fields = ("id", "dataset_id", "column", "pii_entity", "pii_protected", "pii_reported", "namespace", "name")
    for node in nodes.only(*fields):
        key = (node.dataset_id, node.column)
        if key not in wanted and not node.pii_reported:
            continue  # marked by hand and not reported: left as it is
        entity, protected = wanted.get(key, ("", False))
        if (node.pii_entity, node.pii_protected, node.pii_reported) != (entity, protected, key in wanted):
            if (node.pii_entity, node.pii_protected) != (entity, protected):
                audit.record(
                    "lineage.pii_flag", actor=actor, target=node, column=str(node), entity=entity,
                    previous=node.pii_entity, protected=protected, reported=True,
                )
            node.pii_entity, node.pii_protected, node.pii_reported = entity, protected, key in wanted
            changed.append(node)
    LineageNode.objects.bulk_update(changed, ["pii_entity", "pii_protected", "pii_reported"])
    return facts


def pii_carriers(*, clear_only: bool = True) -> dict[int, set[str]]:
    """Every column carrying PII, with its entities: flagged ones, and what derives DIRECTly from them.

    One recursive query. ``clear_only`` (the default): clear PII, which does not
    flow through an edge that masks nor into a column a policy protects, and stops
    at a flagged column a policy protects. Otherwise every column derived from PII,
    protected or not (the graph says by what).
    """
    nodes, edges = _tables()
    guard_seed = "AND NOT pii_protected" if clear_only else ""
    guard_edge = "AND NOT e.masking" if clear_only else ""
    guard_target = "AND NOT t.pii_protected" if clear_only else ""
    sql = f"""
        WITH RECURSIVE carry(node_id, entity) AS (
            SELECT id, pii_entity FROM {nodes}
            WHERE kind = %s AND pii_entity <> '' {guard_seed}
          UNION
            SELECT e.target_id, c.entity FROM carry c
            JOIN {edges} e ON e.source_id = c.node_id AND e.kind = %s AND e.type = %s {guard_edge}
            JOIN {nodes} t ON t.id = e.target_id AND t.kind = %s {guard_target}
        )
        SELECT node_id, entity FROM carry
    """
    found: dict[int, set[str]] = defaultdict(set)
    with connection.cursor() as cur:
        cur.execute(sql, [NodeKind.COLUMN, LineageEdge.Kind.COLUMN, DIRECT, NodeKind.COLUMN])
        for node_id, entity in cur.fetchall():
            found[node_id].update(e for e in entity.split(ENTITY_SEP) if e)
    return found


def pii_protection(clear: set[str], derived: set[str], fact: PiiColumn | None) -> str | None:
    """How a column's PII is protected: its policy's action, ``keep`` (in clear, with a reason),
    ``unprotected`` (clear PII and no policy), ``upstream`` (protected before it); None: no PII."""
    policy = fact.policy if fact else ""
    if policy:
        return policy
    if not derived:
        return None
    return "unprotected" if clear else "upstream"


# --- walking -------------------------------------------------------------------------
def _walk_cte(seed: str, seed_params: list, direction: str, *, columns: bool, depth: int) -> tuple[str, list]:
    """``WITH RECURSIVE walk(node_id, depth)`` from the ``seed`` rows, following the edges one way.

    Dataset level follows dataset edges. Column level follows column edges,
    and also the link between a column and its dataset node (at no cost in
    depth): upstream, a column depends on what filters its dataset's rows;
    downstream, what changes a dataset's rows changes each of its columns.
    The recursive step joins the base tables on their indexes (the recursive
    name appears once, as PostgreSQL requires; a two-row ``via`` picks the link).
    """
    if direction not in (UPSTREAM, DOWNSTREAM):
        raise LineageError(f"Direction must be {UPSTREAM!r} or {DOWNSTREAM!r}, not {direction!r}.")
    depth = max(0, min(int(depth), MAX_DEPTH))
    nodes, edges = _tables()
    fwd, back = ("target_id", "source_id") if direction == UPSTREAM else ("source_id", "target_id")
    kind = LineageEdge.Kind.COLUMN if columns else LineageEdge.Kind.DATASET
    if not columns:
        step = f"""SELECT e.{back}, w.depth + 1 FROM walk w
            JOIN {edges} e ON e.{fwd} = w.node_id AND e.kind = %s WHERE w.depth < %s"""
        params = [kind, depth]
    else:
        member_on, member_dst = (
            ("n.id = w.node_id AND n.parent_id IS NOT NULL", "n.parent_id")
            if direction == UPSTREAM
            else ("n.parent_id = w.node_id", "n.id")
        )
        step = f"""SELECT CASE WHEN v.via = 0 THEN e.{back} ELSE {member_dst} END,
                   w.depth + 1 - v.via
            FROM walk w
            JOIN (SELECT 0 AS via UNION ALL SELECT 1 AS via) v ON 1 = 1
            LEFT JOIN {edges} e ON v.via = 0 AND e.{fwd} = w.node_id AND e.kind = %s AND w.depth < %s
            LEFT JOIN {nodes} n ON v.via = 1 AND {member_on}
            WHERE (v.via = 0 AND e.id IS NOT NULL) OR (v.via = 1 AND n.id IS NOT NULL)"""
        params = [kind, depth]
    sql = f"""WITH RECURSIVE walk(node_id, depth) AS (
            {seed}
          UNION
            {step}
        )"""
    return sql, [*seed_params, *params]


def walk(start: Iterable[int], direction: str, *, columns: bool, depth: int = MAX_DEPTH) -> dict[int, int]:
    """Node ids reachable from ``start`` (node id -> fewest hops), in one recursive query."""
    start = [int(i) for i in start]
    if not start:
        return {}
    nodes, _ = _tables()
    seed = f"SELECT id, 0 FROM {nodes} WHERE id IN ({', '.join(['%s'] * len(start))})"
    cte, params = _walk_cte(seed, start, direction, columns=columns, depth=depth)
    with connection.cursor() as cur:
        cur.execute(f"{cte} SELECT node_id, MIN(depth) FROM walk GROUP BY node_id", params)
        return {int(node_id): int(d) for node_id, d in cur.fetchall()}


def _column_lineage_sql(root: LineageNode, direction: str, depth: int, select: str) -> tuple[str, list]:
    nodes, _ = _tables()
    seed = f"SELECT id, 0 FROM {nodes} WHERE id = %s OR parent_id = %s"
    cte, params = _walk_cte(seed, [root.pk, root.pk], direction, columns=True, depth=depth)
    sql = f"""{cte}
        SELECT {select} FROM {nodes} n JOIN (SELECT DISTINCT node_id FROM walk) w ON w.node_id = n.id
        WHERE n.kind = %s AND n.parent_id <> %s"""
    return sql, [*params, NodeKind.COLUMN, root.pk]


def column_lineage_ids(ref: str | Dataset | LineageNode, direction: str = UPSTREAM, depth: int = MAX_DEPTH) -> set[int]:
    """Ids of the columns upstream/downstream of ``ref``: one query, no model instances (for large graphs)."""
    sql, params = _column_lineage_sql(find_dataset_node(ref), direction, depth, "n.id")
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return {int(r[0]) for r in cur.fetchall()}


def column_lineage(ref: str | Dataset | LineageNode, direction: str = UPSTREAM, depth: int = MAX_DEPTH) -> list[LineageNode]:
    """The columns (of other datasets) that feed ``ref`` (upstream) or that it feeds (downstream): one query."""
    sql, params = _column_lineage_sql(find_dataset_node(ref), direction, depth, "n.*")
    order = f" ORDER BY n.namespace, n.name, n.position, n.{connection.ops.quote_name('column')}"
    return list(LineageNode.objects.raw(sql + order, params))


# --- refreshing from Atlas's steps ----------------------------------------------------
@dataclass
class StepLineage:
    """What :func:`refresh_step` stored, and why some of it may be missing."""

    step: Step
    inputs: list[LineageNode] = field(default_factory=list)
    output: LineageNode | None = None
    column_edges: int = 0
    warning: str = ""
    # output column -> [(input node, type, subtype)]; dataset-wide: [(input node, subtype)]
    fields: dict[str, list[tuple[LineageNode, str, str]]] = field(default_factory=dict)
    dataset: list[tuple[LineageNode, str]] = field(default_factory=list)
    masked: set[str] = field(default_factory=set)  # output columns a policy masks


def _edge(
    source: LineageNode, target: LineageNode, kind: str, step: Step, typ: str = DIRECT, sub: str = "", masking: bool = False
) -> LineageEdge:
    return LineageEdge(
        source=source, target=target, kind=kind, type=typ, subtype=sub, step=step,
        job_namespace=namespace(), job_name=job_name(step), masking=masking,
    )


def _trace(step: Step, sql: str | None, schemas: dict) -> QueryLineage:
    """Trace the SELECT as it ran; if a hook's rewrite cannot be traced, the operator's own SELECT."""
    try:
        return extract(sql or step.sql, schemas)
    except LineageExtractionError:
        if not sql or sql == step.sql:
            raise
        return extract(step.sql, schemas)


@transaction.atomic
def refresh_step(step: Step, sql: str | None = None, *, masked: Iterable[str] = ()) -> StepLineage:
    """Replace the step's edges with what its SQL (or its source, for ingest) says now.

    ``sql`` is the SELECT as it will run (a hook may have rewritten the
    step's); by default the step's own. ``masked`` names the output columns a
    policy protects (compliance's masking, hashing, redaction...): their DIRECT
    edges are marked ``masking``, and clear PII does not flow through them.
    When the inputs' columns are not known yet (never published) only the
    dataset edges are kept, with a warning.
    """
    out_node, out_cols = _dataset_node(step.output)
    result = StepLineage(step=step, output=out_node, masked=set(masked))
    new: list[LineageEdge] = []
    if step.kind == Step.Kind.INGEST:
        if step.source_id is None:
            LineageEdge.objects.filter(step=step).delete()
            return result
        names = [c.column for c in _by_position(out_cols) if c.column not in LOAD_COLUMNS]
        src, src_cols = _source_node(step.source, names)
        result.inputs = [src]
        new.append(_edge(src, out_node, LineageEdge.Kind.DATASET, step))
        for name in names:
            new.append(_edge(src_cols[name], out_cols[name], LineageEdge.Kind.COLUMN, step, DIRECT, IDENTITY))
            result.fields[name] = [(src_cols[name], DIRECT, IDENTITY)]
    else:
        from pipelines.transform import step_inputs

        inputs = step_inputs(step)
        in_nodes = {(d.layer, d.table): _dataset_node(d) for d in inputs}
        result.inputs = [n for n, _ in in_nodes.values()]
        new.extend(_edge(n, out_node, LineageEdge.Kind.DATASET, step) for n, _ in in_nodes.values())
        in_columns = {key: _by_position(children) for key, (_, children) in in_nodes.items()}
        schemas = {key: [c.column for c in children] for key, children in in_columns.items()}
        cols = {(key[0], key[1], c.column): c for key, children in in_columns.items() for c in children}
        unknown = sorted(f"{k[0]}.{k[1]}" for k, columns in schemas.items() if not columns)
        try:
            if unknown:
                raise LineageExtractionError(f"the columns of {', '.join(unknown)} are not known yet (never published)")
            traced = _trace(step, sql, schemas)
        except LineageExtractionError as exc:
            result.warning = f"Step {step.name!r}: {exc}; dataset lineage kept, columns traced once its inputs are published."
            logger.debug("%s", result.warning)
        else:
            for out_name, relations in traced.fields.items():
                target = out_cols.get(out_name)
                if target is None:
                    continue
                masking = out_name in result.masked
                for key, typ, sub in sorted(relations):
                    if key in cols:
                        new.append(_edge(cols[key], target, LineageEdge.Kind.COLUMN, step, typ, sub, masking and typ == DIRECT))
                        result.fields.setdefault(out_name, []).append((cols[key], typ, sub))
            for key, sub in sorted(traced.dataset):
                if key in cols:
                    new.append(_edge(cols[key], out_node, LineageEdge.Kind.COLUMN, step, INDIRECT, sub))
                    result.dataset.append((cols[key], sub))
    _replace_edges(step, new)
    result.column_edges = sum(1 for e in new if e.kind == LineageEdge.Kind.COLUMN)
    return result


EDGE_FIELDS = ("source_id", "target_id", "kind", "type", "subtype", "job_namespace", "job_name", "masking")


def _replace_edges(step: Step, new: list[LineageEdge]) -> None:
    """The step's edges become ``new``; when they are those already stored (a run of an unchanged step), untouched."""
    stored = list(LineageEdge.objects.filter(step=step).values_list(*EDGE_FIELDS))
    wanted = [tuple(getattr(e, f) for f in EDGE_FIELDS) for e in new]
    if len(stored) == len(set(stored)) and set(stored) == set(wanted):
        return
    LineageEdge.objects.filter(step=step).delete()
    LineageEdge.objects.bulk_create(new, ignore_conflicts=True)


def _by_position(children: dict[str, LineageNode]) -> list[LineageNode]:
    """A dataset's column nodes in their order (``LineageNode.Meta.ordering`` within one dataset)."""
    return sorted(children.values(), key=lambda c: (c.position, c.column))


def refresh_pipeline(pipeline: Pipeline) -> list[StepLineage]:
    """Refresh every step of a pipeline (after it is saved, or from the command)."""
    return [refresh_step(step) for step in pipeline.steps.select_related("output", "source", "pipeline")]


def refresh_all() -> list[StepLineage]:
    results = []
    for pipeline in Pipeline.objects.all():
        results.extend(refresh_pipeline(pipeline))
    return results


# --- the picture's data ---------------------------------------------------------------
def _last_runs(dataset_ids: Iterable[int]) -> dict[int, dict]:
    latest = StepRun.objects.filter(output=OuterRef("pk")).order_by("-id")
    rows = Dataset.objects.filter(pk__in=list(dataset_ids)).annotate(
        run_status=Subquery(latest.values("status")[:1]),
        run_finished=Subquery(latest.values("finished_at")[:1]),
        run_id=Subquery(latest.values("run_id")[:1]),
    )
    return {
        d.pk: {
            "status": d.run_status,
            "finished_at": d.run_finished.isoformat() if d.run_finished else None,
            "run_id": d.run_id,
        }
        for d in rows
        if d.run_status
    }


def graph(ref: str | Dataset | LineageNode, *, direction: str = BOTH, depth: int = 3) -> dict:
    """The lineage around one dataset, as the page and the API show it.

    Datasets reached at dataset level within ``depth`` hops, with all their
    columns; the column edges between them; ``in_lineage`` marks the columns
    that really feed (or are fed by) the root dataset's columns; ``pii`` lists
    the clear PII each column carries, ``pii_entities`` the PII it derives from
    (protected or not), ``pii_protection`` the policy that protects it, or
    ``unprotected``, or ``upstream``; ``pii_awaiting_review`` a policy applied by
    default until a steward decides. The PII marks are first synced from the
    ``pii_columns`` providers (compliance), so the graph is current.
    """
    if direction not in (UPSTREAM, DOWNSTREAM, BOTH):
        raise LineageError(f"Direction must be upstream, downstream or both, not {direction!r}.")
    root = find_dataset_node(ref)
    facts = sync_pii()
    depth = max(0, min(int(depth), MAX_DEPTH))
    directions = [UPSTREAM, DOWNSTREAM] if direction == BOTH else [direction]
    side: dict[int, tuple[str, int]] = {root.pk: ("root", 0)}
    in_lineage: set[int] = set()
    root_cols = list(root.children.values_list("pk", flat=True))
    for d in directions:
        for node_id, hops in walk([root.pk], d, columns=False, depth=depth).items():
            if node_id != root.pk:
                side.setdefault(node_id, (d, hops))
        in_lineage.update(walk([root.pk, *root_cols], d, columns=True, depth=depth * 2))
    datasets = {n.pk: n for n in LineageNode.objects.filter(pk__in=side).select_related("dataset")}
    columns = defaultdict(list)
    for col in LineageNode.objects.filter(parent__in=datasets).order_by("position", "column"):
        columns[col.parent_id].append(col)
    carriers, derived = pii_carriers(), pii_carriers(clear_only=False)
    runs = _last_runs(n.dataset_id for n in datasets.values() if n.dataset_id)
    ids = set(datasets) | {c.pk for cols in columns.values() for c in cols}
    nodes = []
    for node in sorted(datasets.values(), key=lambda n: (side[n.pk][0] != UPSTREAM, side[n.pk][1], n.name)):
        where, hops = side[node.pk]
        nodes.append(
            {
                "id": node.pk,
                "namespace": node.namespace,
                "name": node.name,
                "origin": node.origin,
                "side": where,
                "depth": -hops if where == UPSTREAM else hops,
                "dataset_id": node.dataset_id,
                "dataset": node.dataset.name if node.dataset else None,
                "url": reverse("admin:pipelines_dataset_change", args=[node.dataset_id]) if node.dataset_id else None,
                "lineage_url": reverse("admin:lineage_dataset_graph", args=[node.pk]),
                "last_run": runs.get(node.dataset_id),
                "columns": [
                    {
                        "id": c.pk,
                        "name": c.column,
                        "type": c.data_type,
                        "pii": sorted(carriers.get(c.pk, ())),
                        "pii_entities": sorted(derived.get(c.pk, ())),
                        "pii_flagged": c.pii_entity or None,
                        "pii_protected": c.pii_protected,
                        "pii_protection": pii_protection(
                            carriers.get(c.pk, set()), derived.get(c.pk, set()),
                            facts.get((c.dataset_id, c.column)),
                        ),
                        "pii_awaiting_review": bool(
                            (f := facts.get((c.dataset_id, c.column))) and f.policy and f.awaiting_review
                        ),
                        "in_lineage": c.pk in in_lineage,
                    }
                    for c in columns[node.pk]
                ],
            }
        )
    dataset_edges = LineageEdge.objects.filter(kind=LineageEdge.Kind.DATASET, source__in=datasets, target__in=datasets)
    column_edges = LineageEdge.objects.filter(kind=LineageEdge.Kind.COLUMN, source__in=ids, target__in=ids)
    merged: dict[tuple[int, int], dict] = {}
    for e in dataset_edges.order_by("id"):
        entry = merged.setdefault((e.source_id, e.target_id), {"source": e.source_id, "target": e.target_id, "jobs": []})
        job = f"{e.job_namespace}/{e.job_name}"
        if job not in entry["jobs"]:
            entry["jobs"].append(job)
    return {
        "root": {"id": root.pk, "namespace": root.namespace, "name": root.name},
        "direction": direction,
        "depth": depth,
        "nodes": nodes,
        "edges": list(merged.values()),
        "column_edges": [
            {"source": e.source_id, "target": e.target_id, "type": e.type, "subtype": e.subtype, "masking": e.masking}
            for e in column_edges.order_by("id")
        ],
    }
