"""Subject keys: declared, proposed (from PII findings and lineage), confirmed, indexed; how to match them.

A key's *match expression* is the SQL a search compares identifiers with:
``lower(trim(CAST(col AS text)))`` whatever the column's type or storage. On
PostgreSQL a confirmed key gets an index on exactly that expression (on a
partitioned Explore table the index on the parent covers every partition),
so finding one subject in a large table is an index lookup. Whether an engine
gets such indexes is a capability (``wh.features.expression_indexes``); the
statement is the warehouse's (``wh.ops.create_expression_index``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from atlas import audit
from atlas.warehouse import Warehouse, WarehouseError, get_warehouse
from atlas.warehouse.base import LAYER_SCHEMAS
from pipelines import memo
from pipelines.models import Dataset

from .models import SubjectKey, validate_kind

logger = logging.getLogger(__name__)

Storage, Status, Origin = SubjectKey.Storage, SubjectKey.Status, SubjectKey.Origin
KIND_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Kinds compared without regard to case (e-mail addresses are, in practice).
CASE_INSENSITIVE_KINDS = frozenset({"email"})
# Policies after which a column's values no longer tell subjects apart.
ANONYMISING = ("anonymise_text", "mask", "redact", "generalise", "drop")
# Presidio entity -> identifier kind, for keys proposed from confirmed findings.
ENTITY_KINDS = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone"}
PERSONAL_KINDS = frozenset(ENTITY_KINDS.values())


class SubjectKeyError(ValueError):
    """A subject key that cannot be declared or used as asked; the message says why."""


def normalise(kind: str, value: object) -> str:
    """The form identifiers are compared (and hashed) in: trimmed, lower case for e-mails."""
    text = str(value).strip(" ")
    return text.lower() if kind in CASE_INSENSITIVE_KINDS else text


def text_match_sql(wh: Warehouse, kind: str, expr: str) -> str:
    """The normalised text of ``expr`` in SQL (mirrors :func:`normalise`)."""
    inner = f"trim(CAST({expr} AS text))"
    return f"lower({inner})" if kind in CASE_INSENSITIVE_KINDS else inner


def match_sql(quoted_column: str) -> str:
    """How every search compares a key column: its text, trimmed, lower case.

    One expression for every kind, type and storage (ids and hex hashes have no
    case to lose), so the index a confirmed key gets on PostgreSQL serves the
    erasure's search and the verification scan alike.
    """
    return f"lower(trim(CAST({quoted_column} AS text)))"


@dataclass(frozen=True)
class KeyTarget:
    """One confirmed key as a search sees it: where, what kind, how stored, how to match."""

    key_id: int
    dataset_id: int
    dataset: str
    layer: str
    table: str
    column: str
    kind: str
    storage: str
    data_type: str
    identifies: bool = True  # its values tell subjects apart (see ``SubjectKey.identifies``)

    def expr(self, wh: Warehouse) -> str:
        return match_sql(wh.quote(self.column))

    def params(self, values: Iterable[str]) -> list[str]:
        """The identifier values as the match expression compares them."""
        return sorted({str(v).lower() for v in values})


def warehouse_columns(wh: Warehouse | None = None) -> dict[tuple[str, str], dict[str, str]]:
    """Every table of the three layers with its columns and types, in one catalogue query."""
    return (wh or get_warehouse()).catalogue(LAYER_SCHEMAS)


def targets(*, confirmed_only: bool = True, catalogue: dict | None = None) -> list[KeyTarget]:
    """Every (confirmed) key whose table and column exist in the warehouse, with its type."""
    qs = SubjectKey.objects.select_related("dataset", "derived_from")
    if confirmed_only:
        qs = qs.filter(status=Status.CONFIRMED)
    catalogue = warehouse_columns() if catalogue is None else catalogue
    never = never_keys()
    keys = list(qs)
    subject_tables = identity_tables(keys)
    out = []
    for key in keys:
        types = catalogue.get((key.dataset.layer, key.dataset.table), {})
        if key.column not in types or (key.dataset_id, key.column) in never:
            continue  # gone from the table, or free text / anonymised since it was declared: never a key
        out.append(
            KeyTarget(
                key.pk, key.dataset_id, key.dataset.name, key.dataset.layer, key.dataset.table, key.column,
                key.kind, key.storage, types[key.column], key.identifies and key.dataset_id in subject_tables,
            )
        )
    return out


def identity_tables(keys: Iterable[SubjectKey]) -> set[int]:
    """Datasets that hold subjects themselves: a key of a personal kind (e-mail, phone) or from a PII finding.

    Their keys tell subjects apart (two customer ids there are two people); a table holding
    only ids (orders: customer_id, order_id) holds records of subjects, so many order ids
    are one subject's orders.
    """
    return {k.dataset_id for k in keys if k.kind in PERSONAL_KINDS or k.origin == Origin.FINDING}


def never_keys() -> dict[tuple[int, str], str]:
    """Columns that can never be subject keys, with why: free text with PII, or anonymised by their policy.

    A free-text column (a finding of PII inside text, not dismissed) holds other people's
    identifiers and placeholders; a masked, redacted, generalised or text-anonymised column
    holds values shared by many subjects. Matching either would pick other people's rows.
    """
    from compliance.models import ColumnPolicy, PiiFinding

    out: dict[tuple[int, str], str] = {}
    for ds, column in PiiFinding.objects.filter(free_text=True).exclude(
        status=PiiFinding.Status.DISMISSED
    ).values_list("dataset_id", "column"):
        out[(ds, column)] = "it is free text with PII inside (other people's identifiers and placeholders)"
    for ds, column, action in ColumnPolicy.objects.filter(action__in=ANONYMISING).values_list(
        "dataset_id", "column", "action"
    ):
        out[(ds, column)] = f"its policy anonymises it ({action}): its values are shared by many subjects"
    return out


def known_kinds() -> list[str]:
    return sorted(set(SubjectKey.objects.filter(status=Status.CONFIRMED).values_list("kind", flat=True)))


# --- declaring and confirming (audited) ------------------------------------------------
@transaction.atomic
def declare_key(
    dataset: Dataset, column: str, *, kind: str, storage: str = Storage.CLEAR, actor=None,
    confirmed: bool = True, origin: str = Origin.MANUAL, derived_from: SubjectKey | None = None, note: str = "",
) -> SubjectKey:
    """Declare (or change) a dataset column as a subject key; a steward's declaration is confirmed."""
    try:
        validate_kind(kind)
    except ValidationError as exc:
        raise SubjectKeyError(exc.messages[0]) from exc
    if storage not in Storage.values:
        raise SubjectKeyError(f"Unknown storage {storage!r}; choose one of {', '.join(Storage.values)}.")
    columns = set(dataset.columns.values_list("name", flat=True))
    if columns and column not in columns:
        raise SubjectKeyError(f"{dataset.name} has no column {column!r} (columns: {', '.join(sorted(columns))}).")
    why = never_keys().get((dataset.pk, column))
    if why:
        raise SubjectKeyError(f"{dataset.name}.{column} cannot be a subject key: {why}.")
    key = SubjectKey.objects.filter(dataset=dataset, column=column).first() or SubjectKey(dataset=dataset, column=column)
    before = {"kind": key.kind, "storage": key.storage, "status": key.status} if key.pk else None
    key.kind, key.storage, key.origin, key.derived_from, key.note = kind, storage, origin, derived_from, note or key.note
    if confirmed:
        key.status = Status.CONFIRMED
        key.confirmed_by = actor if getattr(actor, "is_authenticated", False) else None
        key.confirmed_at = timezone.now()
    key.save()
    audit.record(
        "dsr.key.confirmed" if confirmed else "dsr.key.proposed", actor=actor, target=key,
        dataset=dataset.name, column=column, kind=kind, storage=storage, origin=origin, before=before,
    )
    if confirmed:
        transaction.on_commit(lambda: ensure_index(key))
    return key


