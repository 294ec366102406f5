"""privacy's heavy actions as background tasks (``background_tasks``, :mod:`atlas.background`)."""

from __future__ import annotations

from atlas.background import Kind

from . import keys, service
from .models import DataSubjectRequest, SubjectKey
from .search import DsrError


def run_request(task, request_id: int, trigger: str = "api") -> dict:
    """Carry out a data-subject request (export, or erasure with its rebuild, tombstones and proof)."""
    req = service.run(DataSubjectRequest.objects.get(pk=request_id), actor=task.requested_by, trigger=trigger)
    return {"request": req.pk, "status": req.status}


def verify_erasure(task, request_id: int) -> dict:
    """The independent proof again; completes the request when nothing refers to the subject."""
    req = service.check_erasure(DataSubjectRequest.objects.get(pk=request_id), actor=task.requested_by)
    return {"request": req.pk, "status": req.status}


def build_key_index(task, key_id: int) -> dict:
    """The index of a confirmed subject key (PostgreSQL; DuckDB scans instead and builds none)."""
    return {"key": key_id, "index": keys.ensure_index(SubjectKey.objects.select_related("dataset").get(pk=key_id))}


KINDS = [
    Kind("privacy.run_request", run_request, errors=(DsrError,)),
    Kind("privacy.verify_erasure", verify_erasure, errors=(DsrError,)),
    Kind("privacy.build_key_index", build_key_index, errors=(keys.SubjectKeyError,)),
]
