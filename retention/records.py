"""The records of processing (GDPR Art. 30) as an export, with the PII Atlas found.

One entry per dataset that has a record of processing *or* PII findings
(confirmed or proposed): a dataset holding personal data without a record is
exactly what a controller must see, so it is listed with ``record: missing``.
Each entry joins what stewards wrote (purpose, legal basis, subjects,
recipients, transfers, security) with the retention policy Atlas enforces and
the PII categories (entity types) compliance found, confirmed and proposed.
Dismissed findings are left out. Every export is audited.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.utils import timezone

from atlas import audit
from pipelines.models import Dataset

from .models import ProcessingRecord, RetentionPolicy

FORMATS = ("csv", "json")
CSV_COLUMNS = [
    "dataset",
    "layer",
    "table",
    "record",
    "purpose",
    "legal_basis",
    "legal_basis_detail",
    "data_subject_categories",
    "recipients",
    "transfers",
    "retention",
    "retention_status",
    "security_measures",
    "pii_confirmed",
    "pii_proposed",
    "pii_columns",
    "updated_at",
]


class ExportError(Exception):
    """An export that cannot be made (unknown format or dataset)."""


class UnknownDatasets(ExportError):
    """The export names datasets that do not exist (the API answers 404: well-formed, naming nothing)."""


def _findings(dataset_ids: Iterable[int] | None) -> dict[int, list]:
    from compliance.models import PiiFinding

    qs = PiiFinding.objects.filter(
        status__in=[PiiFinding.Status.CONFIRMED, PiiFinding.Status.PROPOSED]
    )
    if dataset_ids is not None:
        qs = qs.filter(dataset_id__in=list(dataset_ids))
    by_dataset: dict[int, list] = defaultdict(list)
    for f in qs.order_by("dataset_id", "column", "entity"):
        by_dataset[f.dataset_id].append(f)
    return by_dataset


def _retention(policy: RetentionPolicy | None, record: ProcessingRecord | None) -> dict:
    note = record.retention_note.strip() if record else ""
    if policy is None:
        return {"policy": None, "text": note or "not set", "status": "no policy"}
    return {
        "policy": {
            "column": policy.column,
            "period_days": policy.period_days,
            "action": policy.action,
            "enabled": policy.enabled,
        },
        "text": policy.describe() + (f"; {note}" if note else ""),
        "status": policy.get_status_display(),
    }


def build_records(datasets: Iterable[str] | None = None) -> list[dict]:
    """The export's entries (plain data), ordered by dataset name."""
    from compliance.models import PiiFinding

    wanted = None
    if datasets:
        names = list(dict.fromkeys(datasets))
        if any("\x00" in n for n in names):
            raise ExportError("A dataset name cannot contain NUL characters.")
        found = dict(Dataset.objects.filter(name__in=names).values_list("name", "pk"))
        missing = [n for n in names if n not in found]
        if missing:
            raise UnknownDatasets(f"Unknown dataset(s): {', '.join(missing)}.")
        wanted = list(found.values())
    findings = _findings(wanted)
    qs = Dataset.objects.filter(Q(processing_record__isnull=False) | Q(pk__in=list(findings)))
    if wanted is not None:
        qs = Dataset.objects.filter(pk__in=wanted)
    qs = qs.select_related("processing_record", "retention_policy").order_by("name").distinct()
    entries = []
    for ds in qs:
        record = getattr(ds, "processing_record", None)
        policy = getattr(ds, "retention_policy", None)
        ds_findings = findings.get(ds.pk, [])
        confirmed = sorted(
            {f.entity for f in ds_findings if f.status == PiiFinding.Status.CONFIRMED}
        )
        proposed = sorted(
            {f.entity for f in ds_findings if f.status == PiiFinding.Status.PROPOSED}
            - set(confirmed)
        )
        entries.append(
            {
                "dataset": ds.name,
                "layer": ds.layer,
                "table": ds.qualified_table,
                "record": "present" if record else "missing",
                "purpose": record.purpose if record else "",
                "legal_basis": record.get_legal_basis_display() if record else "",
                "legal_basis_code": record.legal_basis if record else "",
                "legal_basis_detail": record.legal_basis_detail if record else "",
                "data_subject_categories": record.subject_categories_list if record else [],
                "recipients": record.recipients_list if record else [],
                "transfers": record.transfers if record else "",
                "retention": _retention(policy, record),
                "security_measures": record.security_measures if record else "",
                "pii": {
                    "confirmed": confirmed,
                    "proposed": proposed,
                    "columns": [
                        {"column": f.column, "entity": f.entity, "status": f.status}
                        for f in ds_findings
                    ],
                },
                "updated_at": record.updated_at if record else None,
            }
        )
    return entries


def to_json(entries: list[dict]) -> str:
    doc = {"generated_at": timezone.now(), "standard": "GDPR Art. 30(1)", "records": entries}
    return json.dumps(doc, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)


def to_csv(entries: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for e in entries:
        writer.writerow(
            {
                **{
                    k: e[k]
                    for k in (
                        "dataset",
                        "layer",
                        "table",
                        "record",
                        "purpose",
                        "legal_basis",
                        "legal_basis_detail",
                        "transfers",
                        "security_measures",
                    )
                },
                "data_subject_categories": "; ".join(e["data_subject_categories"]),
                "recipients": "; ".join(e["recipients"]),
                "retention": e["retention"]["text"],
                "retention_status": e["retention"]["status"],
                "pii_confirmed": "; ".join(e["pii"]["confirmed"]),
                "pii_proposed": "; ".join(e["pii"]["proposed"]),
                "pii_columns": "; ".join(
                    f"{c['column']}:{c['entity']} ({c['status']})" for c in e["pii"]["columns"]
                ),
                "updated_at": e["updated_at"].isoformat() if e["updated_at"] else "",
            }
        )
    return out.getvalue()


def export_records(
    fmt: str, *, datasets: Iterable[str] | None = None, actor=None, door: str = ""
) -> str:
    """The records of processing in ``fmt`` (csv or json); the export is audited."""
    fmt = (fmt or "").lower()
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}: use csv or json.")
    entries = build_records(datasets)
    text = to_csv(entries) if fmt == "csv" else to_json(entries)
    audit.record(
        "retention.records_exported",
        actor=actor,
        format=fmt,
        door=door,
        datasets=[e["dataset"] for e in entries],
        missing_records=[e["dataset"] for e in entries if e["record"] == "missing"],
    )
    return text


def filename(fmt: str) -> str:
    return f"records-of-processing-{timezone.now():%Y%m%d-%H%M%S}.{fmt}"


def save_record(record: ProcessingRecord, *, actor=None) -> ProcessingRecord:
    """Validate, save and audit a record of processing (admin and API save through here)."""
    from django.db import transaction

    record.full_clean()
    created = record.pk is None
    if getattr(actor, "is_authenticated", False):
        record.updated_by = actor
    with transaction.atomic():
        record.save()
        audit.record(
            "retention.record_created" if created else "retention.record_changed",
            actor=actor,
            target=record.dataset,
            legal_basis=record.legal_basis,
        )
    return record
