"""Who may see PII in clear, and masking for everyone else.

Every place that shows warehouse values (admin previews, quarantine, findings'
samples, the API) passes its rows through :func:`mask_rows`: users without
``compliance.view_pii_clear`` get a placeholder instead of each value of a
PII column; users with it get the values, and the audit log records the view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from atlas import audit
from pipelines.models import Dataset, RunStatus, Step, StepRun

from .models import ColumnPolicy, PiiFinding

PERMISSION = "compliance.view_pii_clear"
# Quarantined raw records hold whole source lines: PII whenever the dataset has any.
RAW_RECORD_COLUMNS = ("_raw_record",)


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
    """
    out: dict[str, str] = {}
    for column, entity in (
        PiiFinding.objects.filter(dataset=dataset)
        .exclude(status=PiiFinding.Status.DISMISSED)
        .values_list("column", "entity")
    ):
        out.setdefault(column, entity)
    for column, entity in ColumnPolicy.objects.filter(
        dataset=dataset, action__in=[ColumnPolicy.Action.KEEP, ColumnPolicy.Action.ANONYMISE_TEXT]
    ).values_list("column", "entity"):
        out.setdefault(column, entity or "PII")
    out.update({c: e for c, e in inherited_pii(dataset, _seen | {dataset.pk}).items() if c not in out})
    return out


def inherited_pii(dataset: Dataset, seen: frozenset[int]) -> dict[str, str]:
    """Columns that carry PII from the tables the producing step reads, unprotected by its last run."""
    last = (
        StepRun.objects.filter(output=dataset, status=RunStatus.SUCCEEDED, step__isnull=False)
        .exclude(kind=Step.Kind.INGEST)
        .select_related("step")
        .order_by("-finished_at", "-pk")
        .first()
    )
    step = last.step if last else Step.objects.filter(output=dataset).exclude(kind=Step.Kind.INGEST).first()
    if step is None or not step.sql:
        return {}
    from .policies import column_sources

    applied = (last.details or {}).get("pii_policies", {}) if last else {}
    try:
        sources = column_sources(step)
    except Exception:  # an unparsable step: trace nothing rather than break every page
        return {}
    upstream: dict[tuple[str, str], dict[str, str]] = {}
    out: dict[str, str] = {}
    for column, leaves in sources.items():
        if applied.get(column) in PROTECTIVE_ACTIONS:
            continue
        for layer, table, source_column in sorted(leaves):
            if (layer, table) not in upstream:
                source = Dataset.objects.filter(layer=layer, table=table).exclude(pk__in=seen).first()
                upstream[(layer, table)] = pii_columns(source, seen) if source else {}
            if source_column in upstream[(layer, table)]:
                out[column] = upstream[(layer, table)][source_column]
                break
    return out


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
            audit.record(
                "pii.view_clear", actor=user, target=dataset,
                columns=sorted(columns[i] for i in hide), rows=len(rows),
            )
        return [list(r) for r in rows]
    return [[masked(hide[i]) if i in hide and v is not None else v for i, v in enumerate(r)] for r in rows]


def mask_samples(user, finding: PiiFinding) -> list[str]:
    """A finding's sample values as ``user`` may see them."""
    samples = list(finding.samples or [])
    if not samples:
        return []
    if can_view_clear(user):
        audit.record("pii.view_clear", actor=user, target=finding, columns=[finding.column], rows=len(samples))
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
