"""The privacy step hook: an erased subject cannot come back with a re-ingested file.

``TombstoneGuard`` (contributed by this app, ``order`` 200: right after compliance's hook):

* ``staged`` (ingest): rows of the staged batch whose key columns hash to a
  tombstone move to the dataset's quarantine with the reason "erased data
  subject" — only the row's place (batch, row number, source) is kept, none
  of its values — and count as the step's rejected rows;
* ``published``: on PostgreSQL, the output table's confirmed keys get their
  index back (a replace publish swaps in a new table without it).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from pipelines.hooks import StepContext
from pipelines.models import Step

from .keys import Storage, ensure_indexes_for, targets, text_match_sql
from .models import SubjectKey, Tombstone

logger = logging.getLogger(__name__)
REASON = "erased data subject"


def guard_staged(ctx: StepContext) -> int:
    """Move the staged rows of erased subjects to quarantine; return how many moved."""
    wh, schema, staging = ctx.warehouse, ctx.schema, ctx.staging
    confirmed = SubjectKey.objects.filter(dataset_id=ctx.step.output_id, status=SubjectKey.Status.CONFIRMED)
    if not staging or not Tombstone.objects.filter(kind__in=confirmed.values("kind")).exists():
        return 0  # nobody erased with a kind this dataset holds: nothing to look for
    keys = [t for t in targets() if t.dataset_id == ctx.step.output_id]
    if not keys or not staging:
        return 0
    stones: dict[str, list[str]] = defaultdict(list)
    for kind, h in Tombstone.objects.filter(kind__in={k.kind for k in keys}).values_list("kind", "hash"):
        stones[kind].append(h)
    if not stones:
        return 0
    from compliance.policies import hash_key

    hk = hash_key()
    wh.ensure_pii_hmac(hk.key_id, hk.ipad, hk.opad)
    have = {c.name for c in wh.columns(schema, staging)}
    parts, params = [], []
    for k in keys:
        if k.column not in have or not stones.get(k.kind):
            continue
        col = wh.quote(k.column)
        hashed = f"CAST({col} AS text)" if k.storage == Storage.HASHED else wh.pii_hmac_sql(text_match_sql(wh, k.kind, col), hk.key_id)
        parts.append(f"{hashed} IN ({', '.join(['%s'] * len(stones[k.kind]))})")
        params.extend(stones[k.kind])
    if not parts:
        return 0
    where = " OR ".join(f"({p})" for p in parts)
    stg = wh.table(schema, staging)
    qname = wh.ensure_quarantine_table(schema, ctx.target)
    meta = {c: (wh.quote(c) if c in have else "NULL") for c in ("_batch_id", "_source", "_row_number")}
    with wh.transaction() as cur:
        moved = int(cur.execute(f"SELECT count(*) FROM {stg} WHERE {where}", params).fetchone()[0])
        if moved:
            cur.execute(
                f"INSERT INTO {wh.table(schema, qname)}"
                ' ("_batch_id", "_run_id", "_source", "_line_number", "_reason", "_raw_record", "_quarantined_at")'
                f" SELECT {meta['_batch_id']}, CAST(%s AS bigint), {meta['_source']}, CAST({meta['_row_number']} AS bigint),"
                f" %s, NULL, current_timestamp FROM {stg} WHERE {where}",
                [ctx.run.pk, REASON, *params],
            )
            cur.execute(f"DELETE FROM {stg} WHERE {where}", params)
    return moved


class TombstoneGuard:
    order = 200

    def staged(self, ctx: StepContext) -> None:
        if ctx.step.kind != Step.Kind.INGEST or not ctx.staging:
            return
        moved = guard_staged(ctx)
        if moved:
            ctx.rows_quarantined += moved
            ctx.step_run.details = {
                **(ctx.step_run.details or {}),
                "erased_subject_rows": int((ctx.step_run.details or {}).get("erased_subject_rows", 0)) + moved,
            }
            logger.info("Step %r: %s row(s) of erased data subjects quarantined.", ctx.step.name, moved)

    def published(self, ctx: StepContext) -> None:
        try:
            ensure_indexes_for(ctx.step.output, ctx.warehouse)
        except Exception:
            logger.exception("Indexing the subject keys of %s failed.", ctx.step.output.name)
