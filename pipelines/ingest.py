"""Ingest: a source's files into an Explore table, batch by batch.

Every file is staged on its own (streamed, bounded memory), its unparseable
records go to the dataset's quarantine table with their reasons, then all new
batches are published in one transaction. A file whose content checksum is
already in the table's batch ledger is reported as skipped, never loaded twice.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sized
from dataclasses import dataclass

from django.conf import settings

from atlas.warehouse.base import FileFormat, Reject, StagedBatch, WriteMode
from atlas.warehouse.filereader import IngestError

from . import hooks, hygiene, watermarks
from .attempts import attempt_tag, ingest_staging_name
from .hooks import StepContext
from .models import LoadedBatch, RunStatus, Step
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
    # An ingest's files so far (pipelines.live shows them; None: the source does not say how many)
    files_done: int = 0
    files_total: int | None = None
    bytes_done: int = 0
    bytes_total: int | None = None


logger = logging.getLogger(__name__)


def new_batch_id() -> str:
    return "b" + uuid.uuid4().hex[:16]


def with_long_lines(rejects: list[Reject], f: SourceFile) -> list[Reject]:
    """Add the too-long lines the content scan found and the parser did not report."""
    reported = {r.line for r in rejects}
    extra = []
    for long in f.long_lines:
        if long.line in reported:
            continue
        with open(f.parse_path, "rb") as fh:
            fh.seek(long.offset)
            head = fh.read(settings.ATLAS_QUARANTINE_RAW_CHARS)
        extra.append(
            Reject(
                long.line,
                f"LINE SIZE OVER MAXIMUM: the line is {long.length} bytes, above the maximum of"
                f" {settings.ATLAS_INGEST_MAX_LINE_BYTES} (ATLAS_INGEST_MAX_LINE_BYTES); its start is kept.",
                head.decode("utf-8", "replace"),
                reason_class="line_too_long",
                raw_bytes=head,
            )
        )
    return sorted([*rejects, *extra], key=lambda r: (r.line is None, r.line or 0)) if extra else rejects


def with_evidence(rejects: list[Reject], f: SourceFile, options: dict) -> tuple[list[Reject], int]:
    """Every reject with its class, exact bytes and byte offset; and the lines they span in all.

    The NUL records hygiene blanked are added here. Lines, not records, weigh against the
    step's limit: a quote never closed swallows the rest of the file into one record.
    """
    prepared = f.prepared
    if prepared is not None:
        rejects = [*rejects, *(Reject(n, hygiene.NUL_REASON, None, "encoding") for n in prepared.nul_lines)]
        rejects.sort(key=lambda r: (r.line is None, r.line or 0))
    if not rejects:
        return rejects, 0
    raw_max = settings.ATLAS_QUARANTINE_RAW_CHARS
    found: dict[int, hygiene.Evidence] = {}
    if prepared is not None and f.format is not FileFormat.PARQUET:
        quote = options.get("quote") if options.get("quote") is not None else '"'
        found = hygiene.evidence(
            prepared,
            rejects,
            quote=quote if f.format is FileFormat.CSV else None,
            header=f.format is FileFormat.CSV and bool(options.get("header", True)),
            max_bytes=raw_max,
        )
    lines = 0
    out = []
    for r in rejects:
        ev = found.get(r.line) if r.line is not None else None
        raw_bytes = ev.raw if ev is not None and ev.raw is not None else r.raw_bytes
        raw = r.raw
        if raw_bytes is not None:
            enc = prepared.encoding if prepared is not None else "utf-8"
            raw = raw_bytes.decode(enc, "replace")
        out.append(
            Reject(
                r.line,
                r.reason,
                raw,
                reason_class=r.reason_class or hygiene.row_class(r.reason),
                offset=ev.offset if ev is not None else r.offset,
                raw_bytes=raw_bytes,
            )
        )
        lines += max(1, ev.lines if ev is not None else 1)
    return out, lines


def _dominant_class(rejects: list[Reject]) -> str:
    return Counter(r.reason_class or "schema" for r in rejects).most_common(1)[0][0]


def _refuse(record: LoadedBatch, exc: IngestError, outcome: StepOutcome, progress) -> None:
    record.status, record.reason = LoadedBatch.Status.REJECTED, str(exc)
    record.reason_class = getattr(exc, "reason_class", "source")
    record.save()
    progress(outcome)  # the run's counts show the quarantined rows of a refused file too


def _stage_file(
    ctx: StepContext, f: SourceFile, outcome: StepOutcome, progress=lambda o: None, staged: dict[str, str] | None = None
) -> StagedBatch | None:
    """Stage one file as a batch (None: skipped); ``staged``: checksum -> batch id of the files of this run."""
    step, wh, dataset = ctx.step, ctx.warehouse, ctx.step.output
    warnings = list(f.prepared.warnings) if f.prepared else []
    record = LoadedBatch(
        dataset=dataset,
        step_run=ctx.step_run,
        file=f.label[:1000],
        checksum=f.checksum,
        size_bytes=f.size,
        warnings="\n".join(warnings),
    )
    for warning in warnings:
        logger.warning("Run %s step %r: %s", ctx.run.pk, step.name, warning)
    if f.refused is not None:
        record.batch_id = new_batch_id()
        _refuse(record, f.refused, outcome, progress)
        raise f.refused
    earlier = (staged or {}).get(f.checksum) or (
        None if ctx.full_refresh else wh.loaded_batch(dataset.qualified_table, f.checksum)
    )
    if earlier:
        if f.pipe is not None:
            f.pipe.abort()  # loaded while it was read: rolled back, nothing kept
        record.batch_id, record.status = earlier, LoadedBatch.Status.SKIPPED
        record.reason_class = "duplicate_file"
        record.reason = f"Same content (sha256 {f.checksum[:12]}…) already loaded as batch {earlier}."
        record.save()
        return None

    if f.pipe is not None:  # the staging table the pipe fills (``_pipes``)
        batch_id, ctx.staging = f.pipe.batch_id, f.pipe.staging
    else:
        batch_id = new_batch_id()
        ctx.staging = ingest_staging_name(ctx.target, attempt_tag(ctx.run.pk, ctx.run.attempt), batch_id)
        ctx.staged_tables.append(ctx.staging)
    ctx.batch_id = batch_id
    record.batch_id = batch_id
    options = f.reader_options(step.source.reader_options())
    try:
        result = wh.load_file(
            f.parse_path,
            fmt=f.format,
            options=options,
            schema=ctx.schema,
            target=ctx.target,
            staging=ctx.staging,
            batch_id=batch_id,
            source_label=f.label[:1000],
            layout=f.layout,
            stream=f.stream,
            pipe=f.pipe,
        )
        if result.reader:  # an engine with a choice of readers says which read the file
            readers = {**(ctx.step_run.details or {}).get("readers", {}), f.label[:200]: result.reader}
            ctx.step_run.details = {**(ctx.step_run.details or {}), "readers": readers}
        rejects, rejected_lines = with_evidence(with_long_lines(result.rejects, f), f, options)
        rejected = wh.quarantine_rejects(
            ctx.schema,
            ctx.target,
            rejects,
            batch_id=batch_id,
            run_id=ctx.run.pk,
            source=f.label[:1000],
            raw_chars=settings.ATLAS_QUARANTINE_RAW_CHARS,
            checksum=f.checksum,
        )
        total = result.rows + rejected
        outcome.rows_in += total
        outcome.rows_rejected += rejected
        record.rows_loaded, record.rows_rejected = result.rows, rejected
        if total == 0:
            raise IngestError(f"{f.label}: the file has a header but no data rows.", "empty_file")
        share = rejected_lines / (result.rows + rejected_lines)
        if share > step.max_rejected_share:
            first = rejects[0]
            where = (
                f"They are kept in {ctx.schema}.{ctx.target}__quarantine (batch {batch_id});"
                f" the first, line {first.line}: {first.reason}"
            )
            spans = "" if rejected_lines == rejected else f"spanning {rejected_lines} lines, "
            summary = (
                f"{f.label}: {rejected} of {total} records ({spans}{share:.1%}) could not be parsed,"
                f" above this step's limit of {step.max_rejected_share:.1%}."
            )
            if step.load_policy != Step.LoadPolicy.PARTIAL:
                record.rows_loaded, record.rows_refused = 0, result.rows
                raise IngestError(f"{summary} {where}", _dominant_class(rejects))
            record.status = LoadedBatch.Status.PARTIAL
            record.reason = f"{summary} Partial load policy: the {result.rows} good rows are loaded. {where}"
            record.reason_class = _dominant_class(rejects)
            logger.warning("Run %s step %r: %s", ctx.run.pk, step.name, record.reason)
    except IngestError as exc:
        _refuse(record, exc, outcome, progress)
        raise
    dropped = hooks.after_staging(ctx)  # rows the ``staged`` hooks moved to quarantine
    if record.status != LoadedBatch.Status.PARTIAL:
        record.status = LoadedBatch.Status.LOADED
        if rejects:
            record.reason_class = _dominant_class(rejects)
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
    if incremental is not None and ctx.full_refresh:
        incremental.last = None  # from the start; the maximum read becomes the watermark once published
    streamed = ctx.warehouse.features.streamed_files
    with source_files(ctx.step.source, incremental, streamed=streamed, pipes=_pipes(ctx) if streamed else None) as files:
        if isinstance(files, Sized):  # a bucket's objects come one at a time: their number is not known
            outcome.files_total = len(files)
            outcome.bytes_total = getattr(files, "total_bytes", None)  # lazily prepared files: from their paths
            if outcome.bytes_total is None:
                outcome.bytes_total = sum(f.size or 0 for f in files)
        for f in files:
            try:
                batch = _stage_file(ctx, f, outcome, progress, {b.checksum: b.batch_id for b in staged})
            finally:
                if f.pipe is not None:
                    f.pipe.abort()  # no-op once decided; never left waiting
            if batch is not None:
                staged.append(batch)
            outcome.files_done += 1
            outcome.bytes_done += f.size or 0
            progress(outcome)
    if not staged:
        watermarks.published(incremental, ctx.step.output, ctx.warehouse)  # rows already loaded: it advances
        outcome.status = RunStatus.SKIPPED
        return outcome
    replace = ctx.write_mode == WriteMode.REPLACE  # a full refresh replaces what every file gives now
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


def _pipes(ctx: StepContext):
    """Pipes for ``source_files``: each CSV file loaded while its content scan reads it (one pass).

    Not for a file whose name the dataset's ledger holds already (a re-run over the same
    directory): that one is most likely loaded, and its checksum decides first, so it is
    never loaded for nothing. Any other file is streamed to the loader as it is read and the
    load kept only once the checksum, layout and record count allow it
    (``atlas.warehouse.pgcopy.Pipe``); a file whose content turns out loaded already (a
    copy under a new name) has its load rolled back.
    """
    dataset = ctx.step.output.qualified_table

    def pipe_for(label: str):
        if not ctx.full_refresh and ctx.warehouse.loaded_source(dataset, label[:1000]):
            return None
        batch_id = new_batch_id()
        staging = ingest_staging_name(ctx.target, attempt_tag(ctx.run.pk, ctx.run.attempt), batch_id)
        pipe = ctx.warehouse.copy_pipe(
            schema=ctx.schema, target=ctx.target, staging=staging, batch_id=batch_id, source_label=label[:1000]
        )
        if pipe is not None:
            ctx.staged_tables.append(staging)
        return pipe

    return pipe_for


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
