"""The independent verification scan: does anything still refer to the subject, anywhere?

Deliberately independent of the key declarations that erasure deletes with
(``privacy.search``): every column of every table of every dataset, and of
every quarantine table, is searched for every form of every identifier the
request expanded to:

* in every text-like column (text, varchar, JSON; raw quarantined records included):
  the clear identifiers (normalised: trimmed, lower case) as substrings, so an
  e-mail inside a note is found — for identifiers of at least
  :data:`MIN_TEXT_CHARS` characters that are not bare numbers (a short id such
  as ``7`` is inside everything);
* in the same columns, their HMAC pseudonyms under the current and every retained
  hash key (``PII_HASH_PREVIOUS_KEYS``), and the hashes expansion found, by equality
  (inside JSON and raw records as substrings);
* Atlas's own load metadata columns (``_batch_id``, ``_source``, ``_reason``...) are skipped;
* in columns named like the identifier's kind or like any key column of that kind
  (``customer_id``, ``..._customer_id``), whatever their type: every form, equal.

One query per table (``count(*) FILTER (WHERE ...)`` per column): set-based.

Each column still holding a reference is then judged: a confirmed key (rows
the erasure should have removed), retained with a steward's legal basis
(:class:`~privacy.models.RetainedReference`: explained, kept), or unexplained
("declare it a key, or keep it with a recorded legal basis"). The request
completes only when nothing unexplained is left.
"""

from __future__ import annotations

from collections import defaultdict

from django.utils import timezone

from atlas.warehouse import Warehouse
from pipelines.models import Dataset

from .identifiers import hash_forms
from .keys import match_sql, never_keys, warehouse_columns
from .models import RetainedReference, SubjectKey

MIN_TEXT_CHARS = 5
RAW_COLUMN = "_raw_record"
TEXT_TYPE_PARTS = ("char", "text", "string", "json")
KEY, RETAINED, UNEXPLAINED = "key", "retained", "unexplained"
# Kinds too generic to recognise by a name suffix (``product_id`` is not a customer's ``id``).
GENERIC_KINDS = frozenset({"id", "key", "code", "no", "nr", "number", "ref", "uid", "uuid"})


def is_text_type(data_type: str) -> bool:
    return any(part in (data_type or "").lower() for part in TEXT_TYPE_PARTS)


def forms(resolved: dict) -> tuple[dict[str, set[str]], set[str], set[str]]:
    """Every form of the identifiers: per kind (all forms), searched inside text, and hashes."""
    by_kind: dict[str, set[str]] = defaultdict(set)
    inside: set[str] = set()
    hashes: set[str] = set()
    for kind, values in (resolved or {}).get("clear", {}).items():
        for v in values:
            raw, text = str(v).strip(), str(v).strip().lower()
            tokens = hash_forms(raw) | hash_forms(text)
            by_kind[kind].update({text, *tokens})
            hashes |= tokens
            if len(text) >= MIN_TEXT_CHARS and not text.lstrip("+-").isdigit():
                inside.add(text)
    for kind, values in (resolved or {}).get("hashed", {}).items():
        for v in values:
            by_kind[kind].add(str(v).strip().lower())
            hashes.add(str(v).strip().lower())
    return by_kind, inside, hashes


def caseless_part(value: str) -> str:
    """The longest run of characters without case in ``value`` (digits, ``@``, ``.``, ``+``, spaces)."""
    best = run = ""
    for ch in value:
        run = run + ch if ch.lower() == ch.upper() else ""
        best = run if len(run) > len(best) else best
    return best


def _contains(quoted: str, value: str) -> tuple[str, list]:
    """``value`` (lower case) inside the column's text, whatever its case — lower() only where it can match.

    A case-insensitive match contains the value's caseless characters exactly as they are
    (no character lower-cases to a digit, ``@`` or ``.``), so a plain substring test on
    them first spares the costly ``lower()`` on every other row; an identifier without
    case (a phone number) needs no ``lower()`` at all.
    """
    text = f"CAST({quoted} AS text)"
    part = caseless_part(value)
    if part == value:
        return f"strpos({text}, %s) > 0", [value]
    if part:
        return f"(strpos({text}, %s) > 0 AND strpos(lower({text}), %s) > 0)", [part, value]
    return f"strpos(lower({text}), %s) > 0", [value]


def _named_like(column: str, kinds_by_name: dict[str, set[str]], kinds: set[str]) -> set[str]:
    """The kinds a column's name says it holds: the kind itself, ``..._<kind>``, or a key column's name."""
    name = column.lower()
    found = set(kinds_by_name.get(name, set()))
    found |= {k for k in kinds if name == k or (k not in GENERIC_KINDS and name.endswith(f"_{k}"))}
    return found


