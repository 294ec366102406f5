"""Who may see PII in clear, and masking for everyone else.

Every place that shows warehouse values (admin previews, quarantine, findings'
samples, the API) passes its rows through :func:`mask_rows`: users without
``compliance.view_pii_clear`` get a placeholder instead of each value of a
PII column; users with it get the values, and the audit log records the view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atlas import audit
from pipelines.models import Dataset

from .models import ColumnPolicy, PiiFinding

PERMISSION = "compliance.view_pii_clear"
# Quarantined raw records hold whole source lines: PII whenever the dataset has any.
RAW_RECORD_COLUMNS = ("_raw_record",)


def can_view_clear(user) -> bool:
    return bool(user is not None and getattr(user, "is_active", False) and user.has_perm(PERMISSION))


def masked(entity: str) -> str:
    return f"[{entity} hidden]"


def pii_columns(dataset: Dataset) -> dict[str, str]:
    """Columns of ``dataset`` whose values are PII in clear, with an entity for the placeholder.

    Proposed findings count (not yet decided is not yet safe); dismissed do not.
    Chart columns count when their policy leaves the value readable (keep,
    in-text anonymisation); hashed, masked or generalised ones are already safe.
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
