"""Retention's definitions as code (``atlas.definitions``): a dataset's retention policy and record of processing.

Each at most one per dataset, written inside it (``retention``, ``processing_record``). A project
may set the retention of a dataset that was never loaded: its column is checked when the
columns are known (the policy's status says "cannot be checked" until then).
"""

from __future__ import annotations

from atlas import audit
from atlas.definitions.specs import Kind

from .models import ProcessingRecord, RetentionPolicy

VERB = {"create": "created", "update": "changed", "delete": "deleted"}


def columns_may_be_unknown(policy: RetentionPolicy) -> None:
    policy.columns_may_be_unknown = True


def _dataset(obj):
    """The dataset, as the admin's events name it; none for a deletion (the dataset may be gone too)."""
    return None if obj.definition_change.action == "delete" else obj.dataset


def audit_policies(policies: list[RetentionPolicy]) -> None:
    """``retention.policy_created|changed|deleted`` for each policy an apply wrote, as the admin records it."""
    for policy in policies:
        change = policy.definition_change
        audit.record(f"retention.policy_{VERB[change.action]}", target=_dataset(policy), dataset=change.key[0],
                     column=policy.column,
                     period_days=policy.period_days, policy_action=policy.action, enabled=policy.enabled,
                     origin="atlas apply")


def audit_records(records: list[ProcessingRecord]) -> None:
    for record in records:
        change = record.definition_change
        audit.record(f"retention.record_{VERB[change.action]}", target=_dataset(record), dataset=change.key[0],
                     legal_basis=record.legal_basis, origin="atlas apply")


KINDS = [
    Kind("retention", RetentionPolicy, key=(), parent=("dataset", "datasets"), single=True,
         before_save=columns_may_be_unknown, after_apply=audit_policies, order=44),
    Kind("processing_record", ProcessingRecord, key=(), parent=("dataset", "datasets"), single=True,
         after_apply=audit_records, order=45),
]