@transaction.atomic
def confirm_key(key: SubjectKey, *, actor=None, build_index: bool = True) -> SubjectKey:
    """A steward confirms a proposed key (audited); on PostgreSQL the key gets its index
    (once committed; ``build_index=False``: the caller builds it, e.g. as a background task)."""
    if key.status == Status.CONFIRMED:
        return key
    key.status, key.confirmed_at = Status.CONFIRMED, timezone.now()
    key.confirmed_by = actor if getattr(actor, "is_authenticated", False) else None
    key.save(update_fields=["status", "confirmed_at", "confirmed_by", "updated_at"])
    audit.record("dsr.key.confirmed", actor=actor, target=key, dataset=key.dataset.name, column=key.column,
                 kind=key.kind, storage=key.storage, origin=key.origin)
    if build_index:
        transaction.on_commit(lambda: ensure_index(key))
    return key


def _policy_storage(dataset: Dataset, column: str) -> str | None:
    """How a column holds its values under its policy: clear, hashed, or None (nothing searchable left)."""
    from compliance.models import ColumnPolicy

    policy = ColumnPolicy.objects.filter(dataset=dataset, column=column).first()
    if policy is None or policy.action == ColumnPolicy.Action.KEEP:
        return Storage.CLEAR
    if policy.action == ColumnPolicy.Action.HASH:
        return Storage.HASHED
    return None  # masked, redacted, generalised, dropped, text-anonymised: no longer identifies anyone by value


