"""Data-subject requests: submit, verify, run (access export or erasure), verify erasure, reject, download.

Every door (admin actions, API, ``manage.py dsr``, Celery beat) calls these
functions; each status change is a conditional update (two clicks cannot run
a request twice) recorded in the audit log. Illegal transitions are refused
with a :class:`DsrError` that says what the request's status allows.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import secrets
import zipfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from atlas import audit
from atlas.warehouse import WarehouseError, get_warehouse
from compliance.policies import PolicyError, hash_key, pseudonym
from pipelines.models import Dataset, Layer, RunStatus, Trigger

from . import keys as keys_mod
from . import rebuild as rebuild_mod
from . import verification
from .models import (
    DataSubjectRequest,
    DsrExport,
    ErasureRecord,
    ErasureSetting,
    RequestStatus,
    Tombstone,
)
from .search import (
    DsrError,
    Subject,
    expand,
    fingerprint,
    matches,
    parse_identifiers,
    subject_of,
    subjects_reached,
    subjects_started,
)

logger = logging.getLogger(__name__)
S = RequestStatus
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.RECEIVED: (S.VERIFIED, S.REJECTED),
    S.VERIFIED: (S.IN_PROGRESS, S.REJECTED),
    S.NEEDS_REVIEW: (S.VERIFIED, S.REJECTED),
    S.IN_PROGRESS: (S.IN_PROGRESS, S.COMPLETED, S.NEEDS_REVIEW),
    S.COMPLETED: (),
    S.REJECTED: (),
}


class ExportExpired(DsrError):
    """The export's file is past its expiry (deleted or about to be)."""


class NeedsReview(DsrError):
    """The expansion reached more subjects than the request started with: a steward must look first."""


def _user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None


# --- transitions ------------------------------------------------------------------------
def transition(req: DataSubjectRequest, to: str, *, actor=None, **detail) -> DataSubjectRequest:
    """Move ``req`` to status ``to`` if its current status allows it (audited); refuse otherwise."""
    req.refresh_from_db(fields=["status"])
    allowed = TRANSITIONS.get(req.status, ())
    if to not in allowed:
        nexts = ", ".join(allowed) or "nothing (it is closed)"
        raise DsrError(f"{req} is {req.status}: it cannot become {to} (from {req.status} it can become {nexts}).")
    now = timezone.now()
    fields = {"status": to, "updated_at": now}
    if to == S.VERIFIED:
        fields["verified_at"] = now
    if to == S.COMPLETED:
        fields["completed_at"] = now
    with transaction.atomic():
        if not DataSubjectRequest.objects.filter(pk=req.pk, status=req.status).update(**fields):
            raise DsrError(f"{req} changed status meanwhile; reload it and try again.")
        audit.record(f"dsr.request.{to}", actor=actor, target=req, previous=req.status, kind=req.kind, **detail)
    req.refresh_from_db()
    return req


def submit(
    kind: str, identifiers, *, actor=None, received_at=None, reference: str = "", assignee=None
) -> DataSubjectRequest:
    """Record a received request (validated identifiers; due date from ``ATLAS_DSR_DUE_DAYS``)."""
    if kind not in DataSubjectRequest.Kind.values:
        raise DsrError(f"Unknown request kind {kind!r}; choose one of {', '.join(DataSubjectRequest.Kind.values)}.")
    parsed = parse_identifiers(identifiers)
    received_at = received_at or timezone.now()
    with transaction.atomic():
        req = DataSubjectRequest.objects.create(
            kind=kind, identifiers=parsed, reference=reference, received_at=received_at,
            due_at=received_at + timedelta(days=settings.ATLAS_DSR_DUE_DAYS),
            assignee=_user(assignee), submitted_by=_user(actor),
        )
        audit.record(
            "dsr.request.received", actor=actor, target=req, kind=kind, reference=reference,
            identifier_kinds={k: len(v) for k, v in parsed.items()}, due_at=req.due_at,
        )
    return req


def verify(req: DataSubjectRequest, *, actor=None, note: str = "") -> DataSubjectRequest:
    """The steward checked the requester's identity."""
    return transition(req, S.VERIFIED, actor=actor, note=note)


def reject(req: DataSubjectRequest, *, actor=None, reason: str) -> DataSubjectRequest:
    if not (reason or "").strip():
        raise DsrError("Rejecting a request needs a reason (it is kept and shown to auditors).")
    req = transition(req, S.REJECTED, actor=actor, reason=reason.strip())
    DataSubjectRequest.objects.filter(pk=req.pk).update(reject_reason=reason.strip())
    req.refresh_from_db()
    return req


