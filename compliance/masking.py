"""Who may see PII in clear, and masking for everyone else.

Every place that shows warehouse values (admin previews, quarantine, findings'
samples, the API) passes its rows through :func:`mask_rows`: users without
``compliance.view_pii_clear`` get a placeholder instead of each value of a
PII column; users with it get the values, and the audit log records the view.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from atlas import audit
from pipelines.models import Dataset, DatasetColumn, RunStatus, Step, StepRun

from .models import ColumnPolicy, PiiFinding

PERMISSION = "compliance.view_pii_clear"
# Quarantined raw records hold whole source lines: PII whenever the dataset has any.
RAW_RECORD_COLUMNS = ("_raw_record", "_raw_bytes")  # the text and the exact bytes of a line


def can_view_clear(user) -> bool:
    return bool(user is not None and getattr(user, "is_active", False) and user.has_perm(PERMISSION))


def masked(entity: str) -> str:
    return f"[{entity} hidden]"


# What the last run of the step writing a table applied: these leave no PII in clear.
PROTECTIVE_ACTIONS = {"hash", "mask", "redact", "generalise", "drop"}


def pii_columns(dataset: Dataset, _seen: frozenset[int] = frozenset()) -> dict[str, str]:
    """Columns of ``dataset`` whose values are PII in clear, with an entity for the placeholder.

    Proposed findings count (not yet decided is not yet safe); dismissed do not.
    Chart columns count when their policy leaves the value readable (keep,
    in-text anonymisation). A table a refine or aggregate step writes also
    inherits the PII of the columns it reads (through the step's SQL), unless
    the step's last successful run protected the column (hash, mask, redact,
    generalise, drop): before a steward decides, Chart holds clear values.

    Inside a request's scope (:func:`request_scope`) the answer comes from one
    :class:`PiiIndex` read for every dataset at once: a page listing a hundred
    datasets or results costs the same few queries as one.
    """
    scope = _scope.get()
    if scope is not None:
        return scope.pii_index().columns(dataset)
    return _pii_columns(dataset, _seen, _OneByOne())


class _OneByOne:
    """What :func:`pii_columns` reads, one dataset at a time (outside a request's scope)."""

    def findings(self, ds: Dataset) -> list[tuple[str, str]]:
        return list(
            PiiFinding.objects.filter(dataset=ds).exclude(status=PiiFinding.Status.DISMISSED).values_list("column", "entity")
        )

    def readable_policies(self, ds: Dataset) -> list[tuple[str, str]]:
        return list(
            ColumnPolicy.objects.filter(dataset=ds, action__in=READABLE_ACTIONS).values_list("column", "entity")
        )

    def producer(self, ds: Dataset) -> tuple[Step | None, StepRun | None]:
        last = (
            StepRun.objects.filter(output=ds, status=RunStatus.SUCCEEDED, step__isnull=False)
            .exclude(kind=Step.Kind.INGEST)
            .select_related("step")
            .order_by("-finished_at", "-pk")
            .first()
        )
        step = last.step if last else Step.objects.filter(output=ds).exclude(kind=Step.Kind.INGEST).order_by("pk").first()
        return step, last

    def sources(self, step: Step) -> dict[str, set[tuple[str, str, str]]]:
        from .policies import column_sources

        return column_sources(step)

    def dataset(self, layer: str, table: str, seen: frozenset[int]) -> Dataset | None:
        return Dataset.objects.filter(layer=layer, table=table).exclude(pk__in=seen).first()


READABLE_ACTIONS = [ColumnPolicy.Action.KEEP, ColumnPolicy.Action.ANONYMISE_TEXT]


@dataclass(frozen=True)
class _Ref:
    """A dataset as :class:`PiiIndex` knows it (what :func:`_pii_columns` reads of one)."""

    pk: int
    layer: str
    table: str
    last_run: int | None = None


class PiiIndex(_OneByOne):
    """The inputs of :func:`pii_columns` for every dataset, read in a constant number of queries.

    Findings, readable policies, each table's producing step and its last successful
    run, the steps' inputs and the datasets' columns: a handful of queries whatever the
    number of datasets (the last run per table through one subquery, not one query each).
    A snapshot: built once per read-only request, where nothing it reads changes.
    """

    def __init__(self) -> None:
        from collections import defaultdict

        from django.db.models import OuterRef, Subquery

        self._findings: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for ds_id, column, entity in (
            PiiFinding.objects.exclude(status=PiiFinding.Status.DISMISSED).order_by("pk")
            .values_list("dataset_id", "column", "entity")
        ):
            self._findings[ds_id].append((column, entity))
        self._policies: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for ds_id, column, entity in (
            ColumnPolicy.objects.filter(action__in=READABLE_ACTIONS).order_by("pk")
            .values_list("dataset_id", "column", "entity")
        ):
            self._policies[ds_id].append((column, entity))
        last_run = (
            StepRun.objects.filter(output=OuterRef("pk"), status=RunStatus.SUCCEEDED, step__isnull=False)
            .exclude(kind=Step.Kind.INGEST)
            .order_by("-finished_at", "-pk")
            .values("pk")[:1]
        )
        # Plain (id, layer, table) records, not model instances: every dataset is read, whatever the page.
        datasets = [
            _Ref(pk, layer, table, last)
            for pk, layer, table, last in Dataset.objects.annotate(_last_run=Subquery(last_run))
            .values_list("pk", "layer", "table", "_last_run")
        ]
        self._by_table = {(d.layer, d.table): d for d in datasets}
        # Columns only of the datasets some step reads: what the steps' column lineage needs.
        read = Step.inputs.through.objects.values("dataset_id")
        names: dict[int, list[str]] = defaultdict(list)
        for ds_id, name in (
            DatasetColumn.objects.filter(dataset_id__in=read).order_by("dataset_id", "position")
            .values_list("dataset_id", "name")
        ):
            names[ds_id].append(name)
        self._columns = {(d.layer, d.table): names.get(d.pk) or None for d in datasets}
        runs = {
            r.pk: r
            for r in StepRun.objects.filter(pk__in=[d.last_run for d in datasets if d.last_run]).select_related("step")
        }
        self._last = {d.pk: runs.get(d.last_run) for d in datasets}
        self._steps: dict[int, Step] = {}
        for step in Step.objects.exclude(kind=Step.Kind.INGEST).order_by("pk"):
            self._steps.setdefault(step.output_id, step)
        self._inputs: dict[int, list[int]] = defaultdict(list)
        for step_id, ds_id in Step.inputs.through.objects.values_list("step_id", "dataset_id"):
            self._inputs[step_id].append(ds_id)
        self._tables = {d.pk: (d.layer, d.table) for d in datasets}
        self._memo: dict[int, dict[str, str]] = {}

    def columns(self, dataset: Dataset) -> dict[str, str]:
        if dataset.pk not in self._memo:
            self._memo[dataset.pk] = _pii_columns(dataset, frozenset(), self)
        return self._memo[dataset.pk]

    def findings(self, ds: Dataset) -> list[tuple[str, str]]:
        return self._findings.get(ds.pk, [])

    def readable_policies(self, ds: Dataset) -> list[tuple[str, str]]:
        return self._policies.get(ds.pk, [])

    def producer(self, ds: Dataset) -> tuple[Step | None, StepRun | None]:
        last = self._last.get(ds.pk)
        return (last.step if last else self._steps.get(ds.pk)), last

    def sources(self, step: Step) -> dict[str, set[tuple[str, str, str]]]:
        from .policies import column_sources

        inputs = [self._tables[i] for i in self._inputs.get(step.pk, []) if i in self._tables]
        if not inputs:  # inputs not stored yet: derive them from the SQL, as outside a scope
            return column_sources(step)
        return column_sources(step, {table: self._columns.get(table) for table in inputs})

    def dataset(self, layer: str, table: str, seen: frozenset[int]) -> Dataset | None:
        found = self._by_table.get((layer, table))
        return found if found is not None and found.pk not in seen else None


def _pii_columns(dataset: Dataset, seen: frozenset[int], read: _OneByOne) -> dict[str, str]:
    out: dict[str, str] = {}
    for column, entity in read.findings(dataset):
        out.setdefault(column, entity)
    for column, entity in read.readable_policies(dataset):
        out.setdefault(column, entity or "PII")
    out.update({c: e for c, e in _inherited_pii(dataset, seen | {dataset.pk}, read).items() if c not in out})
    return out


def inherited_pii(dataset: Dataset, seen: frozenset[int]) -> dict[str, str]:
    """Columns that carry PII from the tables the producing step reads, unprotected by its last run."""
    return _inherited_pii(dataset, seen, _OneByOne())


def _inherited_pii(dataset: Dataset, seen: frozenset[int], read: _OneByOne) -> dict[str, str]:
    step, last = read.producer(dataset)
    if step is None or not step.sql:
        return {}
    applied = (last.details or {}).get("pii_policies", {}) if last else {}
    try:
        sources = read.sources(step)
    except Exception:  # an unparsable step: trace nothing rather than break every page
        return {}
    upstream: dict[tuple[str, str], dict[str, str]] = {}
    out: dict[str, str] = {}
    for column, leaves in sources.items():
        if applied.get(column) in PROTECTIVE_ACTIONS:
            continue
        for layer, table, source_column in sorted(leaves):
            if (layer, table) not in upstream:
                source = read.dataset(layer, table, seen)
                upstream[(layer, table)] = _pii_columns(source, seen, read) if source else {}
            if source_column in upstream[(layer, table)]:
                out[column] = upstream[(layer, table)][source_column]
                break
    return out


# --- one request: PII read once, clear views audited once -------------------------------------
@dataclass
class _Scope:
    index: PiiIndex | None = None
    actor: Any = None
    views: list[tuple[Any, list[str], int]] = field(default_factory=list)

    def pii_index(self) -> PiiIndex:
        if self.index is None:
            self.index = PiiIndex()
        return self.index


_scope: ContextVar[_Scope | None] = ContextVar("atlas_pii_scope", default=None)
# At most this many views are itemised in a request's one audit event (the totals cover them all).
MAX_VIEWS_LISTED = 200


@contextmanager
def request_scope(request) -> Iterator[None]:
    """A read-only request's PII reads and audit rows, batched (contributed as a ``request_scopes`` item).

    Every :func:`pii_columns` answer comes from one :class:`PiiIndex`, and every clear
    view is recorded in one ``pii.view_clear`` event when the request ends (its
    ``columns`` and ``rows`` the totals, ``views`` each target). A request that writes
    (POST, PUT, PATCH, DELETE) reads and records as it goes: what it changes must show.
    """
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        yield
        return
    scope = _Scope()
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)
        _record_views(scope)


