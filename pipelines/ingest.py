"""Ingest: a source's files into an Explore table, batch by batch.

Every file is staged on its own (streamed, bounded memory), its unparseable
records go to the dataset's quarantine table with their reasons, then all new
batches are published in one transaction. A file whose content checksum is
already in the table's batch ledger is reported as skipped, never loaded twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings

from atlas.warehouse.base import Reject, StagedBatch, WriteMode
from atlas.warehouse.filereader import IngestError

from . import hooks, watermarks
from .attempts import attempt_tag, ingest_staging_name
from .hooks import StepContext
from .models import LoadedBatch, RunStatus
from .sources import SourceFile, source_files


@dataclass
class StepOutcome:
    status: str
    rows_in: int = 0
    rows_out: int = 0
    rows_rejected: int = 0
    # Rows the published table holds, when the step knows it exactly (an ingest that
    # replaced the table holds just what it staged): no count(*) after the load.
    table_rows: int | None = None


def new_batch_id() -> str:
    return "b" + uuid.uuid4().hex[:16]


def with_long_lines(rejects: list[Reject], f: SourceFile) -> list[Reject]:
    """Add the too-long lines the content scan found and the parser did not report."""
    reported = {r.line for r in rejects}
    extra = []
    for long in f.long_lines:
        if long.line in reported:
            continue
        with open(f.path, "rb") as fh:
            fh.seek(long.offset)
            head = fh.read(settings.ATLAS_QUARANTINE_RAW_CHARS).decode("utf-8", "replace")
        extra.append(
            Reject(
                long.line,
                f"LINE SIZE OVER MAXIMUM: the line is {long.length} bytes, above the maximum of"
                f" {settings.ATLAS_INGEST_MAX_LINE_BYTES} (ATLAS_INGEST_MAX_LINE_BYTES); its start is kept.",
                head,
            )
        )
    return sorted([*rejects, *extra], key=lambda r: (r.line is None, r.line or 0)) if extra else rejects


def _stage_file(ctx: StepContext, f: SourceFile, outcome: StepOutcome) -> StagedBatch | None:
    step, wh, dataset = ctx.step, ctx.warehouse, ctx.step.output
    record = LoadedBatch(
        dataset=dataset, step_run=ctx.step_run, file=f.label[:1000], checksum=f.checksum, size_bytes=f.size
    )
    earlier = wh.loaded_batch(dataset.qualified_table, f.checksum)
    if earlier:
        record.batch_id, record.status = earlier, LoadedBatch.Status.SKIPPED
        record.reason = f"Same content (sha256 {f.checksum[:12]}…) already loaded as batch {earlier}."
        record.save()
        return None

    batch_id = new_batch_id()
    ctx.batch_id, ctx.staging = batch_id, ingest_staging_name(ctx.target, attempt_tag(ctx.run.pk, ctx.run.attempt), batch_id)
    ctx.staged_tables.append(ctx.staging)
    record.batch_id = batch_id
    try:
        result = wh.load_file(
            f.path,
            fmt=f.format,
            options=step.source.reader_options(),
            schema=ctx.schema,
            target=ctx.target,
            staging=ctx.staging,
            batch_id=batch_id,
            source_label=f.label[:1000],
            layout=f.layout,
        )
        rejects = with_long_lines(result.rejects, f)
        rejected = wh.quarantine_rejects(
            ctx.schema,
            ctx.target,
            rejects,
            batch_id=batch_id,
            run_id=ctx.run.pk,
            source=f.label[:1000],
            raw_chars=settings.ATLAS_QUARANTINE_RAW_CHARS,
        )
        total = result.rows + rejected
        outcome.rows_in += total
        outcome.rows_rejected += rejected
        record.rows_loaded, record.rows_rejected = result.rows, rejected
        if total == 0:
            raise IngestError(f"{f.label}: the file has a header but no data rows.")
        share = rejected / total
        if share > step.max_rejected_share:
            first = rejects[0]
            raise IngestError(
                f"{f.label}: {rejected} of {total} records ({share:.1%}) could not be parsed, above this"
                f" step's limit of {step.max_rejected_share:.1%}. They are kept in"
                f" {ctx.schema}.{ctx.target}__quarantine (batch {batch_id});"
                f" the first, line {first.line}: {first.reason}"
            )
    except IngestError as exc:
        record.status, record.reason = LoadedBatch.Status.REJECTED, str(exc)
        record.save()
        raise
    dropped = hooks.after_staging(ctx)  # rows the ``staged`` hooks moved to quarantine
    record.status = LoadedBatch.Status.LOADED
    record.rows_loaded, record.rows_rejected = result.rows - dropped, rejected + dropped
    record.save()
    outcome.rows_out += result.rows - dropped
    outcome.rows_rejected += dropped
    return StagedBatch(ctx.staging, batch_id, dataset.qualified_table, f.checksum, f.label[:1000], result.rows - dropped)


class IngestWork:
    """Ingest: every new file of the step's source staged on its own, then all published together."""

    def begin(self, ctx: StepContext) -> None:
        return None

    def run(self, ctx: StepContext, *, progress) -> StepOutcome:
        return run_ingest(ctx, progress=progress)


def run_ingest(ctx: StepContext, *, progress) -> StepOutcome:
    """Load every new file of the step's source; publish them together or not at all."""
    outcome = StepOutcome(status=RunStatus.SUCCEEDED)
    staged: list[StagedBatch] = []
    ctx.staged_tables = []
    incremental = watermarks.begin(ctx.step.source, ctx.step.output, ctx.warehouse)  # None: reads everything
    with source_files(ctx.step.source, incremental) as files:
        for f in files:
            batch = _stage_file(ctx, f, outcome)
            if batch is not None:
                staged.append(batch)
            progress(outcome)
    if not staged:
        watermarks.published(incremental, ctx.step.output, ctx.warehouse)  # rows already loaded: it advances
        outcome.status = RunStatus.SKIPPED
        return outcome
    replace = ctx.step.write_mode == WriteMode.REPLACE
    theirs = ctx.warehouse.publish_batches(schema=ctx.schema, target=ctx.target, batches=staged, replace=replace)
    watermarks.published(incremental, ctx.step.output, ctx.warehouse)
    ctx.staged_tables = []
    ctx.staging = None
    if theirs:
        skip_claimed(ctx, theirs, outcome)
        staged = [b for b in staged if b not in theirs]
        if not staged:
            outcome.status = RunStatus.SKIPPED
            return outcome
    if replace:
        outcome.table_rows = sum(b.rows for b in staged)
    return outcome


def skip_claimed(ctx: StepContext, batches: list[StagedBatch], outcome: StepOutcome) -> None:
    """Files a concurrent load published first (same content): recorded as skipped, with why."""
    for batch in batches:
        earlier = ctx.warehouse.loaded_batch(batch.dataset, batch.checksum) or "another batch"
        LoadedBatch.objects.filter(step_run=ctx.step_run, batch_id=batch.batch_id).update(
            status=LoadedBatch.Status.SKIPPED,
            reason=f"Same content (sha256 {batch.checksum[:12]}…) was loaded by a concurrent load as batch"
            f" {earlier} while this one was staged; skipped, not loaded twice.",
        )
        outcome.rows_out -= batch.rows
