"""Audit events in words: ``alice erased the subject of DSR #12 from 3 tables (41 rows)``.

The audit log stores machine names (``dsr.erasure.deleted``) and a JSON detail; the admin shows
each event as one sentence — who, what, on what, with the counts that matter — made here from the
action and the detail (:func:`sentence`), and the detail as labelled lines (:func:`detail_lines`).
The sentences hold names and counts the event already recorded, never more: the detail of an event
is written without identifier values (a request's identifiers are counted, not kept), and nothing
here reads anything but the event.

An action without its own sentence reads as its verb and target (``Changed pipeline ecommerce``),
so a new action is never shown as a code. Events written by Django's model tracking
(``<app>.<model>.created|updated|deleted``, ``atlas.audit_tracking``) name the model and, for a
change, the fields changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .humanize import audit_action, number

SYSTEM_ACTOR = "Atlas"  # an event no user or named process caused (beat, a command without --actor)


def _plural(count: Any, word: str, plural: str | None = None) -> str:
    try:
        n = int(count)
    except (TypeError, ValueError):
        return f"{count} {plural or word + 's'}"
    return f"{number(n)} {word if n == 1 else (plural or word + 's')}"


def _count(value: Any) -> int | None:
    """A count recorded as a number, a list or a mapping (its length)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, list | tuple | dict):
        return len(value)
    return None


def _rows_in(tables: Any) -> int | None:
    """The rows of ``{table: rows}``, summed."""
    if isinstance(tables, dict):
        try:
            return sum(int(v) for v in tables.values())
        except (TypeError, ValueError):
            return None
    return None


def _column(d: Mapping[str, Any], target: str) -> str:
    """``dataset.column`` when the event names both, else what it names."""
    column, dataset = d.get("column") or "", d.get("dataset") or ""
    if column and dataset and "." not in str(column):
        return f"{dataset}.{column}"
    return str(column or target)


def _erased(d: Mapping[str, Any], target: str) -> str:
    tables = d.get("tables")
    text = f"erased the subject of {target} from {_plural(_count(tables) or 0, 'table')}"
    rows = _rows_in(tables)
    return text + (f" ({_plural(rows, 'row')})" if rows is not None else "")


def _verified(d: Mapping[str, Any], target: str) -> str:
    residue = _count(d.get("residue")) or 0
    checked = _plural(d.get("tables", 0), "table")
    if residue:
        return f"checked the erasure of {target}: {checked} read, rows left in {_plural(residue, 'table')}"
    return f"verified the erasure of {target}: {checked} read, nothing left"


def _finding(verb: str) -> Callable[[Mapping[str, Any], str], str]:
    def phrase(d: Mapping[str, Any], target: str) -> str:
        entity = d.get("entity") or "PII"
        return f"{verb} the {entity} finding on {_column(d, target)}"
    return phrase


def _policy(verb: str) -> Callable[[Mapping[str, Any], str], str]:
    def phrase(d: Mapping[str, Any], target: str) -> str:
        policy = d.get("policy") or "a policy"
        return f"{verb} {policy} on column {_column(d, target)}"
    return phrase


def _request_to(status: str) -> Callable[[Mapping[str, Any], str], str]:
    words = {"verified": "verified", "running": "started", "completed": "completed", "rejected": "rejected",
             "cancelled": "cancelled", "failed": "marked as failed"}

    def phrase(d: Mapping[str, Any], target: str) -> str:
        verb = words.get(status)
        return f"{verb} {target}" if verb else f"moved {target} to {status.replace('_', ' ')}"
    return phrase