def assign(req: DataSubjectRequest, assignee, *, actor=None) -> DataSubjectRequest:
    DataSubjectRequest.objects.filter(pk=req.pk).update(assignee=_user(assignee))
    audit.record("dsr.request.assigned", actor=actor, target=req, assignee=str(assignee) if assignee else "")
    req.refresh_from_db()
    return req


# --- running -------------------------------------------------------------------------------
def resolve(req: DataSubjectRequest) -> tuple[Subject, list]:
    """The subject's identifiers, expanded through the declared keys."""
    if req.identifiers_hashed:
        raise DsrError(f"{req} was erased: only hashes of its identifiers are kept; nothing can be searched in clear.")
    wh = get_warehouse()
    targets = keys_mod.targets()
    start = subject_of(req.identifiers)
    if (req.resolved or {}).get("clear") or (req.resolved or {}).get("hashed"):
        # Run again (after a red proof): what the first run reached may be deleted already (the
        # orders that led to the payments), so the expansion starts from everything reached before.
        earlier = Subject.from_json(req.resolved)
        for kind, values in earlier.clear.items():
            for v in values:
                start.add(kind, v, hashed=False)
        for kind, values in earlier.hashed.items():
            for v in values:
                start.add(kind, v, hashed=True)
    subject, rounds = expand(start, targets, wh)
    return subject, rounds


def resolve_checked(req: DataSubjectRequest, *, actor=None) -> tuple[Subject, list]:
    """The expansion, stopped for a steward's review when it reached more subjects than the request named.

    Subjects are counted in the kinds that tell subjects apart (``search.subjects_reached``);
    a request names as many as the most identifiers it gives of one kind. A steward's
    approval (:func:`approve_expansion`) holds for exactly the expansion they saw (its
    fingerprint): if the data changed since, the request stops again.
    """
    subject, rounds = resolve(req)
    reached = subjects_reached(subject, keys_mod.targets())
    started = subjects_started(req.identifiers)
    digest = fingerprint(subject)
    over = {k: n for k, n in reached.items() if n > started}
    if not over or req.approved_expansion == digest:
        return subject, rounds
    review = {"started_with": started, "reached": reached, "over": over, "fingerprint": digest,
              "rounds": rounds, "at": timezone.now().isoformat()}
    DataSubjectRequest.objects.filter(pk=req.pk).update(review=review, resolved=subject.to_json())
    if req.status == S.IN_PROGRESS:
        transition(req, S.NEEDS_REVIEW, actor=actor, started_with=started, reached=reached)
    listed = ", ".join(f"{n} different {k} values" for k, n in sorted(over.items()))
    raise NeedsReview(
        f"{req} stopped for review: its identifiers lead to {listed}, more than the {started} subject(s) it"
        " named. Nothing was deleted or exported. Check the subject keys (a shared or placeholder value?),"
        " then approve the expansion or reject the request."
    )


def approve_expansion(req: DataSubjectRequest, *, actor=None, note: str = "") -> DataSubjectRequest:
    """A steward approves the expansion under review (it really is one person); the request can run again."""
    req.refresh_from_db()
    if req.status != S.NEEDS_REVIEW:
        raise DsrError(f"{req} is {req.status}: only a request under review has an expansion to approve.")
    if not (note or "").strip():
        raise DsrError("Approving an expansion needs a note saying why these identifiers are one person.")
    digest = (req.review or {}).get("fingerprint", "")
    DataSubjectRequest.objects.filter(pk=req.pk).update(approved_expansion=digest, approved_by=_user(actor))
    return transition(req, S.VERIFIED, actor=actor, approved_expansion=digest,
                      reached=(req.review or {}).get("reached", {}), note=note.strip())


def run_refusal(req: DataSubjectRequest) -> str | None:
    """Why ``req`` cannot be run now (checked again when it runs), or None."""
    if req.status in (S.VERIFIED, S.IN_PROGRESS):
        return None
    if req.status == S.RECEIVED:
        return f"{req} is {req.status}: only a verified request (or one in progress) can be run; verify it first."
    return f"{req} is {req.status}: it cannot be run again."


def verify_erasure_refusal(req: DataSubjectRequest) -> str | None:
    """Why the erasure of ``req`` cannot be verified now (checked again when it runs), or None."""
    if req.kind != DataSubjectRequest.Kind.ERASURE:
        return f"{req} is an access request: there is no erasure to verify."
    if req.status not in (S.IN_PROGRESS, S.COMPLETED):
        return f"{req} is {req.status}: run the erasure before verifying it."
    return None


