"""Compliance's definitions as code (``atlas.definitions``): each Chart dataset's column policies.

Written inside the dataset (``column_policies``). A policy applied by default from a finding
nobody reviewed yet (privacy by default) is Atlas's, not a definition: it is not exported, and
a project's policy for that column replaces it, as a steward's edit in the admin does.
"""

from __future__ import annotations

from atlas.definitions.specs import Kind

from .models import ColumnPolicy


def set_by_steward(policy: ColumnPolicy) -> None:
    policy.by_default, policy.default_for = False, None


KINDS = [
    Kind(
        "column_policies", ColumnPolicy, key=("column",), parent=("dataset", "datasets"),
        leave_out=frozenset({"proposed", "by_default", "default_for", "updated_by"}),
        include=lambda qs: qs.filter(by_default=False), before_save=set_by_steward, order=42,
    )
]
