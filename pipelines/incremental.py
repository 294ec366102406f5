"""Incremental transforms (issue 20): an incremental step reads only the new batches of its append-only input.

A refine or aggregate step declared ``incremental`` (with its merge keys, write mode replace) runs
in one of two ways, decided before it stages anything (:func:`plan`) and recorded on its step run
(``details["incremental"]``: the mode, the reason in a line, and the greatest loaded batch of each
Explore input it has read):

* **incremental**: its SELECT is rewritten (``atlas.sql.incremental``) to read only the batches of
  its append-only input loaded since its last run; the rows staged replace the published rows of
  the keys they give (a merge whose delete takes the keys staged *before* the checks dropped rows,
  so a key whose latest row is now dropped leaves the table, as a full recomputation would);
* **full**: the whole SELECT, published by replace, when the incremental one is not provably the
  same: a full refresh or a forced run; no earlier run to continue from; a changed definition; an
  output trimmed, erased or rewritten since; an input that changed and is not append-only, or was
  trimmed, erased or replaced since; SQL the rewrite cannot prove row-local per key ("GROUP BY over
  an incremental input"); a warehouse without the keyed merge.

An append-only input is an Explore table its producing ingest appends to. A batch's rows never
change once loaded, and deletes are not expressed by appends: a key leaves the output only when a
full recomputation would drop it too (its latest row filtered out by a check), or by a full run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields
from typing import Any

from django.db.models import Max

from atlas import extensions
from atlas.sql.incremental import NotIncremental, rewrite
from atlas.warehouse.base import WriteMode

from .models import Dataset, Layer, LoadedBatch, RunStatus, Step, StepRun

DETAILS = "incremental"
INCREMENTAL, FULL = "incremental", "full"
READ_STATUSES = (LoadedBatch.Status.LOADED, LoadedBatch.Status.PARTIAL)


@dataclass
class Plan:
    """How an incremental step runs this time, why, and what it will have read (``seen``)."""

    mode: str
    reason: str
    seen: dict[str, int] = field(default_factory=dict)  # Explore input id -> greatest LoadedBatch id read
    definition: str = ""  # the step's definition (``freshness.definition``) it ran with
    inputs: dict[str, list[int]] = field(default_factory=dict)  # input id -> [last publishing step run, data_version]
    output: int | None = None  # the output's data_version when it ran
    sql: str | None = None  # the rewritten SELECT (incremental)
    input: str | None = None  # layer.table read incrementally
    batches: int = 0
    rows_in: int = 0  # rows of the new batches
    was: list[int] | None = None  # the output's version (last publishing step run, data_version) before this run
    # a merge: what it changed, kept for the steps after it in this run (schema, old and new rows of its keys)
    changes: dict[str, Any] | None = None
    grouped: Any = None  # affected groups (``atlas.sql.groups.Grouped``): the groups recomputed, merged by key

    @property
    def incremental(self) -> bool:
        return self.mode == INCREMENTAL

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("sql", "grouped")}

    def shown(self) -> str:
        """The line the run shows: "incremental: 1 new batch of explore.orders" or "full: <reason>"."""
        return f"{self.mode}: {self.reason}"


def append_only(dataset: Dataset) -> bool:
    """An Explore table whose producing ingest appends (a batch, once loaded, never changes)."""
    if dataset.layer != Layer.EXPLORE:
        return False
    writers = list(Step.objects.filter(output=dataset).values_list("kind", "write_mode"))
    return bool(writers) and all(k == Step.Kind.INGEST and m == WriteMode.APPEND for k, m in writers)


def greatest_batches(datasets: list[Dataset]) -> dict[str, int]:
    """By Explore dataset id: the greatest LoadedBatch id recorded now (0: none)."""
    ids = [d.pk for d in datasets if d.layer == Layer.EXPLORE]
    found = dict(LoadedBatch.objects.filter(dataset_id__in=ids).values("dataset_id").annotate(m=Max("id"))
                 .values_list("dataset_id", "m"))
    return {str(pk): found.get(pk) or 0 for pk in ids}


def previous_execution(step: Step, run: Any) -> StepRun | None:
    """The step's latest step run that published its output, in an earlier run."""
    return (StepRun.objects.filter(step=step, status=RunStatus.SUCCEEDED).exclude(run_id=run.pk)
            .order_by("-id").first())


