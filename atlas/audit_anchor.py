"""The audit log's anchor: (seq, hash) of every committed event, kept outside the database.

A chain in the database alone can be cut at the end (delete the last events, move
the head back) or rebuilt by whoever holds the key. The anchor is a second,
append-only record elsewhere: ``verify_audit_log`` requires every anchored event
to be in the database with the same hash, and every keyed event to be anchored.

The default sink is a file (``ATLAS_AUDIT_ANCHOR_PATH``, default
``ATLAS_VAR_DIR/audit/anchor.log``): one ``"<seq> <hash>\\n"`` line per event,
written with a single ``write`` on an ``O_APPEND`` descriptor, so lines of
several processes never interleave (they may land out of order; the reader sorts).
With ``ATLAS_AUDIT_ANCHOR_FSYNC`` (default on) each line is fsync'd before the
request goes on. Put the file on storage the database's operators cannot rewrite
(another host, a WORM or append-only mount: ``chattr +a``), or plug another sink
(``ATLAS_AUDIT_ANCHOR_SINK``: a class with ``append``, ``read`` and ``describe``).

Lines are written after the transaction commits (``transaction.on_commit``): a
rolled-back event leaves no anchor. A crash between commit and write leaves an
unanchored tail, which ``verify_audit_log`` reports.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.db import connections
from django.utils.module_loading import import_string

logger = logging.getLogger("atlas.audit")

LINE_RE = re.compile(r"^(\d+) ([0-9a-f]{64})$")


@dataclass
class AnchorState:
    """What a sink holds: whether it exists at all, its entries, and unreadable line numbers."""

    exists: bool
    entries: list[tuple[int, str]] = field(default_factory=list)
    malformed: list[int] = field(default_factory=list)


class AnchorSink(Protocol):
    def append(self, seq: int, hash_: str) -> None: ...

    def read(self) -> AnchorState: ...

    def describe(self) -> str: ...


def anchor_path() -> Path:
    configured = getattr(settings, "ATLAS_AUDIT_ANCHOR_PATH", "")
    return Path(configured) if configured else Path(settings.VAR_DIR) / "audit" / "anchor.log"


class FileAnchor:
    """An append-only file of ``seq hash`` lines."""

    def __init__(self, path: Path | None = None, fsync: bool | None = None) -> None:
        self.path = path or anchor_path()
        self.fsync = getattr(settings, "ATLAS_AUDIT_ANCHOR_FSYNC", True) if fsync is None else fsync

    def describe(self) -> str:
        return f"anchor file {self.path}"

    def append(self, seq: int, hash_: str) -> None:
        line = f"{int(seq)} {hash_}\n".encode()
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)  # one write of a whole short line: atomic with O_APPEND
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if created and self.fsync:
            _fsync_dir(self.path.parent)

    def read(self) -> AnchorState:
        try:
            text = self.path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return AnchorState(exists=False)
        state = AnchorState(exists=True)
        for number, line in enumerate(text.splitlines(), start=1):
            match = LINE_RE.match(line)
            if match:
                state.entries.append((int(match[1]), match[2]))
            else:
                state.malformed.append(number)
        return state


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def get_sink() -> AnchorSink:
    """The configured sink, built on each call so a settings change (tests) takes effect."""
    return import_string(
        getattr(settings, "ATLAS_AUDIT_ANCHOR_SINK", "atlas.audit_anchor.FileAnchor")
    )()


class PendingAnchor:
    """The ``on_commit`` callback that anchors one event once its transaction committed."""

    def __init__(self, seq: int, hash_: str) -> None:
        self.seq, self.hash = seq, hash_

    def __call__(self) -> None:
        try:
            get_sink().append(self.seq, self.hash)
        except Exception:  # the event is committed; say loudly that its anchor is missing
            logger.exception(
                "Could not anchor audit event #%s: it is in the database but not in the anchor, "
                "and "
                "verify_audit_log will report it. Check the anchor's storage (disk, permissions).",
                self.seq,
            )


def anchor_on_commit(seq: int, hash_: str, using: str = "default") -> None:
    from django.db import transaction

    transaction.on_commit(PendingAnchor(seq, hash_), using=using)


def pending_entries(using: str = "default") -> list[tuple[int, str]]:
    """Anchors this connection will write when its open transaction commits.

    ``verify`` run inside a transaction sees that transaction's own new events; it
    counts their anchors as written (they will be, at commit). Outside a
    transaction (``manage.py verify_audit_log``) there are none.
    """
    pending = getattr(connections[using], "run_on_commit", None) or []
    return [(item[1].seq, item[1].hash) for item in pending if isinstance(item[1], PendingAnchor)]
