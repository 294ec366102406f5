"""Attacks on the audit log by someone who can write the database (issue 12).

Each attack must be detected by ``verify`` and ``verify_audit_log`` (exit 1),
naming the first bad event: the chain is keyed with ATLAS_AUDIT_KEY (outside the
database) and every committed event is anchored outside the database.
"""

import hashlib
import hmac
import json
import os

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from atlas import audit
from atlas.audit_anchor import FileAnchor
from atlas.models import AuditEvent, AuditHead


@pytest.fixture
def anchor(settings, tmp_path):
    settings.ATLAS_AUDIT_ANCHOR_PATH = str(tmp_path / "audit" / "anchor.log")
    return FileAnchor()


@pytest.fixture
def chain(transactional_db, anchor):
    """Five committed, anchored events (real commits: the anchor follows each one)."""
    events = [
        audit.record("policy.change", actor="steward", column="email", policy=f"p{i}")
        for i in range(5)
    ]
    assert len(anchor.read().entries) == 5
    return events


def _raw(sql, params=()):
    with connection.cursor() as cur:
        cur.execute(sql, params)


def _first_bad() -> int | None:
    return audit.first_bad_event(audit.verify())


def _command_fails_at(seq: int) -> None:
    with pytest.raises(CommandError, match=rf"does not verify: .* First bad event: #{seq}\."):
        call_command("verify_audit_log")


def _recompute_from(seq: int, hasher) -> None:
    """What an attacker does after an edit: rehash every later event and move the head."""
    events = list(AuditEvent.objects.filter(seq__gte=seq).order_by("seq"))
    prev = AuditEvent.objects.get(seq=seq - 1).hash if seq > 1 else audit.GENESIS
    for event in events:
        event.prev_hash = prev
        canonical = json.dumps(event.content(), sort_keys=True, separators=(",", ":")).encode()
        new = hasher(canonical)
        _raw(
            "UPDATE atlas_auditevent SET prev_hash = %s, hash = %s WHERE seq = %s",
            [prev, new, event.seq],
        )
        prev = new
    _raw("UPDATE atlas_audithead SET seq = %s, hash = %s WHERE id = 1", [events[-1].seq, prev])


def _edit_payload(seq: int) -> None:
    _raw(
        "UPDATE atlas_auditevent SET detail = %s WHERE seq = %s",
        [json.dumps({"column": "email", "policy": "keep"}), seq],
    )


def test_the_untouched_log_verifies(chain, capsys):
    assert audit.verify() == []
    call_command("verify_audit_log")
    assert "5 events, chain intact" in capsys.readouterr().out


def test_an_edited_payload_is_detected(chain):
    _edit_payload(3)
    problems = audit.verify()
    assert [p.seq for p in problems] == [3] and "edited" in problems[0].reason
    _command_fails_at(3)


def test_an_edit_with_every_later_hash_recomputed_without_the_key_is_detected(chain):
    _edit_payload(3)
    _recompute_from(3, lambda data: hashlib.sha256(data).hexdigest())  # the old, unkeyed chain
    assert _first_bad() == 3
    _command_fails_at(3)


def test_an_edit_recomputed_with_a_wrong_key_is_detected(chain):
    _edit_payload(3)
    _recompute_from(3, lambda data: hmac.new(b"guessed-key", data, hashlib.sha256).hexdigest())
    assert _first_bad() == 3
    _command_fails_at(3)


def test_an_edit_recomputed_with_the_right_key_is_caught_by_the_anchor(chain, settings):
    """Even a leaked key does not suffice: the anchor outside the database still differs."""
    _edit_payload(3)
    key = settings.ATLAS_AUDIT_KEY.encode()
    _recompute_from(3, lambda data: hmac.new(key, data, hashlib.sha256).hexdigest())
    problems = audit.verify()
    assert problems[0].seq == 3 and "differs from the one in the anchor" in problems[0].reason
    _command_fails_at(3)


def test_downgrading_events_to_the_unkeyed_scheme_is_detected(chain):
    _raw("UPDATE atlas_auditevent SET scheme = 1 WHERE seq >= 3")
    _edit_payload(3)
    _recompute_from(3, lambda data: hashlib.sha256(data).hexdigest())
    assert _first_bad() == 3


def test_an_inserted_event_is_detected(chain):
    last = AuditEvent.objects.get(seq=5)
    forged = AuditEvent(
        seq=6, action="policy.change", actor_name="mallory", prev_hash=last.hash, detail={}
    )
    forged.hash = forged.compute_hash(b"guessed-key")
    forged.save()
    _raw("UPDATE atlas_audithead SET seq = 6, hash = %s WHERE id = 1", [forged.hash])
    problems = audit.verify()
    assert problems and problems[0].seq == 6
    _command_fails_at(6)


