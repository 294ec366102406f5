"""Refine and aggregate: an operator's SELECT into a staging table, then published by write mode."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Value
from django.db.models.functions import Lower, StrIndex

from atlas.sql.groups import Grouped
from atlas.sql.incremental import NotIncremental
from atlas.sql.params import typed_sql, uses_parameters
from atlas.warehouse import WarehouseError
from atlas.warehouse.base import WriteMode

from . import hooks, incremental, memo
from .attempts import attempt_tag, transform_staging_name
from .hooks import StepContext
from .ingest import StepOutcome
from .models import Dataset, RunStatus, Step
from .sql import SQLValidationError, check_select


class Catalogue(dict):
    """Datasets by (layer, table), as :func:`known_tables` read them (a plain dict otherwise)."""

    scoped = False  # read inside a pipelines.memo scope: what a step's SQL reads may be remembered with it


def known_tables(sqls: Iterable[str] | None = None) -> dict[tuple[str, str], Dataset]:
    """Datasets by (layer, table), read once per :func:`pipelines.memo.scope`.

    Every dataset; or, given ``sqls``, the datasets whose table name occurs in one of these texts
    (case-insensitively): all that validating them can look up, since a table a SELECT reads is
    named in it — a run reads those few rows, not the whole catalogue (issue 14). A text that
    may spell a name with escapes (``U&"..."``) gets the whole catalogue.
    """
    texts = _texts(sqls)

    def read() -> Catalogue:
        found = Dataset.objects.all()
        if texts is not None:
            found = found.alias(_named_at=StrIndex(Value("\n".join(texts)), Lower("table"))).filter(_named_at__gt=0)
        catalogue = Catalogue({(d.layer, d.table): d for d in found})
        catalogue.scoped = memo.active()
        return catalogue

    if texts == []:
        return Catalogue()
    return memo.remembered(_catalogue_key(texts), read)


def _texts(sqls: Iterable[str] | None) -> list[str] | None:
    """What :func:`known_tables` looks names up in: the texts, lower case, once each; None: every dataset."""
    texts = None if sqls is None else sorted({s.lower().replace("\x00", " ") for s in sqls if s})
    return None if texts is not None and any("u&" in t for t in texts) else texts


def _catalogue_key(texts: list[str] | None) -> tuple:
    return ("known_tables", None if texts is None else tuple(texts))


def share_catalogue(catalogue: Catalogue, sqls: Iterable[str]) -> None:
    """Let the current scope answer :func:`known_tables` for ``sqls`` with ``catalogue`` (read for a wider set of texts).

    The runner reads the datasets its steps' SQL names once, to plan the run, and hands that
    catalogue to the scopes of the steps it comes to before any step executed (issue 14: a run's
    fixed cost; nothing of the run wrote to the catalogue in between, so reading it again would
    find what planning found). A catalogue read for texts that include a step's holds every
    dataset that step's SQL names, which is all validating it looks up, so the answer is the one a
    read for the step's SQL alone gives. What the warehouse holds (an input's columns, whether it
    is loaded) is still read afresh in each step's scope. Outside a scope, or for a catalogue not
    read in one, nothing is shared.
    """
    texts = _texts(sqls)
    if texts and getattr(catalogue, "scoped", False):
        memo.remember(_catalogue_key(texts), catalogue)


def step_inputs(step: Step, known: dict[tuple[str, str], Dataset] | None = None) -> list[Dataset]:
    """The datasets a refine/aggregate step reads, from its SQL; refuses reads across layers.

    Validated once per :func:`pipelines.memo.scope` (by the step and its SQL), when ``known`` is
    read by :func:`known_tables` in the scope (any such catalogue holds every dataset the SQL names,
    so the answer is the same whichever one it is).
    """
    if known is None or (memo.active() and getattr(known, "scoped", False)):
        return list(memo.remembered(("step_inputs", step.pk, step.kind, step.sql), lambda: _step_inputs(step, known)))
    return _step_inputs(step, known)


def _step_inputs(step: Step, known: dict[tuple[str, str], Dataset] | None) -> list[Dataset]:
    known = known if known is not None else known_tables([step.sql])
    checked = check_select(step.sql, known)
    inputs = [known[t] for t in checked.tables]
    allowed = Step.INPUT_LAYERS[Step.Kind(step.kind)]
    wrong = [d for d in inputs if d.layer not in allowed]
    if wrong:
        raise SQLValidationError(
            f"A {step.kind} step reads {' or '.join(allowed)} datasets; "
            f"{', '.join(d.qualified_table for d in wrong)} is not."
        )
    return inputs


def input_rows(wh, ds: Dataset) -> int:
    """The rows of an input a step reads in full: the catalogue's count (every publish, retention and erasure
    keeps it), else counted (a table no run has published yet).

    ``ds`` is the step's input as its scope read the catalogue (:func:`step_inputs`): when the step
    starts, or as planning read it when no step of the run executed before (nothing wrote it since).
    """
    return int(ds.row_count) if ds.row_count is not None else wh.row_count(ds.layer, ds.table)


def publish_receipt(ctx: StepContext) -> str:
    """What ``publish`` records with the data: a resumed run asks whether its lost step had published."""
    return f"run{ctx.run.pk}:step{ctx.step.pk}"


class TransformWork:
    """Refine and aggregate: the operator's SELECT staged, gated by the ``staged`` hooks, published by write mode."""

    def __init__(self) -> None:
        self.inputs: list[Dataset] = []
        self.plan: incremental.Plan | None = None

    def begin(self, ctx: StepContext) -> None:
        """Before the ``prepare`` hooks: the inputs must be loaded; the SELECT they may rewrite."""
        step, wh = ctx.step, ctx.warehouse
        self.inputs = step_inputs(step)
        for ds in self.inputs:
            if memo.table_columns(wh, ds.layer, ds.table) is None:
                raise WarehouseError(
                    f"Input {ds.qualified_table} has not been loaded yet; run the step that produces it."
                )
        ctx.select_sql = step.sql.strip().rstrip(";")
        # Issue 20: an incremental step reads only its input's new batches where that is exact
        self.plan = incremental.plan(ctx, self.inputs)
        if self.plan is not None:
            ctx.incremental = self.plan.incremental
            if self.plan.incremental and self.plan.sql:
                ctx.select_sql = self.plan.sql
            ctx.step_run.details = {**(ctx.step_run.details or {}), incremental.DETAILS: self.plan.as_json()}

    def run(self, ctx: StepContext, *, progress=None) -> StepOutcome:
        step, wh = ctx.step, ctx.warehouse
        types = {(ds.layer, ds.table): {c.name: c.type for c in memo.table_columns(wh, ds.layer, ds.table) or []}
                 for ds in self.inputs}
        tag = attempt_tag(ctx.run.pk, ctx.run.attempt)
        ctx.staged_tables = []
        grouped = self.plan.grouped if ctx.incremental else None
        if grouped is not None and ctx.select_sql != grouped.sql:  # a prepare hook rewrote the SELECT: prove it again
            try:
                grouped = Grouped(ctx.select_sql, keys=step.keys, changed=grouped.changed)
            except NotIncremental as exc:
                raise WarehouseError(f"The SELECT a prepare hook rewrote cannot be recomputed by groups: {exc}") from None
        if self.plan is not None and step.kind == Step.Kind.AGGREGATE:
            incremental.index_group_lookups(ctx, grouped)
        if grouped is not None:  # the groups the inputs' merges touched, then the SELECT for them alone
            for table, change in grouped.changed.items():  # their kept rows read as the inputs' own columns
                types[change.old] = types[change.new] = types.get(table, {})
            groups = incremental.changes_name(ctx.target, tag, "k")
            ctx.staged_tables.append(groups)
            wh.stage_operator_select(ctx.schema, groups, wh.transpile(grouped.affected_sql(), types), few_rows=True)
            wh.analyze(ctx.schema, groups)  # the recomputation joins it to whole tables: planned on its real size
            ctx.select_sql = grouped.recompute_sql((ctx.schema, groups),
                                                   nulls=wh.keys_have_nulls(ctx.schema, groups, step.keys))
        # Run parameters (:data_interval_start ...) are typed, kept as placeholders in the SQL
        # recorded, and bound by the driver when staging; a SELECT without any is unchanged.
        parameterised = uses_parameters(ctx.select_sql)
        sql = wh.transpile(typed_sql(ctx.select_sql) if parameterised else ctx.select_sql, types)
        ctx.step_run.sql = sql
        ctx.step_run.save(update_fields=["sql"])
        if ctx.incremental:  # the new batches' rows, and the other inputs whole
            rows_in = self.plan.rows_in + sum(input_rows(wh, ds) for ds in self.inputs
                                              if ds.qualified_table != self.plan.input)
        else:
            rows_in = sum(input_rows(wh, ds) for ds in self.inputs)
        ctx.staging = transform_staging_name(ctx.target, tag)
        ctx.staged_tables.append(ctx.staging)
        # The operator's SQL runs restricted (one statement, a timeout; on PostgreSQL as the
        # operator-SQL role, which cannot read Atlas's metadata or the PII key): never with
        # the owner's rights that ``create_table_as`` has.
        bind = {"params": ctx.parameters} if parameterised else {}
        if grouped is not None:
            bind["few_rows"] = True
        rows = wh.stage_operator_select(ctx.schema, ctx.staging, sql, readable=not ctx.staging_private, **bind)
        merge: dict = {}
        if ctx.incremental:  # the published rows of every key staged are replaced, even if a check drops its row
            if grouped is not None:  # every affected group: one the recomputation no longer gives leaves the table
                keys = ctx.merge_keys_from = groups
            else:
                keys = incremental.changes_name(ctx.target, tag, "k")
                ctx.staged_tables.append(keys)
                key_list = ", ".join(wh.quote(k) for k in step.keys)
                wh.create_table_as(ctx.schema, keys,
                                   f"SELECT DISTINCT {key_list} FROM {wh.table(ctx.schema, ctx.staging)}")
            merge = {"delete_keys_from": keys, "counts": {}}
            rows_before = Dataset.objects.filter(pk=step.output_id).values_list("row_count", flat=True).first()
        dropped = hooks.after_staging(ctx)  # rows the ``staged`` hooks moved to quarantine
        if merge:  # what the merge replaces and writes, kept for the steps after it in this run (affected groups)
            old, new = incremental.changes_name(ctx.target, tag, "o"), incremental.changes_name(ctx.target, tag, "n")
            ctx.staged_tables += [old, new]
            wh.keep_replaced_rows(ctx.schema, ctx.target, keys, step.keys, old)
            wh.create_table_as(ctx.schema, new, f"SELECT * FROM {wh.table(ctx.schema, ctx.staging)}")
            for kept in (old, new):
                wh.analyze(ctx.schema, kept)
            self.plan.changes = {"schema": ctx.schema, "old": old, "new": new, "from": self.plan.was}
        written = wh.publish(
            schema=ctx.schema, staging=ctx.staging, target=ctx.target, mode=ctx.write_mode, keys=step.keys,
            receipt=publish_receipt(ctx), **merge,
            # an incremental step's output, published whole, is indexed on its keys: its next merges look them up
            key_index=self.plan is not None,
        )
        table_rows = written if ctx.write_mode is WriteMode.REPLACE else None  # replaced: the staged rows
        if merge:
            wh.drop_table(ctx.schema, merge["delete_keys_from"])
            if rows_before is not None and "deleted" in merge["counts"]:
                # The rows the output held (the catalogue's, exact: its last publish was this step's last run,
                # and nothing rewrote it since, ``incremental.plan``), less those the merge deleted, plus those
                # it inserted: the table is not counted again (a scan of every row, for a merge of a few).
                table_rows = rows_before - merge["counts"]["deleted"] + written
        if self.plan is not None:
            incremental.ran(ctx, self.plan)
        memo.forget_table(ctx.schema, ctx.target)
        ctx.staged_tables = []
        ctx.staging = None
        return StepOutcome(status=RunStatus.SUCCEEDED, rows_in=rows_in, rows_out=rows - dropped, rows_rejected=dropped,
                           table_rows=table_rows)
