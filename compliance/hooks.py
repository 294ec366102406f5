"""The compliance step hook: protect Chart-bound columns, gate publishing, scan after ingest.

Contributed by this app (``ComplianceConfig.contributes``) and first of the step
hooks (``order`` 100): before quality, so checks see the protected values, and
before lineage, which marks the protected columns' edges as masking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from pipelines.hooks import GateFailed, RunContext, StepContext
from pipelines.models import RunStatus, Step

from .detection import scan_dataset
from .models import ColumnPolicy, PiiScan
from .policies import (
    PolicyError,
    anonymise_text_columns,
    apply_hash_policies,
    hashed_columns,
    protect_by_default,
    protect_select,
    unprotected_columns,
)

logger = logging.getLogger(__name__)
# Policy actions that leave the value in clear (the column is not masked in lineage).
CLEAR_ACTIONS = {"keep", "absent"}


@dataclass
class PiiState:
    """Compliance's own state of a step run (``ctx.slot(PiiState)``): the policies applied, by column."""

    policies: dict[str, str] = field(default_factory=dict)  # column -> action


class PiiHook:
    """Applies column policies in refine steps and classifies what ingest steps load."""

    order = 100

    def prepare(self, ctx: StepContext) -> None:
        if ctx.step.kind != Step.Kind.REFINE or ctx.select_sql is None:
            return
        # Privacy by default: the unreviewed findings this step reads are protected before it writes Chart.
        protect_by_default(steps=[ctx.step])
        try:
            ctx.select_sql, applied = protect_select(ctx.select_sql, ctx.step.output, ctx.warehouse)
        except PolicyError as exc:
            raise GateFailed(f"PII policies of {ctx.step.output.name}: {exc}") from exc
        if applied:
            ctx.slot(PiiState).policies = applied
            ctx.masked_columns |= {column for column, action in applied.items() if action not in CLEAR_ACTIONS}
            if hashed_columns(applied):
                # Staged in clear until ``staged`` hashes them: the operator-SQL role may not read it.
                ctx.staging_private = True
            ctx.step_run.details = {**(ctx.step_run.details or {}), "pii_policies": applied}

    def staged(self, ctx: StepContext) -> None:
        if ctx.step.kind != Step.Kind.REFINE or not ctx.staging:
            return
        # First: the hash policies' columns are staged in clear (see ``protect_select``).
        policies = ctx.slot(PiiState).policies
        apply_hash_policies(ctx.warehouse, ctx.schema, ctx.staging, hashed_columns(policies))
        missing = unprotected_columns(ctx.step)
        if missing:
            listed = "; ".join(f"{c} ({', '.join(sorted(e))})" for c, e in sorted(missing.items()))
            raise GateFailed(
                f"Not published: {ctx.step.output.qualified_table} would hold confirmed PII without a policy:"
                f" {listed} (a finding not reviewed yet counts from a confidence of"
                f" {settings.PII_DEFAULT_PROTECT_CONFIDENCE}). Give each column a policy (mask, hash, redact, generalise, drop, anonymise"
                " text), or keep it in clear with a reason, under Compliance > Column policies."
            )
        text_columns = [
            c for c, a in policies.items() if a == ColumnPolicy.Action.ANONYMISE_TEXT
        ]
        if text_columns:
            changed = anonymise_text_columns(ctx.warehouse, ctx.schema, ctx.staging, text_columns)
            ctx.step_run.details = {**(ctx.step_run.details or {}), "pii_anonymised_values": changed}

    def published(self, ctx: StepContext) -> None:
        if ctx.step.kind != Step.Kind.INGEST or not settings.PII_SCAN_AFTER_INGEST:
            return
        # A scan after an earlier ingest of this dataset still "running" was interrupted with its
        # worker (the runner calls this again for a resumed run): it ends failed, this one re-does it.
        orphaned_scans(ctx.step.output).update(
            status=RunStatus.FAILED, finished_at=timezone.now(),
            error="Interrupted: the worker running it was lost; the dataset was scanned again by the resumed run.",
        )
        scan = scan_dataset(ctx.step.output, actor=ctx.run.triggered_by, trigger=PiiScan.Trigger.INGEST)
        ctx.step_run.details = {**(ctx.step_run.details or {}), "pii_scan": scan.pk, "pii_scan_status": scan.status}
        ctx.step_run.save(update_fields=["details"])

    def run_finished(self, ctx: RunContext) -> None:
        """A run that ended with a step's scan owed (its worker lost mid-scan, then not resumed).

        The scan left "running" ends failed with the reason; the runner re-does it with the
        pipeline's next run of that step (``after_publish`` stays pending until then).
        """
        owed = ctx.run.step_runs.filter(kind=Step.Kind.INGEST, after_publish="pending")
        for step_run in owed.select_related("output"):
            if step_run.output is not None:
                orphaned_scans(step_run.output).update(
                    status=RunStatus.FAILED, finished_at=timezone.now(),
                    error="Interrupted: the worker running it was lost; the pipeline's next run scans the dataset again.",
                )


def orphaned_scans(dataset):
    """Scans after an ingest of ``dataset`` still marked running (one ingest at a time writes a dataset)."""
    return PiiScan.objects.filter(dataset=dataset, trigger=PiiScan.Trigger.INGEST, status=RunStatus.RUNNING)
