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

from dataclasses import dataclass, field
from typing import Any

from atlas.warehouse.base import WriteMode
from pipelines.hooks import GateFailed, Origin, StepContext
from pipelines.models import Step

from .incremental import Increment
from .models import CheckResult, CheckRun
from .service import blocks_publishing, gate_message, run_checks
from .versions import dataset_checks


@dataclass
class GateState:
    """A step's gates so far (an ingest gates each batch): the staging tables gated, the table after them."""

    gated: list[str] = field(default_factory=list)
    table_after: dict[str, Any] | None = None


def increment(ctx: StepContext) -> Increment | None:
    """What an append or merge gate needs (:mod:`quality.incremental`); None: a replace is checked whole."""
    mode = ctx.write_mode
    if mode not in (WriteMode.APPEND, WriteMode.MERGE) or ctx.origin != Origin.RUN:
        return None
    state = ctx.slot(GateState)
    earlier = [t for t in state.gated if t in ctx.staged_tables and t != ctx.staging]
    return Increment(
        mode=mode, target=ctx.target, published=ctx.warehouse.table_exists(ctx.schema, ctx.target),
        keys=tuple(ctx.step.keys) if mode is WriteMode.MERGE else (), earlier=earlier,
        base=(state.table_after or {}) if earlier else None, batch_id=ctx.batch_id,
        replaced=ctx.merge_keys_from if mode is WriteMode.MERGE else None,
    )


class QualityGate:
    """Runs the output dataset's checks on every staged table; a failing gate blocks publishing.

    On an append or merge, the row checks judge the new rows and the table checks the table as
    it will be after publish (:mod:`quality.incremental`); a replace is checked whole.
    """

    order = 300

    def staged(self, ctx: StepContext) -> None:
        if ctx.origin == Origin.REPROCESS:
            return  # re-processing evaluates the checks itself, against the rows already published
        dataset = ctx.step.output
        checks = [c for c in dataset_checks(dataset.pk) if c.enabled]  # as the step's versions read them
        if not checks or not ctx.staging:
            return
        inc = increment(ctx)
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
            increment=inc,
            # a refine or aggregate replacing its output stages the whole table: kept for the merge gate after it
            whole_table=(inc is None and ctx.origin == Origin.RUN and ctx.write_mode is WriteMode.REPLACE
                         and ctx.step.kind != Step.Kind.INGEST),
        )
        if inc is not None:
            state = ctx.slot(GateState)
            state.gated.append(ctx.staging)
            state.table_after = check_run.table_after
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