def test_deleting_the_last_event_and_moving_the_head_back_is_detected(chain):
    _raw("DELETE FROM atlas_auditevent WHERE seq = 5")
    _raw(
        "UPDATE atlas_audithead SET seq = 4, hash = %s WHERE id = 1",
        [AuditEvent.objects.get(seq=4).hash],
    )
    problems = audit.verify()
    assert [p.seq for p in problems] == [5] and "missing from the database" in problems[0].reason
    _command_fails_at(5)


def test_deleting_an_event_in_the_middle_is_detected(chain):
    _raw("DELETE FROM atlas_auditevent WHERE seq = 3")
    assert _first_bad() == 3
    _command_fails_at(3)


def test_truncating_the_table_is_detected(chain):
    _raw("DELETE FROM atlas_auditevent")
    _raw("DELETE FROM atlas_audithead")
    problems = audit.verify()
    assert problems[0].seq == 1 and "#1..#5 are in the anchor file" in problems[0].reason
    _command_fails_at(1)


def test_a_deleted_anchor_file_is_reported_as_such(chain, anchor):
    os.remove(anchor.path)
    problems = audit.verify()
    assert [p.seq for p in problems] == [1] and "anchor file" in problems[0].reason
    assert "is missing" in problems[0].reason
    _command_fails_at(1)


def test_a_truncated_anchor_file_is_reported_as_such(chain, anchor):
    lines = anchor.path.read_text().splitlines(keepends=True)
    anchor.path.write_text("".join(lines[:2]))
    problems = audit.verify()
    assert [p.seq for p in problems] == [3] and "#3..#5 are not in the anchor file" in problems[
        0
    ].reason
    _command_fails_at(3)


def test_an_edited_anchor_line_is_reported(chain, anchor):
    with open(anchor.path, "a") as fh:
        fh.write("not a line\n")
    assert any("not 'seq hash'" in p.reason for p in audit.verify())


def test_a_rolled_back_event_leaves_no_anchor(transactional_db, anchor):
    audit.record("kept")
    with pytest.raises(RuntimeError), transaction.atomic():
        audit.record("rolled.back")
        raise RuntimeError("boom")
    assert [seq for seq, _ in anchor.read().entries] == [1]
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["kept"]
    assert audit.verify() == []


def test_the_anchor_appends_whole_lines(anchor):
    for seq in (2, 1, 3):  # several processes: lines may land out of order
        anchor.append(seq, f"{seq:064x}")
    assert sorted(anchor.read().entries) == [(1, f"{1:064x}"), (2, f"{2:064x}"), (3, f"{3:064x}")]
    assert anchor.read().malformed == []


def test_verifying_with_a_different_key_names_the_first_keyed_event(chain, settings):
    settings.ATLAS_AUDIT_KEY = "another-key-" + "x" * 40
    assert _first_bad() == 1


def test_without_a_key_in_production_the_first_write_fails_loudly_and_writes_nothing(db, settings):
    settings.ATLAS_AUDIT_KEY, settings.ATLAS_AUDIT_KEY_IS_DEVELOPMENT = "", False
    with pytest.raises(ImproperlyConfigured, match="ATLAS_AUDIT_KEY is not set"):
        audit.record("anything")
    assert not AuditEvent.objects.exists() and not AuditHead.objects.exists()


def test_a_short_key_in_production_is_refused(db, settings):
    settings.ATLAS_AUDIT_KEY, settings.ATLAS_AUDIT_KEY_IS_DEVELOPMENT = "short", False
    with pytest.raises(ImproperlyConfigured, match="too short"):
        audit.record("anything")


def test_events_of_the_unkeyed_chain_still_verify_and_the_keyed_chain_continues_them(
    transactional_db, anchor
):
    """An upgraded installation: old scheme-1 events, then keyed ones linked to them."""
    prev = audit.GENESIS
    for seq in (1, 2):
        old = AuditEvent(
            seq=seq,
            action="old.event",
            actor_name="ops",
            prev_hash=prev,
            detail={"n": seq},
            scheme=1,
        )
        old.hash = old.compute_hash()
        old.save()
        prev = old.hash
    AuditHead.objects.create(pk=1, seq=2, hash=prev)
    new = audit.record("new.event")
    assert new.seq == 3 and new.prev_hash == prev and new.scheme == 2
    assert audit.verify() == []
    # Editing an old event breaks the keyed event's link (not recomputable without the key).
    _raw("UPDATE atlas_auditevent SET detail = %s WHERE seq = 1", [json.dumps({"n": 9})])
    _recompute_from(1, lambda data: hashlib.sha256(data).hexdigest())
    assert _first_bad() == 3