def plan(ctx: Any, inputs: list[Dataset]) -> Plan | None:
    """How ``ctx``'s step runs now; None for a step not declared incremental."""
    from . import freshness

    step, run, wh = ctx.step, ctx.run, ctx.warehouse
    if not getattr(step, "incremental", False) or step.kind == Step.Kind.INGEST:
        return None
    seen = greatest_batches(inputs)  # before anything is read: a batch loaded meanwhile is read again next time

    row_reads = extensions.step_row_reads(step) - {d.pk for d in inputs} - {step.output_id}
    now = freshness.dataset_versions({d.pk for d in inputs} | row_reads)
    output_now = freshness.dataset_versions({step.output_id})[str(step.output_id)]
    definition = freshness.definition(step, freshness._parameters(run, step))

    def full(reason: str) -> Plan:
        return Plan(FULL, reason, seen=seen, definition=definition, inputs=now, output=output_now[1])

    if not wh.features.incremental_transforms:
        return full("this warehouse has no keyed merge for incremental steps")
    if getattr(run, "full_refresh", False):
        return full("a full refresh recomputes every step")
    if getattr(run, "force", False):
        return full("a forced run recomputes every step")
    previous = previous_execution(step, run)
    if previous is None:
        return full("it has not run before")
    state = (previous.details or {}).get(DETAILS)
    if not isinstance(state, dict) or not state.get("definition") or state.get("output") is None:
        return full(f"its last run (run #{previous.run_id}) recorded no batches read")
    if state["definition"] != definition:
        return full("its definition changed")
    if output_now != [previous.pk, state["output"]]:
        return full("its output changed since (trimmed, erased or rewritten)")
    if not wh.table_exists(step.output.layer, step.output.table):
        return full("its output table is missing")
    before = state.get("inputs") or {}
    changed = [d for d in inputs if now.get(str(d.pk)) != before.get(str(d.pk))]
    explore = [d for d in inputs if d.layer == Layer.EXPLORE]
    # an aggregate's GROUP BY over tables merged by key: the groups they touched (a refine's SELECT may be rewritten
    # by its prepare hooks, column policies, after this plan: it is not taken this way)
    if not explore and changed and step.kind == Step.Kind.AGGREGATE:
        checked = sorted(pk for pk in row_reads if now.get(str(pk)) != before.get(str(pk)))
        if checked:
            name = Dataset.objects.get(pk=checked[0]).qualified_table
            return full(f"{name}, which a drop check reads, changed")
        return _affected_groups(ctx, changed, before, now, full,
                                Plan(INCREMENTAL, "", seen=seen, definition=definition, inputs=now,
                                     output=output_now[1], was=output_now))
    if len(explore) != 1 or not append_only(explore[0]):
        if len(explore) > 1:
            return full(f"it reads {len(explore)} Explore tables ({', '.join(d.qualified_table for d in explore)})")
        if not changed:
            return full("it reads no append-only input")
        return full(f"{changed[0].qualified_table} changed and is not append-only")
    source = explore[0]
    others = [d for d in changed if d.pk != source.pk]
    if others:
        return full(f"{others[0].qualified_table} changed and is not append-only")
    checked = sorted(pk for pk in row_reads if now.get(str(pk)) != before.get(str(pk)))
    if checked:
        name = Dataset.objects.get(pk=checked[0]).qualified_table
        return full(f"{name}, which a drop check reads, changed")
    was = before.get(str(source.pk))
    if was is not None and now[str(source.pk)][1] != was[1]:
        return full(f"{source.qualified_table} was trimmed or erased since")
    read_up_to = (state.get("seen") or {}).get(str(source.pk))
    if read_up_to is None:
        return full(f"its last run recorded no batches read of {source.qualified_table}")
    if StepRun.objects.filter(output=source, status=RunStatus.SUCCEEDED, id__gt=was[0] if was else 0,
                              run__full_refresh=True).exists():
        return full(f"{source.qualified_table} was replaced since (a full refresh)")
    new = list(LoadedBatch.objects.filter(dataset=source, status__in=READ_STATUSES, id__gt=read_up_to,
                                          id__lte=seen[str(source.pk)]).order_by("id")
               .values_list("batch_id", "rows_loaded"))
    try:
        sql = rewrite(ctx.select_sql, keys=step.keys, layer=source.layer, table=source.table,
                      batches=[b for b, _ in new])
    except NotIncremental as exc:
        return full(str(exc))
    count = len(new)
    return Plan(INCREMENTAL, f"{count} new batch{'es' if count != 1 else ''} of {source.qualified_table}",
                seen=seen, definition=definition, inputs=now, output=output_now[1], sql=sql,
                input=source.qualified_table, batches=count, rows_in=sum(r for _, r in new), was=output_now)


