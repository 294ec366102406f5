"""Retention's definitions as code (``atlas.definitions``): a dataset's retention policy and record of processing.

Each at most one per dataset, written inside it (``retention``, ``processing_record``). A project
may set the retention of a dataset that was never loaded: its column is checked when the
columns are known (the policy's status says "cannot be checked" until then).
"""

from __future__ import annotations

from atlas.definitions.specs import Kind

from .models import ProcessingRecord, RetentionPolicy


def columns_may_be_unknown(policy: RetentionPolicy) -> None:
    policy.columns_may_be_unknown = True


KINDS = [
    Kind("retention", RetentionPolicy, key=(), parent=("dataset", "datasets"), single=True,
         before_save=columns_may_be_unknown, order=44),
    Kind("processing_record", ProcessingRecord, key=(), parent=("dataset", "datasets"), single=True, order=45),
]
