"""Run attempts' names for what they stage, and the janitor that removes what dead attempts left.

Everything an attempt creates in the warehouse carries its tag, ``r<run>a<attempt>``,
after a double underscore (``orders__r12a2_b3f…``, ``people__r12a2_stg``; the
direct-COPY parts and their sequences are named after their staging table). A
dataset's own table never has a double underscore (refused at save), its
quarantine table ends in ``__quarantine``: the tag names a leftover without doubt.

The janitor (:func:`clean_up_attempts`, beat every ``ATLAS_JANITOR_SECONDS``) drops
every tagged relation whose attempt is not the one executing now — a run that ended,
or an attempt the reaper declared lost — whatever killed it (a SIGKILL mid-COPY, a
table the database committed after its worker died). It also drops:

- what releases before per-attempt naming left (:func:`legacy_owner`): a transform's
  ``orders__stg<run>``, an ingest's ``orders__b<batch>``, a direct-COPY part
  ``b<batch>_p<n>`` and its sequence ``b<batch>_rn<n>`` — once the run that made them
  is over (a batch's run is found through its ``LoadedBatch``; one with no record
  only when no run is running at all);
- the quarantine rows of batches a dead attempt staged and never published
  (:func:`orphan_quarantine_batches`); a refused file's rejects are its evidence and stay;
- the load directories (FIFOs, downloaded sources) of processes that are gone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from atlas.warehouse import WarehouseError, get_warehouse

from .models import ACTIVE_STATUSES, Dataset, Layer, LoadedBatch, PipelineRun, RunStatus

logger = logging.getLogger(__name__)
TAG_RE = re.compile(r"__r(\d+)a(\d+)_")
TEMP_DIR_RE = re.compile(r"^atlas-(?:load|src)-(\d+)-")
# Names used before per-attempt naming: a transform's staging (run id), an ingest's staging
# and its direct-COPY parts and sequences (batch id).
LEGACY_STG_RE = re.compile(r"__stg(\d+)$")
LEGACY_BATCH_RE = re.compile(r"^(?:.+__)?(b[0-9a-f]{16})(?:_p\d+|_rn\d+)?$")
QUARANTINE_SUFFIX = "__quarantine"
QUARANTINE_WINDOW = timedelta(days=1)


def attempt_tag(run_id: int, attempt: int) -> str:
    return f"r{run_id}a{attempt}"


def ingest_staging_name(table: str, tag: str, batch_id: str) -> str:
    """At most 58 characters (PostgreSQL allows 63): room for the ``_p<n>`` of a direct-COPY part."""
    return f"{table[:23]}__{tag}_{batch_id}"


def transform_staging_name(table: str, tag: str) -> str:
    return f"{table[:40]}__{tag}_stg"


def is_staging(qualified: str) -> bool:
    """Whether ``schema.name`` is a run's staging table (this release's or an earlier one's): Atlas's own."""
    name = qualified.rpartition(".")[2]
    return bool(TAG_RE.search(name) or LEGACY_STG_RE.search(name) or LEGACY_BATCH_RE.match(name))


def shown_table(qualified: str, dataset_table: str) -> str:
    """What a person reads for a table a record names: a staging table as its dataset's rows before publishing."""
    return f"{dataset_table} (staged rows, before publishing)" if is_staging(qualified) else qualified


@dataclass
class Cleanup:
    """What one pass of the janitor removed."""

    relations: list[str] = field(default_factory=list)  # schema.name
    directories: list[str] = field(default_factory=list)
    quarantine_rows: int = 0

    def __bool__(self) -> bool:
        return bool(self.relations or self.directories or self.quarantine_rows)


def live_attempts() -> set[tuple[int, int]]:
    """``(run, attempt)`` of every attempt that may still be creating tables: its run is running."""
    return set(PipelineRun.objects.filter(status=RunStatus.RUNNING).values_list("pk", "attempt"))


def legacy_owner(name: str) -> tuple[str, str] | None:
    """``("run", id)`` or ``("batch", id)`` for a name given before per-attempt naming; None otherwise."""
    if name.endswith(QUARANTINE_SUFFIX) or TAG_RE.search(name):
        return None
    if m := LEGACY_STG_RE.search(name):
        return "run", m[1]
    if m := LEGACY_BATCH_RE.match(name):
        return "batch", m[1]
    return None


def _running_runs() -> set[int]:
    return set(PipelineRun.objects.filter(status=RunStatus.RUNNING).values_list("pk", flat=True))


def _batch_runs(batch_ids: set[str]) -> dict[str, int | None]:
    """The run that staged each batch (its ``LoadedBatch``), when recorded."""
    rows = LoadedBatch.objects.filter(batch_id__in=batch_ids).values_list("batch_id", "step_run__run_id")
    return dict(rows)


def dead_relations(
    relations: list[tuple[str, str, str]], live: set[tuple[int, int]], *, datasets: set[tuple[str, str]] = frozenset()
) -> list[tuple[str, str, str]]:
    """The relations dead attempts left; sequences last (a part's default uses its sequence).

    Tagged ones whose attempt is not live; legacy-named ones (see :func:`legacy_owner`)
    whose run is over — never a dataset's own table (``datasets``: its schema and table).
    """
    dead, legacy = [], []
    for schema, name, kind in relations:
        m = TAG_RE.search(name)
        if m:
            if (int(m[1]), int(m[2])) not in live:
                dead.append((schema, name, kind))
        elif (schema, name) not in datasets and (owner := legacy_owner(name)):
            legacy.append((schema, name, kind, owner))
    if legacy:
        running = {run for run, _ in live} | _running_runs()
        batches = _batch_runs({ident for *_, (what, ident) in legacy if what == "batch"})
        for schema, name, kind, (what, ident) in legacy:
            run = int(ident) if what == "run" else batches.get(ident)
            if (run is None and not running) or (run is not None and run not in running):
                dead.append((schema, name, kind))
    return sorted(dead, key=lambda r: (r[2] == "sequence", r[1]))


