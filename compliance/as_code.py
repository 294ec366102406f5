"""Compliance's definitions as code (``atlas.definitions``): each Chart dataset's column policies.

Written inside the dataset (``column_policies``). A policy applied by default from a finding
nobody reviewed yet (privacy by default) is Atlas's, not a definition: it is not exported, and
a project's policy for that column replaces it, as a steward's edit in the admin does.
"""

from __future__ import annotations

from atlas import audit
from atlas.definitions.specs import Kind

from .models import ColumnPolicy


def set_by_steward(policy: ColumnPolicy) -> None:
    policy.by_default, policy.default_for = False, None


def audit_applied(policies: list[ColumnPolicy]) -> None:
    """The PII audit trail of each policy an apply set or deleted, as the admin records it."""
    from .policies import record_policy_change

    for policy in policies:
        change = policy.definition_change
        if change.action == "delete":  # the policy (and perhaps its dataset) is gone: named by its key
            audit.record("pii.policy.deleted", dataset=change.key[0], column=policy.column, policy=policy.action,
                         origin="atlas apply")
        else:
            before = {n: old for n, (old, _new) in change.fields.items()} if change.action == "update" else None
            record_policy_change(policy, actor=None, before=before)


KINDS = [
    Kind(
        "column_policies", ColumnPolicy, key=("column",), parent=("dataset", "datasets"),
        leave_out=frozenset({"proposed", "by_default", "default_for", "updated_by"}),
        include=lambda qs: qs.filter(by_default=False), before_save=set_by_steward, after_apply=audit_applied,
        order=42,
    )
]
