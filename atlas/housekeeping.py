"""Bounded metadata: run history, check results, scans and delivered events do not grow for ever.

Each app contributes its pruners (``metadata_pruners`` in :mod:`atlas.extensions`):
``callable(now) -> {what: rows deleted}``. A daily beat job and ``manage.py
prune_metadata`` call :func:`prune_metadata`, which calls them all.

What is never pruned here: the audit log (its chain is the evidence), data-subject
requests and erasure records, retention runs (the record that data was deleted on
time) and the definitions themselves. What is pruned keeps the most recent records
of each pipeline or dataset whatever their age (``ATLAS_KEEP_LATEST``), so a page's
"last run" and a dataset's check status never disappear; and nothing active is
touched. ``ATLAS_KEEP_*_DAYS = 0`` keeps that kind for ever.

Deletes go in batches by primary key (``BATCH``), so a first prune of a years-old
install neither holds one long transaction nor locks a table for minutes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from . import extensions

logger = logging.getLogger(__name__)
BATCH = 2000


def cutoff(days: int, now: datetime | None = None) -> datetime | None:
    """The instant before which records of a kind kept ``days`` days are pruned; None keeps them for ever."""
    if days <= 0:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def prune(
    queryset: models.QuerySet,
    *,
    before: datetime | None,
    field: str,
    keep_latest_per: str | None = None,
    keep_latest: int | None = None,
) -> int:
    """Delete the rows of ``queryset`` whose ``field`` is before ``before``, in batches; how many went.

    ``keep_latest_per``: a field grouping the rows (pipeline, dataset); the ``keep_latest``
    most recent rows of each group (by primary key) are kept whatever their age.
    Only what ``queryset`` selects is ever deleted: callers exclude active records there.
    """
    if before is None:
        return 0
    old = queryset.filter(**{f"{field}__lt": before})
    if keep_latest_per:
        keep_latest = settings.ATLAS_KEEP_LATEST if keep_latest is None else keep_latest
        kept: list[int] = []
        groups = queryset.model.objects.values_list(keep_latest_per, flat=True).distinct().order_by()
        for group in groups:
            kept.extend(
                queryset.model.objects.filter(**{keep_latest_per: group})
                .order_by("-pk")
                .values_list("pk", flat=True)[:keep_latest]
            )
        old = old.exclude(pk__in=kept)
    deleted = 0
    while True:
        ids = list(old.order_by("pk").values_list("pk", flat=True)[:BATCH])
        if not ids:
            return deleted
        with transaction.atomic():
            queryset.model.objects.filter(pk__in=ids).delete()
        deleted += len(ids)


def prune_metadata(now: datetime | None = None) -> dict[str, int]:
    """Call every contributed pruner; ``{what: rows deleted}`` (a pruner that fails is logged, the others go on)."""
    now = now or timezone.now()
    done: dict[str, int] = {}
    for pruner in extensions.contributions("metadata_pruners"):
        try:
            done.update(pruner(now))
        except Exception:  # one app's failure must not keep the others' tables growing
            logger.exception("Metadata pruner %s failed.", extensions.dotted(pruner))
    return done
