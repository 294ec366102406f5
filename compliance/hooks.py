"""The compliance step hook: protect Chart-bound columns, gate publishing, scan after ingest.

Contributed by this app (``ComplianceConfig.contributes``) and first of the step
hooks (``order`` 100): before quality, so checks see the protected values, and
before lineage, which marks the protected columns' edges as masking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings

from pipelines.hooks import EXECUTED_HERE, GateFailed, RunContext, StepContext
from pipelines.models import Step

from . import scan_tasks
from .models import ColumnPolicy
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
        # The gate below needs the findings of what the step reads: their queued scans run now.
        scan_tasks.run_before_step(ctx.step, ctx.run)
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

    def started(self, ctx: StepContext) -> None:
        if ctx.step.kind == Step.Kind.INGEST and settings.PII_SCAN_AFTER_INGEST and not scan_tasks.dispatched():
            scan_tasks.warm_up()  # the analyzer, built beside the ingest for the scan after it (a scan worker's own)

    def published(self, ctx: StepContext) -> None:
        """After an ingest: its PII scan is queued as a task of its own in the run (compliance.scan_tasks)."""
        if ctx.step.kind != Step.Kind.INGEST or not settings.PII_SCAN_AFTER_INGEST:
            return
        scan = scan_tasks.queue_after_ingest(ctx)
        ctx.step_run.details = {**(ctx.step_run.details or {}), "pii_scan": scan.pk, "pii_scan_status": scan.status,
                                # run_pipeline and the live page say "PII scan queued", not its queueing time
                                "hooks_queued": [scan_tasks.TIMELINE_KEY]}
        ctx.step_run.save(update_fields=["details"])

    def skipped(self, ctx: StepContext) -> None:
        if ctx.step.kind == Step.Kind.INGEST and settings.PII_SCAN_AFTER_INGEST:
            scan_tasks.adopt_queued(ctx)

    def run_ending(self, ctx: RunContext) -> None:
        """After the run's last step: the scans no step's gate needed run now, each recorded on its own
        (Celery for real: the PII scan queue's workers run them, :func:`compliance.scan_tasks.dispatch`)."""
        if ctx.run.attempt > 1:  # a resumed attempt: what the lost one was scanning (a first has no lost one)
            scan_tasks.requeue_interrupted(ctx.run)
        elif not getattr(ctx.run, scan_tasks.QUEUED_IN_RUN, False):
            return  # a first attempt whose ingests queued or adopted no scan (no query for it)
        if scan_tasks.dispatched():
            return  # sent to the PII scan queue: its workers run them, the run ends without waiting
        scan_tasks.run_queued(run=ctx.run)

    def run_finished(self, ctx: RunContext) -> None:
        """A run that ended with a scan still "running" (its worker lost mid-scan, the run not resumed).

        That scan ends failed with the reason, and a queued one of the same batches takes its place:
        the next ingest of the dataset (or the next run, if it loads nothing new) runs it.
        A first attempt executed in this process whose ingests queued or adopted no scan has no
        scan at all: nothing to look for (issue 14: a run's fixed cost).
        """
        if (ctx.run.attempt == 1 and getattr(ctx.run, EXECUTED_HERE, False)
                and not getattr(ctx.run, scan_tasks.QUEUED_IN_RUN, False)):
            return
        scan_tasks.requeue_interrupted(ctx.run)