def _propose(dataset: Dataset, column: str, kind: str, origin: str, derived_from, actor) -> SubjectKey | None:
    if SubjectKey.objects.filter(dataset=dataset, column=column).exists():
        return None  # a steward's word (or an earlier proposal) is never overwritten
    if (dataset.pk, column) in never_keys():
        return None  # free text, or anonymised: never a key
    storage = _policy_storage(dataset, column)
    if storage is None:
        return None
    return declare_key(dataset, column, kind=kind, storage=storage, actor=actor, confirmed=False, origin=origin,
                       derived_from=derived_from)


def propose_keys(*, actor=None, max_rounds: int = 20) -> list[SubjectKey]:
    """Propose keys from confirmed e-mail/phone findings, then along lineage and relationships.

    * findings: a confirmed e-mail or phone finding on a column that is not free text;
    * lineage: a column derived DIRECTLY (identity or transformation, not an aggregate) from
      a key column, or the column a key column is so derived from, is a key of the same kind;
    * relationships (:mod:`privacy.relationships`: referential checks, equality joins in step
      SQL): a column of a table holding a key, that another dataset refers to, is a key (the
      subject's id: ``customers.customer_id``; or a record's id: ``orders.order_id``); the
      referring column (``orders.customer_id``) is a key of the same kind.

    A proposed key is hashed when its column's policy hashes it (the pseudonymised form),
    and never proposed on free text or a column its policy masks, redacts, generalises,
    anonymises or drops. Rounds repeat until nothing new turns up (at most ``max_rounds``).
    """
    from compliance.models import PiiFinding

    from .relationships import pairs

    created: list[SubjectKey] = []
    findings = PiiFinding.objects.filter(
        status=PiiFinding.Status.CONFIRMED, entity__in=list(ENTITY_KINDS), free_text=False
    )
    for finding in findings.select_related("dataset"):
        key = _propose(finding.dataset, finding.column, ENTITY_KINDS[finding.entity], Origin.FINDING, None, actor)
        if key:
            created.append(key)
    relations = pairs()
    for _ in range(max_rounds):
        new = _propose_from_lineage(actor) + _propose_from_relationships(relations, actor)
        if not new:
            break
        created.extend(new)
    return created


def _propose_from_lineage(actor) -> list[SubjectKey]:
    """One round along DIRECT column lineage, downstream and upstream of every key."""
    from lineage.extract import DIRECT, IDENTITY, TRANSFORMATION
    from lineage.models import LineageEdge, LineageNode

    created: list[SubjectKey] = []
    for key in list(SubjectKey.objects.select_related("dataset")):
        nodes = LineageNode.objects.filter(dataset=key.dataset, column=key.column)
        direct = LineageEdge.objects.filter(
            kind=LineageEdge.Kind.COLUMN, type=DIRECT,
            subtype__in=[IDENTITY, TRANSFORMATION],  # an aggregate of ids (a count) identifies nobody
        )
        down = direct.filter(source__in=nodes, target__dataset__isnull=False).select_related("target__dataset")
        up = direct.filter(target__in=nodes, source__dataset__isnull=False).select_related("source__dataset")
        for node in [e.target for e in down] + [e.source for e in up]:
            new = _propose(node.dataset, node.column, key.kind, Origin.LINEAGE, key, actor)
            if new:
                created.append(new)
    return created


def kind_of_column(column: str) -> str | None:
    """The identifier kind a relationship column gives its values: its name, as a kind (None if it cannot be one)."""
    kind = re.sub(r"[^a-z0-9_]+", "_", column.strip().lower()).strip("_")[:40]
    return kind if KIND_NAME_RE.match(kind) else None


