"""Run attempts' names for what they stage, and the janitor that removes what dead attempts left.

Everything an attempt creates in the warehouse carries its tag, ``r<run>a<attempt>``,
after a double underscore (``orders__r12a2_b3f…``, ``people__r12a2_stg``; the
direct-COPY parts and their sequences are named after their staging table). A
dataset's own table never has a double underscore (refused at save), its
quarantine table ends in ``__quarantine``: the tag names a leftover without doubt.

The janitor (:func:`clean_up_attempts`, beat every ``ATLAS_JANITOR_SECONDS``, and
``manage.py clean_up_attempts``) drops every tagged relation whose attempt is not
the one executing now — a run that ended, or an attempt the reaper declared lost —
whatever killed it (a SIGKILL mid-COPY, a table the database committed after its
worker died). It also removes the load directories (FIFOs, downloaded sources)
of processes that are gone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from atlas.warehouse import WarehouseError, get_warehouse

from .models import Layer, PipelineRun, RunStatus

logger = logging.getLogger(__name__)
TAG_RE = re.compile(r"__r(\d+)a(\d+)_")
TEMP_DIR_RE = re.compile(r"^atlas-(?:load|src)-(\d+)-")


def attempt_tag(run_id: int, attempt: int) -> str:
    return f"r{run_id}a{attempt}"


def ingest_staging_name(table: str, tag: str, batch_id: str) -> str:
    """At most 58 characters (PostgreSQL allows 63): room for the ``_p<n>`` of a direct-COPY part."""
    return f"{table[:23]}__{tag}_{batch_id}"


def transform_staging_name(table: str, tag: str) -> str:
    return f"{table[:40]}__{tag}_stg"


@dataclass
class Cleanup:
    """What one pass of the janitor removed."""

    relations: list[str] = field(default_factory=list)  # schema.name
    directories: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.relations or self.directories)


def live_attempts() -> set[tuple[int, int]]:
    """``(run, attempt)`` of every attempt that may still be creating tables: its run is running."""
    return set(PipelineRun.objects.filter(status=RunStatus.RUNNING).values_list("pk", "attempt"))


def dead_relations(relations: list[tuple[str, str, str]], live: set[tuple[int, int]]) -> list[tuple[str, str, str]]:
    """The tagged relations whose attempt is not live; sequences last (a part's default uses its sequence)."""
    dead = []
    for schema, name, kind in relations:
        m = TAG_RE.search(name)
        if m and (int(m[1]), int(m[2])) not in live:
            dead.append((schema, name, kind))
    return sorted(dead, key=lambda r: (r[2] == "sequence", r[1]))


def clean_up_attempts(*, temp_age_seconds: float | None = None) -> Cleanup:
    """Drop what attempts that are over left in the warehouse; remove load directories of gone processes."""
    done = Cleanup()
    wh = get_warehouse()
    live = live_attempts()
    for schema, name, kind in dead_relations(wh.relations([layer.value for layer in Layer]), live):
        try:
            wh.drop_relation(schema, name, kind)
        except WarehouseError as exc:  # a partition dropped with its parent, a lock: the next pass
            logger.warning("Janitor: could not drop %s %s.%s: %s", kind, schema, name, exc)
            continue
        done.relations.append(f"{schema}.{name}")
    age = settings.ATLAS_JANITOR_TEMP_AGE_SECONDS if temp_age_seconds is None else temp_age_seconds
    for base in (Path(tempfile.gettempdir()), Path(settings.VAR_DIR) / "tmp"):
        done.directories += _clean_dirs(base, age)
    if done:
        logger.info("Janitor removed %d relation(s) and %d directorie(s) of dead attempts.",
                    len(done.relations), len(done.directories))
    return done


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