def _tracked_change(d: Mapping[str, Any], what: str) -> str:
    changes = d.get("changes")
    if isinstance(changes, dict) and changes:
        names = sorted(changes)
        shown = ", ".join(n.replace("_", " ") for n in names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        return f"changed {what}: {shown}"
    return f"changed {what}"


def _retention(verb: str, thing: str) -> Callable[[Mapping[str, Any], str], str]:
    def phrase(d: Mapping[str, Any], target: str) -> str:
        text = f"{verb} the {thing} of {d.get('dataset') or target}"
        if thing == "retention policy" and d.get("period_days") is not None:
            text += f" ({_plural(d['period_days'], 'day')}, then {d.get('policy_action') or d.get('action') or 'expire'})"
        if thing == "record of processing" and d.get("legal_basis"):
            text += f" (legal basis: {d['legal_basis']})"
        return text
    return phrase


def _retention_run(d: Mapping[str, Any], target: str) -> str:
    if d.get("status") == "failed":
        return f"tried to apply retention to {target}; it failed (retention run #{d.get('run')})"
    removed, dropped = d.get("rows_removed") or 0, d.get("partitions_dropped") or 0
    text = f"applied retention to {target}: {_plural(removed, 'row')} removed"
    return text + (f", {_plural(dropped, 'partition')} dropped" if dropped else "")


def _definitions(d: Mapping[str, Any], target: str) -> str:
    parts = [f"{_count(d.get(k)) or 0} {k}" for k in ("created", "updated", "deleted") if _count(d.get(k))]
    return "applied definitions from files" + (f": {', '.join(parts)}" if parts else ", nothing changed")


# action -> callable(detail, target) -> what the actor did (lower case, no full stop)
PHRASES: dict[str, Callable[[Mapping[str, Any], str], str]] = {
    "pipeline.run": lambda d, t: f"started run #{d.get('run_id')} of pipeline {t}"
    + (" (full refresh)" if d.get("full_refresh") else "") + (f", from {d['trigger']}" if d.get("trigger") else ""),
    "pipeline.cancel": lambda d, t: f"cancelled run #{d.get('run_id')} of pipeline {t}"
    + (f" ({str(d['outcome']).replace('_', ' ')})" if d.get("outcome") else ""),
    "pipeline.backfill": lambda d, t: f"started a backfill of pipeline {t}: {_plural(d.get('intervals', 0), 'interval')}"
    + (f" from {str(d['start'])[:10]} to {str(d['end'])[:10]}" if d.get("start") and d.get("end") else ""),
    "pipeline.backfill_rerun": lambda d, t: f"re-ran {_plural(d.get('intervals', 0), 'interval')} of backfill"
    f" #{d.get('backfill_id')} of pipeline {t}",
    "pipeline.backfill_cancel": lambda d, t: f"cancelled backfill #{d.get('backfill_id')} of pipeline {t}",
    "dataset.downloaded": lambda d, t: f"downloaded {t} as {str(d.get('format') or 'csv').upper()}"
    f" ({_plural(_count(d.get('columns')) or 0, 'column')})",
    "quality.reprocess": lambda d, t: f"re-processed {_plural(d.get('selected', 0), 'quarantined row')} of {t}:"
    f" {number(d.get('published', 0))} published, {number(d.get('requarantined', 0))} quarantined again",
    "pii.scan": lambda d, t: f"scanned {d.get('dataset') or t} for PII"
    + (f" (a sample of {_plural(d['sample_size'], 'row')})" if d.get("sample_size") else ""),
    "pii.finding.confirmed": _finding("confirmed"),
    "pii.finding.dismissed": _finding("dismissed"),
    "pii.finding.proposed": _finding("re-opened"),
    "pii.finding.note": lambda d, t: f"wrote a note on the PII finding on {_column(d, t)}",
    "pii.policy.proposed": _policy("proposed"),
    "pii.policy.default_applied": _policy("applied by default"),
    "pii.policy.default_withdrawn": lambda d, t: f"withdrew the default {d.get('policy') or 'policy'} of column {_column(d, t)}",
    "pii.policy.set": _policy("set"),
    "pii.policy.deleted": lambda d, t: f"removed the {d.get('policy') or ''} policy of column {_column(d, t)}".replace("  ", " "),
    "pii.view_clear": lambda d, t: f"viewed {_plural(_count(d.get('columns')) or 0, 'PII column')} in clear"
    + (f" in {t}" if t else "") + (f" ({_plural(d['rows'], 'row')})" if isinstance(d.get("rows"), int) else ""),
    "lineage.pii_flag": lambda d, t: f"marked column {d.get('column') or t} as {d.get('entity') or 'no PII'}",
    "lineage.pii_protected": lambda d, t: f"marked column {d.get('column') or t} as "
    + ("protected" if d.get("protected") else "not protected"),
    "dsr.request.received": lambda d, t: f"received {t}"
    + (f", identifying the subject by {', '.join(sorted(d['identifier_kinds']))}" if isinstance(d.get("identifier_kinds"), dict) and d["identifier_kinds"] else ""),
    "dsr.request.assigned": lambda d, t: f"assigned {t} to {d['assignee']}" if d.get("assignee") else f"unassigned {t}",
    "dsr.request.review": lambda d, t: f"sent {t} for a steward's review"
    + (" (the subject's keys reach further than declared)" if d.get("reason") == "expansion" else ""),
    "dsr.request.error": lambda d, t: f"ran {t}; it stopped with an error (see the request)",
    "dsr.erasure.deleted": _erased,
    "dsr.erasure.rebuilt": lambda d, t: f"rebuilt {_plural(_count(d.get('steps')) or 0, 'step')} after erasing {t}"
    f" (run #{d.get('run_id')}, {d.get('status') or 'unknown'})",
    "dsr.erasure.verified": _verified,
    "dsr.tombstones": lambda d, t: f"recorded {_plural(d.get('created', 0), 'erasure tombstone')} for {t}",
    "dsr.export.created": lambda d, t: f"exported {_plural(d.get('rows', 0), 'row')} from"
    f" {_plural(d.get('tables', 0), 'table')} for {t} (export #{d.get('export_id')})",
    "dsr.export.downloaded": lambda d, t: f"downloaded export #{d.get('export_id')} of {t}",
    "dsr.export.refused": lambda d, t: f"was refused export #{d.get('export_id')} of {t} ({d.get('reason') or 'refused'})",
    "dsr.export.deleted": lambda d, t: f"deleted export #{d.get('export_id')} of {t} ({d.get('reason') or 'deleted'})",
    "dsr.reference.retained": lambda d, t: f"kept references to erased subjects in {_column(d, t)}"
    + (f" (legal basis: {d['legal_basis']})" if d.get("legal_basis") else ""),
    "dsr.key.proposed": lambda d, t: f"proposed {_column(d, t)} as a subject key" + (f" ({d['kind']})" if d.get("kind") else ""),
    "dsr.key.confirmed": lambda d, t: f"confirmed {_column(d, t)} as a subject key" + (f" ({d['kind']})" if d.get("kind") else ""),
    "retention.policy_created": _retention("created", "retention policy"),
    "retention.policy_changed": _retention("changed", "retention policy"),
    "retention.policy_updated": _retention("changed", "retention policy"),
    "retention.policy_deleted": _retention("deleted", "retention policy"),
    "retention.record_created": _retention("created", "record of processing"),
    "retention.record_changed": _retention("changed", "record of processing"),
    "retention.record_updated": _retention("changed", "record of processing"),
    "retention.record_deleted": _retention("deleted", "record of processing"),
    "retention.records_exported": lambda d, t: f"exported the records of processing as {str(d.get('format') or '').upper() or 'a file'}",
    "retention.applied": _retention_run,
    "retention.failed": _retention_run,
    "definitions.apply": _definitions,
    "api_token.created": lambda d, t: f"created an API token for {t}",
    "api_token.revoked": lambda d, t: f"revoked {_plural(_count(d.get('tokens')) or 0, 'API token')} of {t}",
}


def _model_name(target_type: str) -> str:
    """``pipelines.dataset`` -> 'dataset', ``auth.user`` -> 'user' (the model's verbose name when known)."""
    from django.apps import apps

    try:
        return str(apps.get_model(target_type)._meta.verbose_name)
    except (LookupError, ValueError):
        return target_type.rsplit(".", 1)[-1].replace("_", " ")


def _tracked(action: str, target_type: str, d: Mapping[str, Any], target: str) -> str | None:
    """Model tracking's ``app.model.created|updated|deleted`` (and ``app.model.<relation>_added``)."""
    if not target_type or not action.startswith(target_type + "."):
        return None
    verb = action[len(target_type) + 1:]
    what = f"{_model_name(target_type)} {target}".strip()
    if verb == "created":
        return f"created {what}"
    if verb == "deleted":
        return f"deleted {what}"
    if verb == "updated":
        return _tracked_change(d, what)
    for suffix, word in (("_added", "added"), ("_removed", "removed"), ("_cleared", "cleared")):
        if verb.endswith(suffix):
            relation = verb[: -len(suffix)]
            names = d.get(relation)
            listed = ", ".join(str(n) for n in names[:5]) if isinstance(names, list) and names else ""
            to = "to" if word == "added" else "from"
            return f"{word} {relation.replace('_', ' ')} {listed} {to} {what}".replace("  ", " ")
    return None


def actor(event: Any) -> str:
    return event.actor_name or SYSTEM_ACTOR


def phrase(action: str, detail: Any, target: str = "", target_type: str = "") -> str:
    """What was done, without the actor: 'erased the subject of DSR #12 from 3 tables (41 rows)'."""
    d = detail if isinstance(detail, Mapping) else {}
    target = target or ""
    maker = PHRASES.get(action)
    if maker is not None:
        try:
            return maker(d, target)
        except (TypeError, ValueError, KeyError, AttributeError):
            pass  # an older event with another shape: the generic words below
    tracked = _tracked(action, target_type, d, target)
    if tracked:
        return tracked
    words = audit_action(action)
    words = words[:1].lower() + words[1:] if words[:2] != "PI" else words
    return f"{words} {target}".strip() if target and target not in words else words


def sentence(event: Any) -> str:
    """The event in one sentence: ``alice erased the subject of DSR #12 from 3 tables (41 rows)``."""
    return f"{actor(event)} {phrase(event.action, event.detail, event.target_repr, event.target_type)}"


def _value(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) if value else "none"
    if isinstance(value, dict):
        if set(value) == {"from", "to"}:
            return f"{_value(value['from'])} → {_value(value['to'])}"
        return "; ".join(f"{k}: {_value(v)}" for k, v in value.items()) or "none"  # keys are names (tables)
    return str(value)


def detail_lines(detail: Any) -> list[tuple[str, str]]:
    """The recorded detail as (label, value) lines in words, in the order it was recorded."""
    if not isinstance(detail, Mapping):
        return [("detail", _value(detail))] if detail not in (None, "", {}) else []
    return [(str(key).replace("_", " "), _value(value)) for key, value in detail.items()]