def _audit_view(actor, target, columns: list[str], rows: int) -> None:
    scope = _scope.get()
    if scope is None:
        audit.record("pii.view_clear", actor=actor, target=target, columns=sorted(columns), rows=rows)
        return
    scope.actor = actor
    scope.views.append((target, sorted(columns), rows))


def _record_views(scope: _Scope) -> None:
    if not scope.views:
        return
    if len(scope.views) == 1:
        target, columns, rows = scope.views[0]
        audit.record("pii.view_clear", actor=scope.actor, target=target, columns=columns, rows=rows)
        return
    targets = {(t._meta.label_lower, t.pk) for t, _c, _r in scope.views}
    audit.record(
        "pii.view_clear",
        actor=scope.actor,
        target=scope.views[0][0] if len(targets) == 1 else None,
        columns=sorted({c for _t, columns, _r in scope.views for c in columns}),
        rows=sum(r for _t, _c, r in scope.views),
        views=[
            {"target": f"{t._meta.label_lower}:{t.pk}", "repr": str(t)[:100], "columns": c, "rows": r}
            for t, c, r in scope.views[:MAX_VIEWS_LISTED]
        ],
        views_total=len(scope.views),
    )


def mask_rows(user, dataset: Dataset, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """``rows`` as ``user`` may see them: PII columns replaced unless they hold the permission."""
    pii = pii_columns(dataset)
    hide = {i: pii[c] for i, c in enumerate(columns) if c in pii}
    if pii:
        hide.update({i: "RAW RECORD" for i, c in enumerate(columns) if c in RAW_RECORD_COLUMNS})
    if not hide:
        return [list(r) for r in rows]
    if can_view_clear(user):
        if rows:
            _audit_view(user, dataset, [columns[i] for i in hide], len(rows))
        return [list(r) for r in rows]
    return [[masked(hide[i]) if i in hide and v is not None else v for i, v in enumerate(r)] for r in rows]


def mask_select_rows(
    user, sql: str, inputs: Sequence[Dataset], columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[list[Any]]:
    """Rows of an operator's SELECT over ``inputs`` (not yet any dataset: the pipeline editor's preview).

    A column is hidden when its lineage (``atlas.sql.lineage``, as :func:`inherited_pii` traces a
    saved step) reaches a PII column of an input; when the lineage cannot be traced, every column
    is hidden from a user without the permission rather than guessed.
    """
    from atlas.sql.lineage import column_lineage

    catalog = {(ds.layer, ds.table): [c.name for c in ds.columns.all()] or None for ds in inputs}
    pii = {(ds.layer, ds.table): pii_columns(ds) for ds in inputs}
    if not any(pii.values()):
        return [list(r) for r in rows]
    try:
        traced = column_lineage(sql, catalog)
        sources = {name: traced.inputs(name) for name in traced.outputs}
    except Exception:  # untraceable: assume the worst for every column
        sources = None
    hide: dict[int, str] = {}
    for i, column in enumerate(columns):
        if sources is None or column not in sources:
            hide[i] = "PII"
            continue
        for layer, table, source_column in sorted(sources[column]):
            entity = pii.get((layer, table), {}).get(source_column)
            if entity:
                hide[i] = entity
                break
    if not hide:
        return [list(r) for r in rows]
    if can_view_clear(user):
        if rows:
            for ds in inputs:
                if pii[(ds.layer, ds.table)]:
                    _audit_view(user, ds, [columns[i] for i in hide], len(rows))
        return [list(r) for r in rows]
    return [[masked(hide[i]) if i in hide and v is not None else v for i, v in enumerate(r)] for r in rows]


def mask_samples(user, finding: PiiFinding) -> list[str]:
    """A finding's sample values as ``user`` may see them."""
    samples = list(finding.samples or [])
    if not samples:
        return []
    if can_view_clear(user):
        _audit_view(user, finding, [finding.column], len(samples))
        return samples
    return [masked(finding.entity) for _ in samples]


def mask_dicts(user, dataset: Dataset, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows as mappings (API payloads, check samples) as ``user`` may see them; same rules as :func:`mask_rows`."""
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    masked_rows = mask_rows(user, dataset, columns, [[row.get(c) for c in columns] for row in rows])
    return [
        {c: v for c, v in zip(columns, values, strict=True) if c in row}
        for row, values in zip(rows, masked_rows, strict=True)
    ]


def mask_value(user, dataset: Dataset, column: str, value: Any) -> Any:
    """One value of ``dataset.column`` as ``user`` may see it (no audit row for a single clear value)."""
    if value is None or can_view_clear(user):
        return value
    entity = pii_columns(dataset).get(column)
    return masked(entity) if entity else value