def run(req: DataSubjectRequest, *, actor=None, trigger: str = Trigger.MANUAL) -> DataSubjectRequest:
    """Carry out a verified request: an access export, or an erasure with its verification.

    When the expansion reaches more subjects than the request named, the request stops in
    review (status ``review``) before anything is deleted or exported, and is returned so.
    """
    req.refresh_from_db()
    refused = run_refusal(req)
    if refused:
        raise DsrError(refused)
    req = transition(req, S.IN_PROGRESS, actor=actor)
    try:
        if req.kind == DataSubjectRequest.Kind.ACCESS:
            export = create_export(req, actor=actor)
            return transition(req, S.COMPLETED, actor=actor, export_id=export.pk, rows=export.rows)
        return erase(req, actor=actor, trigger=trigger)
    except NeedsReview as exc:
        audit.record("dsr.request.review", actor=actor, target=req, reason="expansion")
        DataSubjectRequest.objects.filter(pk=req.pk).update(error=str(exc))
        req.refresh_from_db()
        return req
    except (DsrError, WarehouseError, PolicyError) as exc:
        DataSubjectRequest.objects.filter(pk=req.pk).update(error=str(exc))
        audit.record("dsr.request.error", actor=actor, target=req, error=str(exc))
        raise DsrError(str(exc)) from exc


def _navigate_mode(ds: Dataset) -> str:
    setting = ErasureSetting.objects.filter(dataset=ds).first()
    return setting.mode if setting else ErasureSetting.Mode.REBUILD


def erase(req: DataSubjectRequest, *, actor=None, trigger: str = Trigger.MANUAL) -> DataSubjectRequest:
    """Delete the subject's rows (Explore, Chart, quarantine; Navigate per its setting), rebuild, tombstone, verify."""
    subject, rounds = resolve_checked(req, actor=actor)
    DataSubjectRequest.objects.filter(pk=req.pk).update(resolved=subject.to_json(), error="")
    wh = get_warehouse()
    catalogue = keys_mod.warehouse_columns(wh)
    targets = keys_mod.targets(catalogue=catalogue)
    changed: list[Dataset] = []
    removed_by_dataset: dict[int, int] = {}
    records: list[ErasureRecord] = []
    for m in matches(subject, targets, wh, quarantine=True, catalogue=catalogue):
        if m.layer == Layer.NAVIGATE and not m.quarantine and _navigate_mode(m.dataset) == ErasureSetting.Mode.REBUILD:
            continue
        table = wh.table(m.layer, m.table)
        with wh.transaction() as cur:  # one pass: the engine counts the rows it removes (Spark: a rewrite)
            found = wh.ops.delete(cur, f"DELETE FROM {table} WHERE {m.where}", m.params)
        method = ErasureRecord.Method.QUARANTINE if m.quarantine else ErasureRecord.Method.DELETE
        records.append(ErasureRecord(
            request=req, dataset=m.dataset, table=m.qualified, method=method, rows_removed=found, detail={"keys": m.keys}
        ))
        if found and not m.quarantine:
            changed.append(m.dataset)
            removed_by_dataset[m.dataset.pk] = removed_by_dataset.get(m.dataset.pk, 0) + found
    with transaction.atomic():
        ErasureRecord.objects.bulk_create(records)
        audit.record("dsr.erasure.deleted", actor=actor, target=req,
                     tables={r.table: r.rows_removed for r in records}, keys={r.table: r.detail["keys"] for r in records})
    for ds, removed in removed_by_dataset.items():  # the catalogue's row count, without recounting the table
        Dataset.objects.filter(pk=ds, row_count__isnull=False).update(row_count=F("row_count") - removed)
        Dataset.objects.filter(pk=ds).update(data_version=F("data_version") + 1)  # pipelines.freshness
    _rebuild(req, changed, actor=actor, trigger=trigger)
    _tombstone(req, subject, actor=actor)
    return check_erasure(req, actor=actor, resolved=subject.to_json(), rounds=rounds)


def _rebuild(req: DataSubjectRequest, changed: list[Dataset], *, actor, trigger: str) -> None:
    below = rebuild_mod.downstream_datasets(changed)
    to_rebuild = [
        ds for ds in Dataset.objects.filter(pk__in=below, layer=Layer.NAVIGATE)
        if _navigate_mode(ds) == ErasureSetting.Mode.REBUILD
    ]
    if not to_rebuild:
        return
    for run in rebuild_mod.rebuild(to_rebuild, actor=actor, trigger=trigger):
        for sr in run.step_runs.select_related("output"):
            ErasureRecord.objects.create(
                request=req, dataset=sr.output, table=sr.output.qualified_table if sr.output else sr.step_name,
                method=ErasureRecord.Method.REBUILD, rows_removed=0, run=run,
                detail={"step": sr.step_name, "status": sr.status, "rows_out": sr.rows_out, "error": sr.error},
            )
        audit.record("dsr.erasure.rebuilt", actor=actor, target=req, run_id=run.pk, status=run.status,
                     steps=[sr.step_name for sr in run.step_runs.all()])
        if run.status != RunStatus.SUCCEEDED:
            raise DsrError(f"Rebuilding after the erasure failed (run #{run.pk}): {run.error}")