def _affected_groups(ctx: Any, changed: list[Dataset], before: dict, now: dict, full: Any, made: Plan) -> Plan:
    """A GROUP BY over inputs changed by keyed merges: recompute the groups the merges touched (``atlas.sql.groups``).

    Each changed input must have changed by exactly one merge since this step last ran, in this run
    (its old and new rows are kept until the run ends): its publishing step run recorded its changes,
    from the very version this step read last, and nothing trimmed or erased it after.
    """
    from atlas.sql.groups import Change, Grouped

    found = {pk: (run_id, details) for pk, run_id, details in
             StepRun.objects.filter(pk__in=[now[str(d.pk)][0] for d in changed]).values_list("pk", "run_id", "details")}
    changes = {}
    for d in changed:
        was, is_ = before.get(str(d.pk)), now[str(d.pk)]
        run_id, details = found.get(is_[0], (None, None))
        rec = ((details or {}).get(DETAILS) or {}).get("changes")
        if run_id != ctx.run.pk or not rec:
            return full(f"{d.qualified_table} changed other than by a keyed merge in this run")
        if was is None or list(rec.get("from") or []) != list(was) or is_[1] != was[1]:
            return full(f"{d.qualified_table} changed by more than its last merge since this step ran")
        schema = rec["schema"]
        if not (ctx.warehouse.table_exists(schema, rec["old"]) and ctx.warehouse.table_exists(schema, rec["new"])):
            return full(f"the changes of {d.qualified_table}'s merge are gone")
        changes[(d.layer, d.table)] = Change(old=(schema, rec["old"]), new=(schema, rec["new"]))
    try:
        made.grouped = Grouped(ctx.select_sql, keys=ctx.step.keys, changed=changes)
    except NotIncremental as exc:
        return full(str(exc))
    made.reason = f"affected groups of {', '.join(f'{a}.{b}' for a, b in made.grouped.changed_inputs)} (merged by key)"
    return made


def index_group_lookups(ctx: Any, grouped: Any) -> None:
    """An aggregate that may recompute by affected groups: its inputs indexed, where the warehouse keeps indexes,
    on the columns those statements look rows up by (``Grouped.lookups``: link and group key columns).

    Made on its first run, a full one, or the first after an input was rebuilt (a replace publishes a new
    table); merges keep them. Without them PostgreSQL scans and hashes every input for a few groups.
    ``grouped``: the incremental run's; None: the SELECT proven again here (a full run), or nothing to index.
    """
    from atlas.sql.groups import Grouped

    if grouped is None:
        try:
            grouped = Grouped(ctx.select_sql, keys=ctx.step.keys, changed={})
        except NotIncremental:
            return
    for (layer, table), columns in grouped.lookups():
        ctx.warehouse.ensure_key_index(layer, table, list(columns))


def changes_name(target: str, tag: str, what: str) -> str:
    """A merge's own tables beside its output: the keys it touched (``k``), their old (``o``) and new (``n``) rows.

    They carry the attempt's tag, so the janitor drops them once the run has ended (``pipelines.attempts``).
    """
    return f"{target[:36]}__{tag}_ch{what}"


def ran(ctx: Any, made: Plan) -> None:
    """Record the plan on the step run, its definition read again once the step's gates settled what they own."""
    from . import freshness

    made.definition = freshness.definition(ctx.step, freshness._parameters(ctx.run, ctx.step))
    ctx.step_run.details = {**(ctx.step_run.details or {}), DETAILS: made.as_json()}
    StepRun.objects.filter(pk=ctx.step_run.pk).update(details=ctx.step_run.details)


def drop_changes(step_runs: list[StepRun]) -> None:
    """At a run's end: drop the tables its merges kept (replaced and written rows); the janitor drops any left."""
    from atlas.warehouse import WarehouseError, get_warehouse

    kept = [c for sr in step_runs if isinstance(c := ((sr.details or {}).get(DETAILS) or {}).get("changes"), dict)]
    if not kept:
        return
    wh = get_warehouse()
    for changes in kept:
        for name in (changes.get("old"), changes.get("new")):
            with contextlib.suppress(WarehouseError):  # else the janitor's next pass
                wh.drop_table(changes["schema"], name)
