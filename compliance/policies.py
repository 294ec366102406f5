"""Column policies: validated, proposed from confirmed findings (and, by default, from unreviewed
findings above a confidence threshold), applied as SQL in the refine step.

The refine SELECT (PostgreSQL dialect) is wrapped in one outer SELECT whose
columns are the policies' expressions, so the warehouse applies them set-based
while it writes the staging table. Only in-text anonymisation runs in Python
(Presidio's anonymizer over the column's distinct values, written back with
one UPDATE ... FROM).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from sqlglot import exp

from atlas import audit
from atlas.sql.lineage import column_lineage
from atlas.warehouse import Warehouse
from pipelines.models import Dataset, Layer, Step

from .models import ColumnPolicy, PiiFinding

Action = ColumnPolicy.Action
logger = logging.getLogger(__name__)
SOURCE_ALIAS = "_atlas_src"


class PolicyError(ValueError):
    """A policy that cannot be applied as written; the message says what to change."""


# --- validation ---------------------------------------------------------------------
def validate_policy(action: str, options: dict | None, reason: str) -> None:
    options = options or {}
    if action not in Action.values:
        raise PolicyError(f"Unknown action {action!r}; choose one of {', '.join(Action.values)}.")
    if not isinstance(options, dict):
        raise PolicyError("Options must be a JSON object.")
    if action == Action.KEEP and not (reason or "").strip():
        raise PolicyError("Keeping a PII column in clear needs a reason.")
    if action == Action.MASK:
        keep = options.get("keep_last", 4)
        if not isinstance(keep, int) or isinstance(keep, bool) or not 0 <= keep <= 64:
            raise PolicyError("mask: keep_last must be a whole number from 0 to 64.")
    if action == Action.REDACT and "text" in options and not isinstance(options["text"], str):
        raise PolicyError("redact: text must be a string (or left out for null).")
    if action == Action.GENERALISE:
        to = options.get("to")
        if to not in ("year", "month", "prefix"):
            raise PolicyError('generalise: set "to" to "year", "month" (dates) or "prefix" (postcodes).')
        chars = options.get("chars", 3)
        if to == "prefix" and (not isinstance(chars, int) or isinstance(chars, bool) or not 1 <= chars <= 10):
            raise PolicyError("generalise prefix: chars must be a whole number from 1 to 10.")


# --- the keyed pseudonym -------------------------------------------------------------
@dataclass(frozen=True)
class HashKey:
    key_id: str
    ipad: bytes
    opad: bytes


def hash_key() -> HashKey:
    """The HMAC pads of ``PII_HASH_KEY`` (RFC 2104), and a non-secret id for the key."""
    if not settings.PII_HASH_KEY:
        raise PolicyError(
            "PII_HASH_KEY is not set: hash policies need it. Set it to a long random string (it keys"
            " the pseudonyms in Chart; changing it changes every token)."
        )
    if getattr(settings, "PII_HASH_KEY_IS_DEVELOPMENT", False):
        logger.warning(
            "PII_HASH_KEY is not set: hashing with a DEVELOPMENT key derived from SECRET_KEY (DEBUG only)."
            " Tokens made with it are not protected by a secret of their own; set PII_HASH_KEY before"
            " real data reaches Chart, and expect every token to change when you do."
        )
    key = settings.PII_HASH_KEY.encode()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    key_id = hmac.new(settings.PII_HASH_KEY.encode(), b"atlas-pii-key-id", hashlib.sha256).hexdigest()[:16]
    return HashKey(key_id, bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key))


def pseudonym(value: str) -> str:
    """What the warehouse writes for ``value`` under the hash policy (HMAC-SHA256, hex)."""
    return hmac.new(settings.PII_HASH_KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


# --- policy to SQL (PostgreSQL dialect; transpiled with the step) -------------------
def policy_sql(policy: ColumnPolicy, expr: str, wh: Warehouse, key: HashKey | None = None) -> str | None:
    """The expression that replaces ``expr`` under ``policy``; None drops the column."""
    opts = policy.options or {}
    text = f"CAST({expr} AS text)"
    if policy.action in (Action.KEEP, Action.ANONYMISE_TEXT):
        return expr
    if policy.action == Action.DROP:
        return None
    if policy.action == Action.HASH:
        return wh.pii_hmac_sql(expr, (key or hash_key()).key_id)
    if policy.action == Action.MASK:
        n = int(opts.get("keep_last", 4))
        return (
            f"CASE WHEN length({text}) > {n} THEN repeat('*', length({text}) - {n}) || right({text}, {n})"
            f" ELSE repeat('*', length({text})) END"
        )
    if policy.action == Action.REDACT:
        return f"CAST({wh.literal(opts['text'])} AS text)" if "text" in opts else "CAST(NULL AS text)"
    if policy.action == Action.GENERALISE:
        if opts["to"] == "year":
            return f"CAST(extract(year FROM {expr}) AS integer)"
        if opts["to"] == "month":
            return f"CAST(date_trunc('month', {expr}) AS date)"
        n = int(opts.get("chars", 3))
        return f"CASE WHEN strpos({text}, ' ') > 0 THEN split_part({text}, ' ', 1) ELSE left({text}, {n}) END"
    raise PolicyError(f"Unknown action {policy.action!r}.")


def output_columns(select_sql: str, wh: Warehouse, *, layer: str) -> list[str]:
    """The result's column names, from the SQL; from the warehouse when it selects ``*``.

    The warehouse plans the operator's SQL as operator SQL of ``layer`` (the layer the
    step writes; restricted: on PostgreSQL as that layer's operator-SQL role), never with
    the owner's rights.
    """
    root = sqlglot.parse_one(select_sql, read="postgres")
    if isinstance(root, exp.Query) and not any(isinstance(e, exp.Star) or e.is_star for e in root.selects):
        return list(root.named_selects)
    return wh.operator_columns(wh.transpile(select_sql), layer=layer)


def protect_select(select_sql: str, dataset: Dataset, wh: Warehouse) -> tuple[str, dict[str, str]]:
    """Wrap the step's SELECT so each column with a policy is written through it.

    Returns the new SQL (unchanged when no policy applies) and what was applied
    per column. Policies for columns the SELECT does not produce are reported
    as ``"absent"`` and otherwise ignored.

    Hash policies are not in the returned SQL: the statement runs as the
    operator-SQL role, which must neither read the key nor call anything that
    hashes with it (else pseudonyms could be reversed by guessing). Their columns
    pass through in clear into a staging table that role cannot read, and
    ``apply_hash_policies`` (Atlas's own SQL, the owner's rights) hashes them
    before anything else reads the table.
    """
    policies = {p.column: p for p in ColumnPolicy.objects.filter(dataset=dataset)}
    if not policies:
        return select_sql, {}
    columns = output_columns(select_sql, wh, layer=dataset.layer)
    if any(p.action == Action.HASH for p in policies.values()):
        key = hash_key()  # fail here, before any row is read, when no key is configured
        wh.ensure_pii_hmac(key.key_id, key.ipad, key.opad)
    parts, applied = [], {}
    for name in columns:
        ref = f"{SOURCE_ALIAS}.{wh.quote(name)}"
        policy = policies.get(name)
        if policy is None:
            parts.append(ref)
            continue
        expr = ref if policy.action == Action.HASH else policy_sql(policy, ref, wh)
        applied[name] = policy.action
        if expr is not None:
            parts.append(f"{expr} AS {wh.quote(name)}")
    for name in set(policies) - set(columns):
        applied[name] = "absent"
    if not parts:
        raise PolicyError(f"The policies of {dataset.name} drop every column; keep at least one.")
    return f"SELECT {', '.join(parts)} FROM ({select_sql}) AS {SOURCE_ALIAS}", applied


def hashed_columns(applied: dict[str, str]) -> list[str]:
    """The columns ``protect_select`` left in clear for ``apply_hash_policies``."""
    return [c for c, action in applied.items() if action == Action.HASH]


def apply_hash_policies(wh: Warehouse, schema: str, table: str, columns: Iterable[str]) -> None:
    """Replace each of ``columns`` of a staged table by its keyed pseudonym (one pass, the owner's rights).

    The same expression as before, ``pii_hmac_sql(CAST(value AS text))``, over the
    value as staged (same type as the SELECT gave): the same token for the same value.
    """
    hashed = set(columns)
    if not hashed:
        return
    key = hash_key()
    wh.ensure_pii_hmac(key.key_id, key.ipad, key.opad)
    select = []
    for col in wh.columns(schema, table):
        q = wh.quote(col.name)
        select.append(f"{wh.pii_hmac_sql(q, key.key_id)} AS {q}" if col.name in hashed else q)
    wh.rewrite_table(schema, table, ", ".join(select))


# --- where data flows: output columns of a refine step and their sources ------------
def column_sources(
    step: Step, catalog: dict[tuple[str, str], list[str] | None] | None = None
) -> dict[str, set[tuple[str, str, str]]]:
    """Each output column of a refine (or aggregate) step and the (layer, table, column) it reads.

    Every input the column's lineage lists (``atlas.sql.lineage``, the engine the
    lineage graph and its OpenLineage facet read too): what its value is made of,
    and what decides it for that column alone (a CASE condition, a window's
    partition, a scalar subquery's filter) — not what decides which rows exist.
    ``catalog``: the inputs' columns by (layer, table), when the caller has read them already.
    """
    if catalog is None:
        inputs = list(step.inputs.prefetch_related("columns")) or _inputs(step)
        catalog = {(ds.layer, ds.table): [c.name for c in ds.columns.all()] or None for ds in inputs}
    traced = column_lineage(step.sql, catalog)
    return {name: traced.inputs(name) for name in traced.outputs}


def _inputs(step: Step) -> list[Dataset]:
    from pipelines.transform import step_inputs

    return step_inputs(step)


def gated_findings():
    """The findings Chart must protect: confirmed ones, and unreviewed ones protected by default."""
    from django.db.models import Q

    return PiiFinding.objects.filter(
        Q(status=PiiFinding.Status.CONFIRMED)
        | Q(status=PiiFinding.Status.PROPOSED, confidence__gte=settings.PII_DEFAULT_PROTECT_CONFIDENCE)
    )


def confirmed_entities(step: Step) -> dict[str, set[str]]:
    """Output columns of a refine step that carry gated PII (:func:`gated_findings`), with the entities."""
    findings = gated_findings().select_related("dataset")
    by_source: dict[tuple[str, str, str], set[str]] = {}
    for f in findings:
        by_source.setdefault((f.dataset.layer, f.dataset.table, f.column), set()).add(f.entity)
    if not by_source:
        return {}
    out: dict[str, set[str]] = {}
    for column, sources in column_sources(step).items():
        entities = set().union(*(by_source.get(s, set()) for s in sources)) if sources else set()
        entities |= by_source.get((step.output.layer, step.output.table, column), set())
        if entities:
            out[column] = entities
    return out


def unprotected_columns(step: Step) -> dict[str, set[str]]:
    """Columns of a Chart step carrying confirmed PII, or unreviewed PII above the default-protection
    confidence, with no policy: publishing them is refused."""
    if step.kind != Step.Kind.REFINE:
        return {}
    carrying = confirmed_entities(step)
    covered = set(ColumnPolicy.objects.filter(dataset=step.output, column__in=carrying).values_list("column", flat=True))
    return {c: e for c, e in carrying.items() if c not in covered}


# --- state changes (audited) ----------------------------------------------------------
def default_policy(entity: str, *, free_text: bool = False) -> dict:
    if free_text:
        return {"action": Action.ANONYMISE_TEXT}
    defaults = settings.PII_DEFAULT_POLICIES
    return dict(defaults.get(entity) or defaults.get("*") or {"action": Action.HASH})


def policy_targets(
    finding: PiiFinding, sources_cache: dict | None = None, steps: Iterable[Step] | None = None
) -> set[tuple[int, str]]:
    """(Chart dataset id, column) of every column the finding's data reaches: itself if in Chart, and
    each refine step's output column whose lineage reads it (of ``steps``, or of the steps that
    declare the finding's dataset among their inputs)."""
    targets: set[tuple[int, str]] = set()
    if finding.dataset.layer == Layer.CHART:
        targets.add((finding.dataset_id, finding.column))
    source = (finding.dataset.layer, finding.dataset.table, finding.column)
    cache = {} if sources_cache is None else sources_cache
    if steps is None:
        steps = Step.objects.filter(kind=Step.Kind.REFINE, inputs=finding.dataset).select_related("output")
    for step in steps:
        if step.kind != Step.Kind.REFINE:
            continue
        if step.pk not in cache:
            try:
                cache[step.pk] = column_sources(step)
            except Exception as exc:  # a step whose SQL cannot be traced: its gate refuses to publish
                logger.warning("Column lineage of step %s not traced: %s", step.pk, type(exc).__name__)
                cache[step.pk] = {}
        for column, sources in cache[step.pk].items():
            if source in sources:
                targets.add((step.output_id, column))
    return targets


def propose_policies(
    finding: PiiFinding, *, actor=None, by_default: bool = False, sources_cache: dict | None = None,
    steps: Iterable[Step] | None = None,
) -> list[ColumnPolicy]:
    """Give every Chart column the finding's data reaches its entity's default policy.

    A column that already has a policy keeps it: a steward's choice is never
    overwritten by a proposal. ``by_default``: the finding is not reviewed yet
    (privacy by default); the policies say so and which finding they wait on.
    Confirming a finding turns its default policies into ordinary proposed ones
    (returned with the new ones).
    """
    created: list[ColumnPolicy] = []
    if not by_default:
        for policy in ColumnPolicy.objects.filter(default_for=finding, by_default=True):
            policy.by_default, policy.proposed, policy.default_for = False, True, None
            policy.save(update_fields=["by_default", "proposed", "default_for", "updated_at"])
            audit.record(
                "pii.policy.proposed", actor=actor, target=policy, column=policy.column, policy=policy.action,
                options=policy.options, finding_id=finding.pk, was_default=True,
            )
            created.append(policy)
    spec = default_policy(finding.entity, free_text=finding.free_text)
    validate_policy(spec["action"], spec.get("options"), spec.get("reason", ""))
    for dataset_id, column in sorted(policy_targets(finding, sources_cache, steps)):
        if ColumnPolicy.objects.filter(dataset_id=dataset_id, column=column).exists():
            continue
        policy = ColumnPolicy.objects.create(
            dataset_id=dataset_id,
            column=column,
            action=spec["action"],
            options=spec.get("options", {}),
            reason=spec.get("reason", ""),
            entity=finding.entity,
            proposed=not by_default,
            by_default=by_default,
            default_for=finding if by_default else None,
            updated_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit.record(
            "pii.policy.default_applied" if by_default else "pii.policy.proposed", actor=actor, target=policy,
            column=column, policy=policy.action, options=policy.options, finding_id=finding.pk,
            confidence=finding.confidence,
        )
        created.append(policy)
    return created


def default_protected_findings():
    """Findings not reviewed yet whose confidence calls for protection by default."""
    return PiiFinding.objects.filter(
        status=PiiFinding.Status.PROPOSED, confidence__gte=settings.PII_DEFAULT_PROTECT_CONFIDENCE
    )


AWAITING_REVIEW = "protected by default, awaiting review"


def review_state(finding: PiiFinding, default_policies: Iterable[ColumnPolicy]) -> str:
    """What a steward sees of a finding's state: decided, protected by default while awaiting review,
    or awaiting review unprotected (below the threshold, or nothing in Chart reads it)."""
    if finding.status != PiiFinding.Status.PROPOSED:
        return finding.get_status_display().lower()
    if any(p.by_default for p in default_policies):
        return AWAITING_REVIEW
    if finding.confidence < settings.PII_DEFAULT_PROTECT_CONFIDENCE:
        return f"awaiting review, not protected (confidence below {settings.PII_DEFAULT_PROTECT_CONFIDENCE})"
    return "awaiting review (no Chart column reads it)"


@transaction.atomic
def protect_by_default(
    *, datasets: Iterable[Dataset] | None = None, steps: Iterable[Step] | None = None, actor=None
) -> list[ColumnPolicy]:
    """Privacy by default (GDPR Art. 25): make the default protections match the unreviewed findings.

    Every proposed finding at or above ``PII_DEFAULT_PROTECT_CONFIDENCE`` (of ``datasets``,
    or all) gives the Chart columns it reaches its entity's default policy, marked
    ``by_default``; a default policy whose finding was decided, went away or fell below
    the threshold is withdrawn. Columns with a policy are left alone. Idempotent; audited.
    ``steps``: only what these refine steps write, from the findings of what they read (the
    refine hook, before the step writes Chart; its inputs need not be saved yet).
    """
    live = default_protected_findings()
    for policy in ColumnPolicy.objects.filter(by_default=True).exclude(default_for__in=live).select_related("dataset"):
        audit.record(
            "pii.policy.default_withdrawn", actor=actor, target=policy, column=policy.column,
            policy=policy.action, finding_id=policy.default_for_id,
        )
        policy.delete()
    if steps is not None:
        steps = list(steps)
        read = {ds.pk for step in steps for ds in [*(list(step.inputs.all()) or _inputs(step)), step.output]}
        datasets = [*(datasets or []), *Dataset.objects.filter(pk__in=read)]
    if datasets is not None:
        live = live.filter(dataset__in=list(datasets))
    created: list[ColumnPolicy] = []
    cache: dict = {}
    for finding in live.select_related("dataset").order_by("-confidence", "pk"):
        created += propose_policies(finding, actor=actor, by_default=True, sources_cache=cache, steps=steps)
    return created


@transaction.atomic
def decide_finding(finding: PiiFinding, *, status: str, actor, note: str = "") -> list[ColumnPolicy]:
    """Confirm or dismiss a finding (audited); confirming proposes the default policies."""
    if status not in (PiiFinding.Status.CONFIRMED, PiiFinding.Status.DISMISSED, PiiFinding.Status.PROPOSED):
        raise PolicyError(f"Unknown finding status {status!r}.")
    previous = finding.status
    finding.status, finding.note = status, note or finding.note
    finding.decided_by = actor if getattr(actor, "is_authenticated", False) else None
    finding.decided_at = timezone.now()
    finding.save(update_fields=["status", "note", "decided_by", "decided_at", "updated_at"])
    audit.record(
        f"pii.finding.{status}", actor=actor, target=finding, dataset=finding.dataset.name,
        column=finding.column, entity=finding.entity, previous=previous, note=note,
    )
    proposed = propose_policies(finding, actor=actor) if status == PiiFinding.Status.CONFIRMED else []
    # A dismissal withdraws the finding's default protection (another unreviewed finding reaching
    # the same column gives it back its own).
    protect_by_default(actor=actor)
    return proposed


@transaction.atomic
def keep_finding(finding: PiiFinding, *, reason: str, actor) -> list[ColumnPolicy]:
    """Confirm a finding and keep its data in clear, with the steward's reason, wherever it reaches Chart.

    The finding is confirmed (audited, with the reason as its note) and each Chart column its data
    reaches gets the ``keep`` policy with that reason (audited with what it replaces).
    """
    reason = (reason or "").strip()
    validate_policy(Action.KEEP, None, reason)  # no reason: refused before anything changes
    decide_finding(finding, status=PiiFinding.Status.CONFIRMED, actor=actor, note=reason)
    datasets = {d.pk: d for d in Dataset.objects.filter(pk__in={pk for pk, _c in policy_targets(finding)})}
    return [set_policy(datasets[pk], column, action=Action.KEEP, reason=reason, actor=actor)
            for pk, column in sorted(policy_targets(finding))]


@transaction.atomic
def set_policy(
    dataset: Dataset, column: str, *, action: str, options: dict | None = None, reason: str = "", actor
) -> ColumnPolicy:
    """Create or change a column's policy (validated, audited with the previous value)."""
    if dataset.layer != Layer.CHART:
        raise PolicyError("Column policies apply to Chart datasets (where refine steps write).")
    validate_policy(action, options, reason)
    policy = ColumnPolicy.objects.filter(dataset=dataset, column=column).first()
    before = {"action": policy.action, "options": policy.options, "reason": policy.reason} if policy else None
    policy = policy or ColumnPolicy(dataset=dataset, column=column)
    policy.action, policy.options, policy.reason, policy.proposed = action, options or {}, reason, False
    policy.by_default, policy.default_for = False, None  # the steward decided this column
    policy.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    policy.save()
    audit.record(
        "pii.policy.set", actor=actor, target=policy, column=column, policy=action, options=options or {},
        reason=reason, before=before,
    )
    return policy


def record_policy_change(policy: ColumnPolicy, *, actor, before: dict | None, deleted: bool = False) -> None:
    """The audit row for a policy changed through a form (the admin)."""
    audit.record(
        "pii.policy.deleted" if deleted else "pii.policy.set", actor=actor, target=policy,
        column=policy.column, policy=policy.action, options=policy.options, reason=policy.reason, before=before,
    )


# --- in-text anonymisation (the one row-wise Python path) ------------------------------
def anonymised_texts(texts: list[str], *, entities: Iterable[str] | None = None, prefilter: bool = True,
                     processes: int | None = None) -> list[tuple[str, str]]:
    """``(text, anonymised)`` for each text with PII of the free-text entities inside it, in order.

    Only the recognizers of the free-text entities run (``entities``, default
    ``FREE_TEXT_ENTITIES``): the others' results were dropped anyway, and Presidio
    removes overlaps only between results of one entity type, so asking for fewer
    entities gives the same spans and scores at less than half the cost (a test
    compares it with every recognizer's answer). And of those, each text meets only the
    ones that can match it (``compliance.prefilter``: no e-mail recognizer without an ``@``,
    no phone matcher below four digits); a text none can match is not analysed at all.
    ``prefilter=False`` runs every wanted recognizer on every text (the tests compare the two).
    Many texts are analysed in several processes (``compliance.free_text``; ``processes``
    overrides how many, 1: this one).
    """
    from django.conf import settings

    from .detection import FREE_TEXT_ENTITIES, FREE_TEXT_MIN_SCORE
    from .free_text import anonymised, anonymised_in_processes, processes_for

    options = {"wanted": FREE_TEXT_ENTITIES if entities is None else set(entities), "keep": FREE_TEXT_ENTITIES,
               "min_scores": dict(FREE_TEXT_MIN_SCORE), "prefilter": prefilter, "ner": bool(settings.PII_SPACY_MODEL)}
    n = processes_for(len(texts), processes=processes)
    if n > 1:
        return anonymised_in_processes(texts, n, **options)
    return anonymised(texts, **options)


def anonymise_text_columns(wh: Warehouse, schema: str, table: str, columns: Iterable[str]) -> dict[str, int]:
    """Replace PII inside free text with its entity type, value by distinct value.

    The distinct values are analysed and anonymised with Presidio in batch
    (:func:`anonymised_texts`); the changed ones replace the old in one pass
    (``Warehouse.replace_values``).
    """
    changed_counts: dict[str, int] = {}
    for column in columns:
        q, tbl = wh.quote(column), wh.table(schema, table)
        with wh.cursor() as cur:
            values = [r[0] for r in cur.execute(f"SELECT DISTINCT {q} FROM {tbl} WHERE {q} IS NOT NULL").fetchall()]
        mapping = anonymised_texts([str(v) for v in values])
        changed_counts[column] = len(mapping)
        if mapping:
            wh.replace_values(schema, table, column, mapping)
    return changed_counts