def _tombstone(req: DataSubjectRequest, subject: Subject, *, actor) -> int:
    key = hash_key()
    wanted = {(kind, h) for kind in subject.kinds() for h in subject.current_hashes(kind)}
    before = Tombstone.objects.count()
    Tombstone.objects.bulk_create(
        [Tombstone(kind=kind, hash=h, key_id=key.key_id, request=req) for kind, h in sorted(wanted)], ignore_conflicts=True
    )
    created = Tombstone.objects.count() - before
    audit.record("dsr.tombstones", actor=actor, target=req, created=created, kinds=sorted(subject.kinds()))
    return created


def check_erasure(
    req: DataSubjectRequest, *, actor=None, resolved: dict | None = None, rounds: list | None = None
) -> DataSubjectRequest:
    """The independent verification scan; completes the request only when it finds zero rows."""
    req.refresh_from_db()
    refused = verify_erasure_refusal(req)
    if refused:
        raise DsrError(refused)
    if resolved is None:
        resolved = req.resolved if not req.identifiers_hashed else _tombstone_forms(req)
    wh = get_warehouse()
    proof = verification.scan(wh, resolved)
    left = verification.residue(proof)
    document = {
        "scanned_at": timezone.now().isoformat(),
        "tables": proof,
        "rows_found": sum(p["rows_found"] for p in proof),
        "unexplained": left,
        "retained": verification.retained(proof),
        "expansion": rounds if rounds is not None else (req.proof or {}).get("expansion", []),
        "erased": [
            {"table": e.table, "method": e.method, "rows_removed": e.rows_removed, "run_id": e.run_id}
            for e in req.erasures.all()
        ],
    }
    DataSubjectRequest.objects.filter(pk=req.pk).update(proof=document, residue=left)
    audit.record("dsr.erasure.verified", actor=actor, target=req, tables=len(proof), rows_found=document["rows_found"],
                 residue=left)
    req.refresh_from_db()
    if left:
        listed = " ".join(f"{r['message'][:-1]} ({r['rows_found']} row(s))." for r in left)
        DataSubjectRequest.objects.filter(pk=req.pk).update(error=f"References remain after the erasure: {listed}")
        req.refresh_from_db()
        return req
    if req.status == S.IN_PROGRESS:
        subject = Subject.from_json(resolved)
        with transaction.atomic():
            DataSubjectRequest.objects.filter(pk=req.pk).update(
                identifiers={k: sorted(subject.hashes(k)) for k in sorted(subject.kinds())},
                identifiers_hashed=True, resolved={"summary": subject.summary()}, error="",
            )
            req = transition(req, S.COMPLETED, actor=actor, rows_found=0, tables=len(proof))
    return req


def _tombstone_forms(req: DataSubjectRequest) -> dict:
    hashed: dict[str, list[str]] = {}
    for t in req.tombstones.all():
        hashed.setdefault(t.kind, []).append(t.hash)
    return {"clear": {}, "hashed": hashed}


