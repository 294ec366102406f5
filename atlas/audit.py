"""Recording and verifying the audit log (see ``atlas.models.AuditEvent``).

Three things must agree for the log to verify: the chain in the database (each
event's HMAC, keyed with ``ATLAS_AUDIT_KEY``, covers its content and the hash
before it), the head row, and the anchor outside the database
(``atlas.audit_anchor``). Whoever can write the database but holds neither the
key nor the anchor cannot edit, insert, delete or truncate without
``verify_audit_log`` naming the first bad event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction

from .audit_anchor import AnchorSink, anchor_on_commit, get_sink, pending_entries
from .audit_key import audit_key, previous_audit_keys
from .models import SCHEME_HMAC, SCHEME_SHA256, AuditEvent, AuditHead

GENESIS = "0" * 64


def _json_safe(detail: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(detail, cls=DjangoJSONEncoder, sort_keys=True))


def _actor_or_context(actor: Any) -> Any:
    """An explicit actor wins; else the request's user or an ``acting_as`` actor, if any."""
    if actor is not None:
        return actor
    from .audit_tracking import contextual_actor

    return contextual_actor()


def record(
    action: str, *, actor=None, target: models.Model | None = None, **detail: Any
) -> AuditEvent:
    """Append one event to the chain, atomically with the caller's transaction.

    The key is read first: without one (production, ``ATLAS_AUDIT_KEY`` unset) this
    raises before anything is written. The anchor line follows the commit.
    """
    key = audit_key()
    actor = _actor_or_context(actor)
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
        user = actor if getattr(actor, "is_authenticated", False) else None
        event = AuditEvent(
            seq=head.seq + 1,
            actor=user,
            actor_name=user.get_username() if user else (str(actor) if actor else ""),
            action=action,
            target_type=target._meta.label_lower if target is not None else "",
            target_id=str(target.pk) if target is not None else "",
            target_repr=str(target)[:300] if target is not None else "",
            detail=_json_safe(detail),
            prev_hash=head.hash,
            scheme=SCHEME_HMAC,
        )
        event.hash = event.compute_hash(key)
        event.save()
        AuditHead.objects.filter(pk=1).update(seq=event.seq, hash=event.hash)
        anchor_on_commit(event.seq, event.hash)
    return event


@dataclass(frozen=True)
class Problem:
    seq: int | None
    reason: str


def _ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted numbers, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def _span(first: int, last: int) -> str:
    return f"#{first}" if first == last else f"#{first}..#{last}"


def _read_anchor(sink: AnchorSink, problems: list[Problem]) -> tuple[bool, dict[int, str]]:
    """The anchored hashes by seq (with this transaction's pending ones), and whether any exist."""
    state = sink.read()
    where = sink.describe()
    anchored: dict[int, str] = {}
    entries = list(state.entries) + pending_entries()
    for seq, hash_ in entries:
        if anchored.setdefault(seq, hash_) != hash_:
            problems.append(
                Problem(seq, f"the {where} holds two different hashes for it (anchor edited)")
            )
    if state.malformed:
        lines = ", ".join(str(n) for n in state.malformed[:10])
        problems.append(
            Problem(None, f"the {where} has lines that are not 'seq hash': {lines} (anchor edited)")
        )
    return state.exists or bool(entries), anchored


@dataclass
class _Walk:
    """What walking the chain in order has learnt so far."""

    key: bytes | None
    anchored: dict[int, str]
    where: str
    problems: list[Problem] = field(default_factory=list)
    expected_prev: str = GENESIS
    expected_seq: int = 1
    keyed: list[int] = field(default_factory=list)
    unanchored: list[int] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    key_index: int = 0
    _keys: list[bytes] | None = None

    def bad(self, seq: int | None, reason: str) -> None:
        self.problems.append(Problem(seq, reason))

    def check(self, event: AuditEvent) -> None:
        seq = event.seq
        self.seen.add(seq)
        if seq != self.expected_seq:
            self.bad(
                seq, f"expected event #{self.expected_seq} next, found #{seq} (deleted or inserted)"
            )
        if event.prev_hash != self.expected_prev:
            self.bad(
                seq,
                "its link to the previous event does not match"
                " (an event before it changed or went)",
            )
        self.check_hash(event)
        if seq in self.anchored:
            if self.anchored[seq] != event.hash:
                self.bad(
                    seq,
                    f"its hash differs from the one in the {self.where} (rewritten after commit)",
                )
        elif event.scheme == SCHEME_HMAC:
            self.unanchored.append(seq)
        self.expected_prev, self.expected_seq = event.hash, seq + 1

    def check_hash(self, event: AuditEvent) -> None:
        if event.scheme == SCHEME_SHA256 and self.keyed:
            self.bad(
                event.seq,
                "an unkeyed (scheme 1) event after keyed ones (downgraded to recompute it)",
            )
            return
        if event.scheme not in (SCHEME_SHA256, SCHEME_HMAC):
            self.bad(event.seq, f"unknown hash scheme {event.scheme} (edited)")
            return
        if event.scheme == SCHEME_SHA256:
            if event.compute_hash(None) != event.hash:
                self.bad(event.seq, "its content does not match its hash (edited)")
            return
        self.keyed.append(event.seq)
        keys = self.keys()
        for index in range(self.key_index, len(keys)):  # never back to a key retired before
            if event.compute_hash(keys[index]) == event.hash:
                self.key_index = index
                return
        why = "edited, or recomputed without ATLAS_AUDIT_KEY (or this process has another key)"
        if self.key_index:
            why += "; events after a key rotation verify with the newer keys only"
        self.bad(event.seq, f"its content does not match its hash ({why})")

    def keys(self) -> list[bytes]:
        """The keys, oldest first: the retired ones, then the current one (read at the first keyed event)."""
        if self._keys is None:
            self._keys = [self.key] if self.key is not None else [*previous_audit_keys(), audit_key()]
        return self._keys