def _propose_from_relationships(relations, actor) -> list[SubjectKey]:
    """One round along relationships: the referred-to column of a keyed table, then the referring ones."""
    keys = {(k.dataset_id, k.column): k for k in SubjectKey.objects.select_related("dataset", "derived_from")}
    subject_tables = identity_tables(keys.values())
    keyed: dict[int, SubjectKey] = {}
    for (ds, _), k in sorted(keys.items()):
        keyed.setdefault(ds, k)
    datasets = {d.pk: d for d in Dataset.objects.filter(pk__in={c[0] for p in relations for c in (p.child, p.parent)})}
    created: list[SubjectKey] = []
    for pair in relations:
        sides = [(pair.child, pair.parent)] if pair.directed else [(pair.child, pair.parent), (pair.parent, pair.child)]
        for child, parent in sides:
            if child in keys or child[0] not in datasets or parent[0] not in datasets:
                continue
            if parent in keys:
                origin = Origin.SUBJECT_ID if child[0] in subject_tables else Origin.RELATION
                new = _propose(datasets[child[0]], child[1], keys[parent].kind, origin, keys[parent], actor)
            elif parent[0] in keyed and child[0] not in subject_tables:
                kind = kind_of_column(parent[1])
                if kind is None:
                    continue
                if parent[0] in subject_tables:  # the subject's own table: its id tells subjects apart
                    new = _propose(datasets[parent[0]], parent[1], kind, Origin.SUBJECT_ID, None, actor)
                else:  # a table of the subject's records (orders): its id names records, not subjects
                    new = _propose(datasets[parent[0]], parent[1], kind, Origin.RELATION, keyed[parent[0]], actor)
            else:
                continue
            if new:
                created.append(new)
                keys[(new.dataset_id, new.column)] = new
    return created


# --- indexes (engines with expression indexes: PostgreSQL) -----------------------------------------------------------------
def index_name(key: SubjectKey | KeyTarget) -> str:
    table = key.dataset.table if isinstance(key, SubjectKey) else key.table
    layer = key.dataset.layer if isinstance(key, SubjectKey) else key.layer
    digest = hashlib.sha1(f"{layer}.{table}.{key.column}".encode()).hexdigest()[:8]
    return f"dsr_{table[:24]}_{Warehouse.safe_suffix(key.column)[:20]}_{digest}"


def ensure_index(key: SubjectKey, wh: Warehouse | None = None) -> str | None:
    """Index a confirmed key's match expression (where the engine has expression indexes; DuckDB scans instead)."""
    wh = wh or get_warehouse()
    if not wh.features.expression_indexes or key.status != Status.CONFIRMED:
        return None
    target = next((t for t in targets() if t.key_id == key.pk), None)
    if target is None or not wh.table_exists(target.layer, target.table):
        return None
    name = ensure_target_index(wh, target)
    if name and key.index_name != name:
        SubjectKey.objects.filter(pk=key.pk).update(index_name=name)
    return name


def ensure_target_index(wh: Warehouse, target: KeyTarget) -> str | None:
    if not wh.features.expression_indexes:
        return None
    name = index_name(target)
    try:
        wh.ops.create_expression_index(target.layer, target.table, name, target.expr(wh))
    except WarehouseError:
        logger.exception("Could not index subject key %s.%s.%s", target.layer, target.table, target.column)
        return None
    return name


def confirmed_keys(dataset_id: int) -> list[tuple[str, str, str]]:
    """The dataset's confirmed keys as (column, kind, storage), sorted; read once per :func:`pipelines.memo.scope`.

    A step's scope reads them for its versions (``privacy.versions``) and, once it published, to index
    them: one query. Outside a scope, read every time.
    """
    return memo.remembered(("subject_keys", dataset_id), lambda: sorted(
        SubjectKey.objects.filter(dataset_id=dataset_id, status=Status.CONFIRMED).order_by()
        .values_list("column", "kind", "storage")))


def ensure_indexes_for(dataset: Dataset, wh: Warehouse | None = None) -> list[str]:
    """Index every confirmed key of a dataset (after a step replaced its table, indexes are gone)."""
    wh = wh or get_warehouse()
    if not wh.features.expression_indexes or not confirmed_keys(dataset.pk):
        return []
    return [n for t in targets() if t.dataset_id == dataset.pk for n in [ensure_target_index(wh, t)] if n]