# --- access exports ------------------------------------------------------------------------
def export_dir() -> Path:
    path = Path(settings.VAR_DIR) / "privacy" / "exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def create_export(req: DataSubjectRequest, *, actor=None) -> DsrExport:
    """Every row about the subject in every layer and quarantine, as JSON and CSV per table in a zip."""
    if req.kind != DataSubjectRequest.Kind.ACCESS:
        raise DsrError(f"{req} is an erasure request: exports are for access requests.")
    if req.status not in (S.IN_PROGRESS, S.COMPLETED):
        raise DsrError(f"{req} is {req.status}: verify and run it before exporting.")
    subject, rounds = resolve_checked(req, actor=actor)
    DataSubjectRequest.objects.filter(pk=req.pk).update(resolved=subject.to_json())
    wh = get_warehouse()
    now = timezone.now()
    expires = now + timedelta(hours=settings.ATLAS_DSR_EXPORT_TTL_HOURS)
    path = export_dir() / f"dsr-{req.pk}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(6)}.zip"
    datasets, total = [], 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        catalogue = keys_mod.warehouse_columns(wh)
        for m in matches(subject, keys_mod.targets(catalogue=catalogue), wh, quarantine=True, catalogue=catalogue):
            with wh.cursor() as cur:
                cur.execute(f"SELECT * FROM {wh.table(m.layer, m.table)} WHERE {m.where}", m.params)
                columns, rows = cur.column_names, cur.fetchall()
            entry = {"dataset": m.dataset.name if m.dataset else "", "layer": m.layer, "table": m.qualified,
                     "quarantine": m.quarantine, "rows": len(rows), "files": []}
            if rows:
                base = f"{m.layer}/{m.table}"
                records = [dict(zip(columns, r, strict=True)) for r in rows]
                zf.writestr(f"{base}.json", json.dumps(records, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False))
                buf = io.StringIO()
                writer = csv.writer(buf)
                writer.writerow(columns)
                writer.writerows(["" if v is None else v for v in r] for r in rows)
                zf.writestr(f"{base}.csv", buf.getvalue())
                entry["files"] = [f"{base}.json", f"{base}.csv"]
            datasets.append(entry)
            total += len(rows)
        manifest = {
            "request": req.pk, "kind": req.kind, "reference": req.reference, "generated_at": now.isoformat(),
            "expires_at": expires.isoformat(), "identifier_kinds": subject.summary(), "rows": total,
            "datasets": datasets,
        }
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
    export = DsrExport.objects.create(
        request=req, path=str(path), size_bytes=path.stat().st_size, rows=total, manifest=manifest,
        created_by=_user(actor), created_at=now, expires_at=expires,
    )
    audit.record("dsr.export.created", actor=actor, target=req, export_id=export.pk, rows=total,
                 tables=len(datasets), expires_at=expires)
    return export


def download(export: DsrExport, *, actor=None) -> Path:
    """The export's file for ``actor`` (audited); refused once it has expired."""
    path = Path(export.path)
    if export.expired or not path.is_file():
        audit.record("dsr.export.refused", actor=actor, target=export.request, export_id=export.pk, reason="expired")
        raise ExportExpired(
            f"Export #{export.pk} expired at {export.expires_at:%Y-%m-%d %H:%M} UTC and is no longer available;"
            " create a new export from the request."
        )
    DsrExport.objects.filter(pk=export.pk).update(downloads=export.downloads + 1)
    audit.record("dsr.export.downloaded", actor=actor, target=export.request, export_id=export.pk,
                 size_bytes=export.size_bytes)
    return path


def purge_expired_exports(now=None) -> int:
    """Delete the files of exports past their expiry (beat); the records stay, marked deleted."""
    now = now or timezone.now()
    count = 0
    for export in DsrExport.objects.filter(expires_at__lte=now, deleted_at__isnull=True):
        Path(export.path).unlink(missing_ok=True)
        DsrExport.objects.filter(pk=export.pk).update(deleted_at=now)
        audit.record("dsr.export.deleted", target=export.request, export_id=export.pk, reason="expired")
        count += 1
    return count


def is_erased(kind: str, value: str) -> bool:
    """Whether an identifier belongs to an erased subject (by its hash; nothing kept in clear)."""
    return Tombstone.objects.filter(kind=kind, hash=pseudonym(keys_mod.normalise(kind, value))).exists()


# --- references kept with a legal basis ------------------------------------------------------
def retain_reference(dataset: Dataset, column: str, *, legal_basis: str, actor=None):
    """Record that ``dataset.column`` may keep referring to erased subjects, and why (audited).

    The erasure proof then lists the column's references as kept, not unexplained. A key
    column cannot be retained (its rows are erased), nor can a basis be empty.
    """
    from .models import RetainedReference, SubjectKey

    basis = (legal_basis or "").strip()
    if not basis:
        raise DsrError("Keeping references to erased subjects needs a recorded legal basis (e.g. a retention duty).")
    columns = set(dataset.columns.values_list("name", flat=True))
    if columns and column not in columns:
        raise DsrError(f"{dataset.name} has no column {column!r}.")
    if SubjectKey.objects.filter(dataset=dataset, column=column, status=SubjectKey.Status.CONFIRMED).exists():
        raise DsrError(f"{dataset.name}.{column} is a subject key: its rows are erased, not kept.")
    ref, created = RetainedReference.objects.update_or_create(
        dataset=dataset, column=column, defaults={"legal_basis": basis, "decided_by": _user(actor)}
    )
    audit.record("dsr.reference.retained", actor=actor, target=ref, dataset=dataset.name, column=column,
                 legal_basis=basis, created=created)
    return ref