def _walk_log(key: bytes | None, sink: AnchorSink) -> tuple[_Walk, bool]:
    """Walk the chain against the head and the anchor; every problem but the unanchored events."""
    problems: list[Problem] = []
    anchor_exists, anchored = _read_anchor(sink, problems)
    walk = _Walk(key=key, anchored=anchored, where=sink.describe(), problems=problems)
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        walk.check(event)
    last = walk.expected_seq - 1
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != last or head.hash != walk.expected_prev):
        walk.bad(
            head.seq,
            f"the chain ends at #{last} but the head says #{head.seq} (events at the end deleted)",
        )
    for first, end in _ranges(set(anchored) - walk.seen):
        walk.bad(
            first,
            f"event(s) {_span(first, end)} are in the {walk.where} but missing from the database "
            "(deleted, or the table truncated)",
        )
    return walk, anchor_exists


def verify(*, key: bytes | None = None, sink: AnchorSink | None = None) -> list[Problem]:
    """Every place where the chain, the head or the anchor do not hold, in order of the events.

    ``key`` defaults to ``ATLAS_AUDIT_KEY`` (read only once a keyed event is met, so a
    log of old events alone verifies without it); ``sink`` to the configured anchor.
    Memory grows with the anchor (one hash per event), not with the events' content.
    """
    walk, anchor_exists = _walk_log(key, sink or get_sink())
    if walk.keyed and not anchor_exists:
        walk.bad(
            walk.keyed[0],
            f"the {walk.where} is missing, but the database holds {len(walk.keyed)} "
            "keyed event(s) (anchor deleted)",
        )
    elif walk.unanchored:
        for first, end in _ranges(walk.unanchored):
            walk.bad(
                first,
                f"event(s) {_span(first, end)} are not in the {walk.where} "
                "(anchor truncated, or its write failed: see the log)",
            )
    walk.problems.sort(key=lambda p: -1 if p.seq is None else p.seq)
    return walk.problems


class AnchorRepairRefused(Exception):
    """The log has problems other than an unanchored tail; anchoring now would hide them."""


def anchor_unanchored_tail(*, key: bytes | None = None, sink: AnchorSink | None = None) -> list[int]:
    """Anchor the events at the end of the chain that a crash left unanchored; return their seqs.

    A process that dies between its commit and its anchor write leaves keyed events
    that ``verify`` reports as not anchored. Anchoring them afterwards is safe only
    when nothing else is wrong: the chain, every HMAC (so the key's holder wrote them)
    and the head verify, the anchor exists, and the unanchored events are the tail
    (after the last anchored one). A gap in the middle, or any other problem, is
    evidence and is refused. The repair is itself an audit event.
    """
    sink = sink or get_sink()
    walk, anchor_exists = _walk_log(key, sink)
    if walk.problems:
        first = first_bad_event(walk.problems)
        raise AnchorRepairRefused(
            f"The audit log has {len(walk.problems)} problem(s) besides unanchored events"
            + (f" (first bad event: #{first})" if first is not None else "")
            + "; anchoring now would hide them. Run verify_audit_log and investigate."
        )
    if not walk.unanchored:
        return []
    if walk.keyed and not anchor_exists:
        raise AnchorRepairRefused(f"The {walk.where} is missing: it is evidence, not a crash; restore it.")
    if walk.anchored and min(walk.unanchored) < max(walk.anchored):
        raise AnchorRepairRefused(
            f"Events {_span(*_ranges(walk.unanchored)[0])} are missing from the middle of the"
            f" {walk.where} (anchor cut or edited): only a tail left by a crash may be anchored."
        )
    hashes = dict(AuditEvent.objects.filter(seq__in=walk.unanchored).values_list("seq", "hash"))
    for seq in walk.unanchored:
        sink.append(seq, hashes[seq])
    first, last = walk.unanchored[0], walk.unanchored[-1]
    record("audit.anchor_repaired", first_seq=first, last_seq=last, count=len(walk.unanchored))
    return list(walk.unanchored)


def first_bad_event(problems: list[Problem]) -> int | None:
    seqs = [p.seq for p in problems if p.seq is not None]
    return min(seqs) if seqs else None