# --- repairing a tail a crash left unanchored -------------------------------------------


def _crash_before_anchor(anchor, n: int) -> None:
    """What a process killed between its commit and its anchor write leaves: n unanchored events."""
    lines = anchor.path.read_text().splitlines(keepends=True)
    anchor.path.write_text("".join(lines[:-n]))


def test_a_tail_left_unanchored_by_a_crash_is_anchored_on_request_and_recorded(chain, anchor):
    _crash_before_anchor(anchor, 2)
    assert _first_bad() == 4
    assert audit.anchor_unanchored_tail() == [4, 5]
    assert audit.verify() == []
    repair = AuditEvent.objects.order_by("-seq").first()
    assert repair.action == "audit.anchor_repaired"
    assert repair.detail == {"count": 2, "first_seq": 4, "last_seq": 5}
    assert audit.anchor_unanchored_tail() == []  # idempotent


def test_the_command_anchors_the_tail_then_verifies(chain, anchor, capsys):
    _crash_before_anchor(anchor, 1)
    call_command("verify_audit_log", "--anchor-tail")
    out = capsys.readouterr().out
    assert "Anchored 1 event(s): #5..#5." in out and "The audit log verifies" in out


def test_a_gap_in_the_middle_of_the_anchor_is_not_repaired(chain, anchor):
    lines = anchor.path.read_text().splitlines(keepends=True)
    anchor.path.write_text("".join(lines[:2] + lines[3:]))  # #3 cut out
    before = anchor.path.read_text()
    with pytest.raises(audit.AnchorRepairRefused, match="middle"):
        audit.anchor_unanchored_tail()
    with pytest.raises(CommandError, match="middle"):
        call_command("verify_audit_log", "--anchor-tail")
    assert anchor.path.read_text() == before
    assert AuditEvent.objects.count() == 5


def test_an_edited_log_is_not_repaired_even_if_its_tail_is_unanchored(chain, anchor):
    _crash_before_anchor(anchor, 1)
    _edit_payload(2)
    before = anchor.path.read_text()
    with pytest.raises(audit.AnchorRepairRefused, match="first bad event: #2"):
        audit.anchor_unanchored_tail()
    assert anchor.path.read_text() == before


def test_a_deleted_anchor_is_not_recreated(chain, anchor):
    os.remove(anchor.path)
    with pytest.raises(audit.AnchorRepairRefused, match="missing"):
        audit.anchor_unanchored_tail()
    assert not anchor.path.exists()


# --- key rotation -------------------------------------------------------------------------

NEW_KEY = "rotated-key-" + "n" * 40


def _rotate(settings) -> str:
    old = settings.ATLAS_AUDIT_KEY
    settings.ATLAS_AUDIT_PREVIOUS_KEYS = [old]
    settings.ATLAS_AUDIT_KEY = NEW_KEY
    return old


def test_after_a_rotation_old_and_new_events_verify(chain, settings, capsys):
    _rotate(settings)
    audit.record("after.rotation")
    assert audit.verify() == []
    call_command("verify_audit_log")
    assert "7 events" not in capsys.readouterr().err


def test_a_retired_key_cannot_sign_events_after_the_rotation(chain, settings):
    old = _rotate(settings)
    audit.record("after.rotation")  # #6, under the new key
    audit.record("after.rotation")  # #7
    # An attacker holding only the retired key rewrites #7 and anchors nothing new.
    event = AuditEvent.objects.get(seq=7)
    event.detail = {"forged": True}
    forged = event.compute_hash(old.encode())
    _raw("UPDATE atlas_auditevent SET detail = %s, hash = %s WHERE seq = 7", [json.dumps({"forged": True}), forged])
    _raw("UPDATE atlas_audithead SET hash = %s WHERE id = 1", [forged])
    problems = audit.verify()
    assert audit.first_bad_event(problems) == 7
    assert any("newer keys only" in p.reason for p in problems)


def test_forgetting_the_retired_key_names_the_first_old_event(chain, settings):
    _rotate(settings)
    audit.record("after.rotation")
    settings.ATLAS_AUDIT_PREVIOUS_KEYS = []
    assert _first_bad() == 1