def scan(wh: Warehouse, resolved: dict, *, catalogue: dict | None = None) -> list[dict]:
    """Search every table for the subject; one entry per table with each column still referring to them."""
    by_kind, inside, hashes = forms(resolved)
    kinds = set(by_kind)
    keys = SubjectKey.objects.filter(status=SubjectKey.Status.CONFIRMED)
    kinds_by_name: dict[str, set[str]] = defaultdict(set)
    key_columns: set[tuple[int, str]] = set()
    for ds, column, kind in keys.values_list("dataset_id", "column", "kind"):
        kinds_by_name[column.lower()].add(kind)
        key_columns.add((ds, column))
    key_columns -= set(never_keys())
    retained = {(r.dataset_id, r.column): r.legal_basis for r in RetainedReference.objects.all()}
    now = timezone.now().isoformat()
    proof = []
    catalogue = warehouse_columns(wh) if catalogue is None else catalogue
    for ds in Dataset.objects.order_by("layer", "table"):
        for table, is_quarantine in ((ds.table, False), (f"{ds.table}__quarantine", True)):
            if (ds.layer, table) not in catalogue:
                continue
            conditions: list[tuple[str, str, list]] = []  # column, SQL condition, params
            for column, data_type in catalogue[(ds.layer, table)].items():
                if column.startswith("_") and column != RAW_COLUMN:
                    continue  # Atlas's own load metadata (batch, source, row number, reason): never about a person
                named = sorted(set().union(*(by_kind[k] for k in _named_like(column, kinds_by_name, kinds))))
                text = is_text_type(data_type)
                # Inside longer text: the clear identifiers everywhere; hashes too in JSON and raw records.
                within = sorted(inside | (hashes if "json" in data_type or column == RAW_COLUMN else set())) if text else []
                parts, params = [], []
                if named:  # every form, normalised, by equality
                    parts.append(f"{match_sql(wh.quote(column))} IN ({', '.join(['%s'] * len(named))})")
                    params.extend(named)
                elif text and hashes:  # tokens are lower-case hex as written: equal without lower() (cheap)
                    parts.append(f"CAST({wh.quote(column)} AS text) IN ({', '.join(['%s'] * len(hashes))})")
                    params.extend(sorted(hashes))
                for value in within:
                    sql, ps = _contains(wh.quote(column), value)
                    parts.append(sql)
                    params.extend(ps)
                if parts:
                    conditions.append((column, " OR ".join(parts), params))
            entry = {
                "dataset": ds.name, "layer": ds.layer, "table": f"{ds.layer}.{table}", "quarantine": is_quarantine,
                "columns_searched": len(conditions), "values_searched": sum(len(c[2]) for c in conditions),
                "rows_found": 0, "rows_referring": 0, "references": [], "checked_at": now,
            }
            if conditions:
                _count(wh, ds, table, is_quarantine, conditions, key_columns, retained, entry)
            proof.append(entry)
    return proof


def _judge(ds: Dataset, column: str, key_columns: set, retained: dict) -> tuple[str, str]:
    if (ds.pk, column) in key_columns:
        return KEY, "a subject key: these rows should have been erased; run the erasure again"
    if (ds.pk, column) in retained:
        return RETAINED, f"kept with a recorded legal basis: {retained[(ds.pk, column)]}"
    return UNEXPLAINED, "refers to the erased subject: declare it a key, or keep it with a recorded legal basis"


def _count(wh, ds, table, is_quarantine, conditions, key_columns, retained, entry) -> None:
    judged = [(c, *_judge(ds, c, key_columns, retained)) for c, _, _ in conditions]
    if is_quarantine:  # quarantined rows are removed whole; nothing there is kept by a legal basis or a key
        judged = [(c, KEY if status == KEY else UNEXPLAINED, why) for c, status, why in judged]
    open_conditions = [cond for (c, status, _), cond in zip(judged, conditions, strict=True) if status != RETAINED]
    selects = [f"count(*) FILTER (WHERE {cond})" for _, cond, _ in conditions]
    params = [p for _, _, ps in conditions for p in ps]
    unexplained = " OR ".join(f"({cond})" for _, cond, _ in open_conditions) or "1 = 0"
    selects.append(f"count(*) FILTER (WHERE {unexplained})")
    params.extend(p for _, _, ps in open_conditions for p in ps)
    where = " OR ".join(f"({cond})" for _, cond, _ in conditions)
    params.extend(p for _, _, ps in conditions for p in ps)
    with wh.cursor() as cur:
        row = cur.execute(f"SELECT {', '.join(selects)} FROM {wh.table(ds.layer, table)} WHERE {where}", params).fetchone()
    counts = [int(v or 0) for v in row] if row else [0] * len(selects)
    entry["rows_found"] = counts[-1]
    for (column, status, why), n in zip(judged, counts[:-1], strict=True):
        if n:
            entry["rows_referring"] = max(entry["rows_referring"], n)
            entry["references"].append({"column": column, "rows": n, "status": status,
                                        "message": f"{entry['table']}.{column} {why}."})


def residue(proof: list[dict]) -> list[dict]:
    """What keeps the proof red: every column with rows still referring to the subject, unexplained or a key."""
    return [
        {"table": p["table"], "column": r["column"], "rows_found": r["rows"], "status": r["status"], "message": r["message"]}
        for p in proof for r in p["references"] if r["status"] != RETAINED
    ]


def retained(proof: list[dict]) -> list[dict]:
    """References kept with a legal basis (explained; listed in the proof)."""
    return [
        {"table": p["table"], "column": r["column"], "rows_found": r["rows"], "message": r["message"]}
        for p in proof for r in p["references"] if r["status"] == RETAINED
    ]
