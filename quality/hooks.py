"""The quality gate, plugged into the runner as a step hook.

Enable it by adding ``quality.hooks.QualityGate`` to ``ATLAS_STEP_HOOKS``
(after hooks that rewrite the SELECT, e.g. compliance, so the checks see the
rows that will be published); it is on by default.

Errors fail closed: a fail or drop check that cannot be evaluated (its SQL
fails on the data, a referenced dataset is gone) blocks publishing like a
failing one — an unverified gate is not a passed gate. A warn check that
errors is recorded with its message and does not block.
"""

from __future__ import annotations

from pipelines.hooks import GateFailed, StepContext

from .models import Check, CheckRun
from .service import blocks_publishing, gate_message, run_checks


class QualityGate:
    """Runs the output dataset's checks on every staged table; a failing gate blocks publishing."""

    def staged(self, ctx: StepContext) -> None:
        dataset = ctx.step.output
        checks = list(Check.objects.for_dataset(dataset).enabled())
        if not checks or not ctx.staging:
            return
        check_run = run_checks(
            dataset,
            trigger=CheckRun.Trigger.STEP,
            schema=ctx.schema,
            table=ctx.staging,
            step_run=ctx.step_run,
            run_id=ctx.run.pk,
            batch_id=ctx.batch_id,
            source=f"step {ctx.step.name}",
            checks=checks,
            warehouse=ctx.warehouse,
        )
        quality = ctx.step_run.details.setdefault("quality", [])
        quality.append(
            {"check_run": check_run.pk, "status": check_run.status, "rows_quarantined": check_run.rows_quarantined}
        )
        ctx.extra["rows_quarantined"] = ctx.extra.get("rows_quarantined", 0) + check_run.rows_quarantined
        if blocks_publishing(check_run, checks):
            raise GateFailed(gate_message(check_run))
