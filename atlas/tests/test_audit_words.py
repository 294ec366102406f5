"""Audit events in words (issue 18, item 7): the audit log reads as sentences, not action codes and JSON."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from atlas import audit, audit_words
from atlas.models import AuditEvent


def event(action: str, detail=None, target: str = "", target_type: str = "", actor: str = "alice") -> AuditEvent:
    return AuditEvent(action=action, detail=detail if detail is not None else {}, target_repr=target,
                      target_type=target_type, actor_name=actor)


# --- failure paths first: whatever shape an event has, it reads as words, never a code or a crash

@pytest.mark.parametrize("detail", [None, "not a mapping", [1, 2], {"tables": "three"}, {"tables": {"a": "x"}}])
def test_an_event_of_an_unexpected_shape_still_reads_as_words(detail):
    text = audit_words.sentence(event("dsr.erasure.deleted", detail, "DSR #12 (erasure)"))
    assert text.startswith("alice ") and "DSR #12" in text and "dsr." not in text and "{" not in text


def test_an_action_without_its_own_sentence_reads_as_its_verb_and_target():
    assert audit_words.sentence(event("pipelines.thing.confirmed", target="orders")) == "alice confirmed thing orders"
    assert audit_words.sentence(event("something.new")) == "alice something new"


def test_an_event_no_user_caused_is_atlas_s():
    assert audit_words.sentence(event("pipeline.run", {"run_id": 4, "trigger": "schedule"}, "ecommerce", actor="")) == (
        "Atlas started run #4 of pipeline ecommerce, from schedule"
    )


def test_a_sentence_says_only_names_and_counts_the_event_recorded():
    """A view in clear records its columns and rows; the sentence counts them and shows no value."""
    text = audit_words.sentence(event("pii.view_clear", {"columns": ["email", "phone"], "rows": 20}, "chart.customers"))
    assert text == "alice viewed 2 PII columns in clear in chart.customers (20 rows)"


# --- the sentences

@pytest.mark.parametrize(
    ("action", "detail", "target", "words"),
    [
        ("dsr.erasure.deleted", {"tables": {"chart.customers": 1, "navigate.orders": 30, "explore.raw": 10}},
         "DSR #12 (erasure)", "alice erased the subject of DSR #12 (erasure) from 3 tables (41 rows)"),
        ("dsr.erasure.verified", {"tables": 3, "rows_found": 0, "residue": []}, "DSR #12 (erasure)",
         "alice verified the erasure of DSR #12 (erasure): 3 tables read, nothing left"),
        ("dsr.erasure.verified", {"tables": 3, "residue": [{"table": "t"}]}, "DSR #12 (erasure)",
         "alice checked the erasure of DSR #12 (erasure): 3 tables read, rows left in 1 table"),
        ("pii.finding.confirmed", {"dataset": "customers", "column": "email", "entity": "EMAIL_ADDRESS"}, "f",
         "alice confirmed the EMAIL_ADDRESS finding on customers.email"),
        ("pii.policy.set", {"column": "email", "policy": "hash"}, "chart.customers.email",
         "alice set hash on column email"),
        ("dsr.key.confirmed", {"dataset": "customers", "column": "email", "kind": "email"}, "k",
         "alice confirmed customers.email as a subject key (email)"),
        ("pipeline.cancel", {"run_id": 9, "outcome": "cancelled_queued"}, "ecommerce",
         "alice cancelled run #9 of pipeline ecommerce (cancelled queued)"),
        ("dataset.downloaded", {"columns": ["a", "b", "c"], "format": "csv"}, "orders",
         "alice downloaded orders as CSV (3 columns)"),
        ("retention.applied", {"status": "succeeded", "rows_removed": 1200, "partitions_dropped": 2}, "events",
         "alice applied retention to events: 1,200 rows removed, 2 partitions dropped"),
        ("definitions.apply", {"created": ["a", "b"], "updated": [], "deleted": ["c"]}, "",
         "alice applied definitions from files: 2 created, 1 deleted"),
        ("quality.reprocess", {"selected": 24, "published": 20, "requarantined": 4}, "orders",
         "alice re-processed 24 quarantined rows of orders: 20 published, 4 quarantined again"),
    ],
)
def test_events_in_sentences(action, detail, target, words):
    assert audit_words.sentence(event(action, detail, target)) == words


def test_a_tracked_change_names_the_model_and_the_fields_changed(db):
    text = audit_words.sentence(event(
        "pipelines.pipeline.updated", {"changes": {"description": {"from": "", "to": "x"}, "schedule": "changed"}},
        "ecommerce", "pipelines.pipeline",
    ))
    assert text == "alice changed pipeline ecommerce: description, schedule"
    assert audit_words.sentence(event("pipelines.dataset.created", {"fields": {}}, "orders", "pipelines.dataset")) == (
        "alice created dataset orders"
    )


def test_the_detail_reads_as_labelled_lines():
    lines = audit_words.detail_lines({"tables": {"chart.c": 1}, "full_refresh": True, "changes": {"name": {"from": "a", "to": "b"}}})
    assert lines == [("tables", "chart.c: 1"), ("full refresh", "yes"), ("changes", "name: a → b")]
    assert audit_words.detail_lines({}) == [] and audit_words.detail_lines(None) == []


# --- where they are listed: the audit log's pages

def test_the_audit_log_lists_real_events_as_sentences_and_files_them_in_words(db, admin_client):
    from privacy.models import DataSubjectRequest

    alice = get_user_model().objects.create_user("alice", password="pw-123456-x")
    now = timezone.now()
    req = DataSubjectRequest.objects.create(kind="erasure", identifiers={"email": ["ann@example.com"]},
                                            received_at=now, due_at=now + timedelta(days=30))
    # as privacy.service.erase records it
    audit.record("dsr.erasure.deleted", actor=alice, target=req,
                 tables={"chart.customers": 1, "navigate.orders": 3, "explore.raw_customers": 1},
                 keys={"chart.customers": ["email"]})
    page = admin_client.get(reverse("admin:atlas_auditevent_changelist")).content.decode()
    assert f"alice erased the subject of DSR #{req.pk} (erasure) from 3 tables (5 rows)" in page
    assert "ann@example.com" not in page
    assert ">Erased data-subject erasure<" not in page  # the filter lists events in words, not codes
    assert 'href="?action=dsr.erasure.deleted"' in page and "dsr.erasure.deleted</a>" not in page

    detail = admin_client.get(reverse("admin:atlas_auditevent_change", args=[AuditEvent.objects.get(action="dsr.erasure.deleted").pk])).content.decode()
    assert f"alice erased the subject of DSR #{req.pk} (erasure) from 3 tables (5 rows)" in detail
    tables = re.search(r"<dt>tables</dt><dd>([^<]*)</dd>", detail).group(1)  # jsonb keeps no key order
    assert sorted(tables.split("; ")) == ["chart.customers: 1", "explore.raw_customers: 1", "navigate.orders: 3"]
    seq = AuditEvent.objects.get(action="dsr.erasure.deleted").seq
    assert f"<title>alice erased the subject of DSR #{req.pk} (erasure) from 3 tables (5 rows) | Event #{seq} |" in detail
    assert "The record as hashed" in detail  # the stored record stays, folded, for whoever checks the chain
