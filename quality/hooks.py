"""The quality gate, plugged into the runner as a step hook.

Contributed by this app (``QualityConfig.contributes``), it runs after the
hooks that rewrite the SELECT or remove rows (compliance, privacy: ``order``
300), so the checks see the rows that will be published.

Errors fail closed: a fail or drop check that cannot be evaluated (its SQL
fails on the data, a referenced dataset is gone) blocks publishing like a
failing one — an unverified gate is not a passed gate. A warn check that
errors is recorded with its message and does not block.
"""

from __future__ import annotations

from typing import Any

from pipelines.hooks import GateFailed, Origin, StepContext

from .models import CheckResult, CheckRun
from .service import blocks_publishing, gate_message, run_checks
from .versions import dataset_checks


class QualityGate:
    """Runs the output dataset's checks on every staged table; a failing gate blocks publishing."""

    order = 300

    def staged(self, ctx: StepContext) -> None:
        if ctx.origin == Origin.REPROCESS:
            return  # re-processing evaluates the checks itself, against the rows already published
        dataset = ctx.step.output
        checks = [c for c in dataset_checks(dataset.pk) if c.enabled]  # as the step's versions read them
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
        ctx.rows_quarantined += check_run.rows_quarantined
        if blocks_publishing(check_run, checks):
            raise GateFailed(gate_message(check_run))


def lineage_assertions(step_run) -> list[dict[str, Any]]:
    """The checks run on the step's staged rows, as OpenLineage data-quality assertions (``lineage_assertions``)."""
    rows = CheckResult.objects.filter(check_run__step_run=step_run).select_related("check_ref").order_by("id")
    assertions = []
    for r in rows:
        columns = list(getattr(r.check_ref, "columns", None) or [])
        item = {
            "assertion": r.kind,
            "success": r.outcome == "pass",
            "name": r.check_name,
            "severity": "warn" if r.severity == "warn" else "error",
        }
        if len(columns) == 1:
            item["column"] = columns[0]
        if r.message:
            item["description"] = r.message[:500]
        assertions.append(item)
    return assertions