def clean_up_attempts(*, temp_age_seconds: float | None = None) -> Cleanup:
    """Drop what attempts that are over left in the warehouse; remove load directories of gone processes."""
    done = Cleanup()
    wh = get_warehouse()
    live = live_attempts()
    datasets = set(Dataset.objects.values_list("layer", "table"))
    relations = wh.relations([layer.value for layer in Layer])
    for schema, name, kind in dead_relations(relations, live, datasets=datasets):
        try:
            wh.drop_relation(schema, name, kind)
        except WarehouseError as exc:  # a partition dropped with its parent, a lock: the next pass
            logger.warning("Janitor: could not drop %s %s.%s: %s", kind, schema, name, exc)
            continue
        done.relations.append(f"{schema}.{name}")
    done.quarantine_rows = clean_up_quarantine(wh, [(s, n) for s, n, k in relations if n.endswith(QUARANTINE_SUFFIX)])
    age = settings.ATLAS_JANITOR_TEMP_AGE_SECONDS if temp_age_seconds is None else temp_age_seconds
    for base in (Path(tempfile.gettempdir()), Path(settings.VAR_DIR) / "tmp"):
        done.directories += _clean_dirs(base, age)
    if done:
        logger.info("Janitor removed %d relation(s), %d quarantine row(s) and %d directorie(s) of dead attempts.",
                    len(done.relations), done.quarantine_rows, len(done.directories))
    return done


def orphan_quarantine_batches(candidates: set[tuple[int, str]], published: set[str]) -> set[str]:
    """The batches of ``candidates`` ((run, batch) in a quarantine) a dead attempt staged and never published.

    A batch is left over when its run is over, it is not in the batch ledger
    (``published``), and it was not refused (a refused file's rejects are its evidence)
    nor published and later superseded: either no ``LoadedBatch`` records it (the attempt
    died between quarantining and recording), or it was staged by a step run that did
    not succeed, or a later try of the same step run staged the same file again.
    """
    unpublished = {(run, batch) for run, batch in candidates if batch not in published}
    if not unpublished:
        return set()
    active = set(PipelineRun.objects.filter(pk__in={r for r, _ in unpublished}, status__in=ACTIVE_STATUSES)
                 .values_list("pk", flat=True))
    over = {batch for run, batch in unpublished if run not in active}
    records = {b.batch_id: b for b in LoadedBatch.objects.filter(batch_id__in=over).select_related("step_run")}
    return {batch for batch in over if _never_published(records.get(batch))}


def _never_published(rec: LoadedBatch | None) -> bool:
    if rec is None:  # died between quarantining and recording
        return True
    if rec.status not in (LoadedBatch.Status.LOADED, LoadedBatch.Status.PARTIAL) or rec.step_run is None:
        return False  # refused: its rejects are the evidence
    return rec.step_run.status != RunStatus.SUCCEEDED or LoadedBatch.objects.filter(
        step_run=rec.step_run, checksum=rec.checksum, pk__gt=rec.pk
    ).exists()


def clean_up_quarantine(wh, quarantines: list[tuple[str, str]]) -> int:
    """Delete the quarantine rows of batches dead attempts never published; how many.

    Only rows of runs that ended in the last ``QUARANTINE_WINDOW``: the janitor passes
    every few minutes, so a run's leftovers are seen many times over, and an idle
    installation scans no quarantine at all.
    """
    since = timezone.now() - QUARANTINE_WINDOW
    runs = list(PipelineRun.objects.filter(finished_at__gte=since).exclude(status__in=ACTIVE_STATUSES)
                .values_list("pk", flat=True))
    if not runs:
        return 0
    removed = 0
    for schema, name in quarantines:
        dataset = f"{schema}.{name.removesuffix(QUARANTINE_SUFFIX)}"
        try:
            candidates, published = wh.quarantine_batches(schema, name, dataset, runs)
            orphans = orphan_quarantine_batches(candidates, published)
            if orphans:
                removed += wh.delete_quarantine_batches(schema, name, sorted(orphans))
        except WarehouseError as exc:  # a lock, a table being replaced: the next pass
            logger.warning("Janitor: could not clean %s.%s: %s", schema, name, exc)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _clean_dirs(base: Path, age: float) -> list[str]:
    """Atlas's load directories in ``base`` whose process is gone and that are older than ``age`` seconds.

    The age spares a directory just made by a process in another container that shares
    this one's temporary directory (its pid means nothing here).
    """
    removed: list[str] = []
    if not base.is_dir():
        return removed
    now = time.time()
    for entry in base.iterdir():
        m = TEMP_DIR_RE.match(entry.name)
        if not m or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            old = now - entry.stat().st_mtime >= age
        except FileNotFoundError:
            continue
        if old and not _process_alive(int(m[1])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(str(entry))
    return removed
