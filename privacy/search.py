"""Finding a data subject's rows: identifiers checked, expanded through declared keys, matched per table.

The request gives identifiers by kind (an e-mail...). Rows found by them in a
dataset that has another key (customer_id) yield that key's values, which are
searched in every dataset keyed by that kind, and so on until nothing new
turns up (bounded by ``ATLAS_DSR_MAX_ROUNDS`` and ``ATLAS_DSR_MAX_IDENTIFIERS``).
Only declared, confirmed keys are followed, and only values that can identify
someone (:mod:`privacy.identifiers`: never placeholders, masked forms, empty
or common values, or their hashes). Every key column is searched for every
form of the identifiers — clear (normalised) and HMAC-hashed with the current
and every retained key — whatever the column's declared storage or policy
state: a column declared hashed may still hold clear values written before
its policy applied.

:func:`subjects_reached` counts the subjects an expansion reached, in the kinds
that tell subjects apart (``SubjectKey.identifies``); a request that reaches more
than it started with stops for a steward's review (``privacy.service``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from atlas.warehouse import Warehouse
from pipelines.models import Dataset

from .identifiers import common_hashes, hash_forms, non_identifier
from .keys import KeyTarget, Storage, known_kinds, normalise, warehouse_columns
from .models import validate_kind

# Quarantined raw records are searched for clear identifiers at least this long (short ids would match anything).
RAW_MIN_CHARS = 5
RAW_COLUMN = "_raw_record"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class DsrError(ValueError):
    """A request or operation that cannot go on as asked; the message is for the steward."""


@dataclass
class Subject:
    """The identifiers of one person: clear values by kind, and hashes found in hashed columns."""

    clear: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    hashed: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def hashes(self, kind: str) -> set[str]:
        """The pseudonyms of the clear identifiers under every hash key, and the hashes found."""
        out = set(self.hashed.get(kind, ()))
        for v in self.clear.get(kind, ()):
            out |= hash_forms(v)
        return out

    def current_hashes(self, kind: str) -> set[str]:
        """The pseudonyms under the current key only (what tombstones keep), and the hashes found."""
        from compliance.policies import pseudonym

        return {pseudonym(v) for v in self.clear.get(kind, ())} | set(self.hashed.get(kind, ()))

    def values_for(self, target: KeyTarget) -> set[str]:
        """Every form a key column may hold: clear and hashed, whatever its declared storage."""
        return set(self.clear.get(target.kind, ())) | self.hashes(target.kind)

    def add(self, kind: str, value: str, *, hashed: bool) -> bool:
        """Add an identifier found in a key column; values that identify nobody are never added."""
        bucket = (self.hashed if hashed else self.clear)[kind]
        value = str(value).strip().lower() if hashed else normalise(kind, value)
        if not value or value in bucket or non_identifier(value) or value in common_hashes():
            return False
        if not hashed and HEX64.match(value.lower()) and value.lower() in self.hashes(kind):
            return False  # a token of a known identifier read from a column declared clear
        bucket.add(value)
        return True

    def has(self, kind: str, value: str, *, hashed: bool) -> bool:
        value = str(value).strip().lower() if hashed else normalise(kind, value)
        return value in (self.hashed if hashed else self.clear).get(kind, ())

    def distinct(self, kind: str) -> int:
        """How many different identifiers of ``kind``: clear ones, and hashes that are none of theirs."""
        clear = set(self.clear.get(kind, ()))
        known = set().union(*(hash_forms(v) for v in clear)) if clear else set()
        return len(clear) + len({h for h in self.hashed.get(kind, ()) if h not in known})

    def size(self) -> int:
        return sum(len(v) for v in self.clear.values()) + sum(len(v) for v in self.hashed.values())

    def kinds(self) -> set[str]:
        return {k for k, v in self.clear.items() if v} | {k for k, v in self.hashed.items() if v}

    def to_json(self) -> dict[str, Any]:
        return {
            "clear": {k: sorted(v) for k, v in self.clear.items() if v},
            "hashed": {k: sorted(v) for k, v in self.hashed.items() if v},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Subject:
        subject = cls()
        for kind, values in (data or {}).get("clear", {}).items():
            subject.clear[kind].update(values)
        for kind, values in (data or {}).get("hashed", {}).items():
            subject.hashed[kind].update(values)
        return subject

    def summary(self) -> dict[str, int]:
        """How many identifiers of each kind (what may be kept once the request is done)."""
        return {k: len(self.clear.get(k, ())) + len(self.hashed.get(k, ())) for k in sorted(self.kinds())}


def parse_identifiers(raw: Any, *, kinds: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Validate a request's identifiers: ``{kind: [value, ...]}``, kinds known, values non-empty."""
    if not isinstance(raw, dict) or not raw:
        raise DsrError('Give at least one identifier, as {"kind": ["value", ...]} (e.g. {"email": ["ann@example.com"]}).')
    known = set(known_kinds() if kinds is None else kinds)
    out: dict[str, list[str]] = {}
    for kind, values in raw.items():
        try:
            validate_kind(str(kind))
        except Exception as exc:
            raise DsrError(str(getattr(exc, "messages", [exc])[0])) from exc
        if kind not in known:
            listed = ", ".join(sorted(known)) or "none yet: declare subject keys first"
            raise DsrError(f"Unknown identifier kind {kind!r}: no confirmed subject key has it (known kinds: {listed}).")
        values = [values] if isinstance(values, str | int) else values
        if not isinstance(values, list):
            raise DsrError(f"Identifiers of kind {kind!r} must be a list of values.")
        cleaned = sorted({normalise(kind, v) for v in values if isinstance(v, str | int) and normalise(kind, v)})
        if not cleaned:
            raise DsrError(f"Identifiers of kind {kind!r} are empty; give at least one non-blank value.")
        if any("\x00" in v for v in cleaned):
            raise DsrError("Identifiers cannot contain NUL characters.")
        for v in cleaned:
            why = non_identifier(v) or ("hash of a common value" if v.lower() in common_hashes() else None)
            if why:  # the value itself stays out of the message
                raise DsrError(
                    f"An identifier of kind {kind!r} cannot identify one person ({why}): placeholders, masked"
                    " forms, empty and common values match many people. Give the person's own value."
                )
        out[str(kind)] = cleaned
    return out


def subject_of(identifiers: dict[str, list[str]]) -> Subject:
    subject = Subject()
    for kind, values in identifiers.items():
        for v in values:
            subject.add(kind, v, hashed=False)
    return subject


def subjects_reached(subject: Subject, targets: list[KeyTarget]) -> dict[str, int]:
    """Per kind that tells subjects apart (a key that ``identifies``), how many different identifiers were reached."""
    kinds = {t.kind for t in targets if t.identifies}
    return {k: subject.distinct(k) for k in sorted(kinds & subject.kinds())}


def subjects_started(identifiers: dict[str, list[str]]) -> int:
    """How many subjects a request names at most: the largest number of identifiers given of one kind."""
    return max((len(v) for v in identifiers.values()), default=1)


def fingerprint(subject: Subject) -> str:
    """A digest of everything an expansion reached (what a steward's approval is bound to)."""
    return hashlib.sha256(json.dumps(subject.to_json(), sort_keys=True).encode()).hexdigest()


def _in(expr: str, values: list) -> tuple[str, list]:
    return f"{expr} IN ({', '.join(['%s'] * len(values))})", list(values)


def key_predicate(wh: Warehouse, target: KeyTarget, subject: Subject) -> tuple[str, list] | None:
    params = target.params(subject.values_for(target))
    return _in(target.expr(wh), params) if params else None


def _any(parts: list[tuple[str, list]]) -> tuple[str, list]:
    sql = " OR ".join(f"({p[0]})" for p in parts)
    return sql, [v for p in parts for v in p[1]]


def expand(subject: Subject, targets: list[KeyTarget], wh: Warehouse) -> tuple[Subject, list[dict]]:
    """Follow declared keys until no new identifier turns up; returns the subject and what each round found."""
    max_rounds, max_ids = settings.ATLAS_DSR_MAX_ROUNDS, settings.ATLAS_DSR_MAX_IDENTIFIERS
    by_table: dict[tuple[str, str], list[KeyTarget]] = defaultdict(list)
    for t in targets:
        by_table[(t.layer, t.table)].append(t)
    rounds: list[dict] = []
    for number in range(1, max_rounds + 1):
        found: dict[str, int] = defaultdict(int)
        shared: dict[str, int] = defaultdict(int)
        for (layer, table), keys in by_table.items():
            if len(keys) < 2:
                continue
            parts = [p for k in keys for p in [key_predicate(wh, k, subject)] if p]
            if not parts:
                continue
            where, params = _any(parts)
            cols = ", ".join(f"CAST({wh.quote(k.column)} AS text)" for k in keys)
            with wh.cursor() as cur:  # one scan (or index lookup) per table and round: every key column at once
                rows = cur.execute(f"SELECT DISTINCT {cols} FROM {wh.table(layer, table)} WHERE {where}", params).fetchall()
            candidates: dict[int, set[tuple[str, bool]]] = defaultdict(set)
            for row in rows:
                for i, (other, value) in enumerate(zip(keys, row, strict=True)):
                    if value is not None:
                        hashed = other.storage == Storage.HASHED and bool(HEX64.match(value.lower()))
                        candidates[i].add((value, hashed))
            skip = _shared_values(wh, layer, table, keys, subject, candidates)
            for i, values in sorted(candidates.items()):
                for value, hashed in sorted(values):
                    if (i, value) in skip:
                        shared[keys[i].kind] += 1
                    elif subject.add(keys[i].kind, value, hashed=hashed):
                        found[keys[i].kind] += 1
        rounds.append({"round": number, "new": dict(found), **({"shared_skipped": dict(shared)} if shared else {})})
        if subject.size() > max_ids:
            raise DsrError(
                f"The identifiers expand to more than {max_ids} values (ATLAS_DSR_MAX_IDENTIFIERS): a key links"
                " too many rows to one person. Check the subject keys (is a non-identifying column declared?)."
            )
        if not found:
            break
    return subject, rounds


def _shared_values(
    wh: Warehouse, layer: str, table: str, keys: list[KeyTarget], subject: Subject, candidates: dict
) -> set[tuple[int, str]]:
    """New values that many subjects share in this table (an info@ mailbox, a switchboard number): never followed.

    Only where a table tells subjects apart by two identifying keys or more: a new value of one
    that goes with more than ``ATLAS_DSR_SHARED_VALUE_SUBJECTS`` different values of another is
    shared. One grouped query per key column with new values.
    """
    identity = [i for i, k in enumerate(keys) if k.identifies]
    if len(identity) < 2:
        return set()
    limit = settings.ATLAS_DSR_SHARED_VALUE_SUBJECTS
    out: set[tuple[int, str]] = set()
    for i in identity:
        new = sorted({v for v, h in candidates.get(i, ()) if not subject.has(keys[i].kind, v, hashed=h)})
        if not new:
            continue
        expr = keys[i].expr(wh)
        counts = ", ".join(f"count(DISTINCT {keys[j].expr(wh)})" for j in identity if j != i)
        params = keys[i].params(new)
        with wh.cursor() as cur:
            rows = cur.execute(
                f"SELECT {expr}, {counts} FROM {wh.table(layer, table)}"
                f" WHERE {expr} IN ({', '.join(['%s'] * len(params))}) GROUP BY {expr}", params,
            ).fetchall()
        common = {r[0] for r in rows if max(int(n or 0) for n in r[1:]) > limit}
        out |= {(i, v) for v in new if v.strip(" ").lower() in common}
    return out


@dataclass
class TableMatch:
    """The rows of one warehouse table that are about the subject: ``WHERE`` and its parameters."""

    dataset: Dataset | None
    layer: str
    table: str
    where: str
    params: list
    quarantine: bool
    keys: list[str]

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.table}"


def matches(
    subject: Subject, targets: list[KeyTarget], wh: Warehouse, *, quarantine: bool = True, catalogue: dict | None = None
) -> list[TableMatch]:
    """Where the subject's rows are: every keyed table, and every quarantine table (key columns, raw records)."""
    out: list[TableMatch] = []
    datasets = {d.pk: d for d in Dataset.objects.all()}
    catalogue = warehouse_columns(wh) if catalogue is None else catalogue
    by_dataset: dict[int, list[KeyTarget]] = defaultdict(list)
    for t in targets:
        by_dataset[t.dataset_id].append(t)
    for dataset_id, keys in sorted(by_dataset.items()):
        parts = [p for k in keys for p in [key_predicate(wh, k, subject)] if p]
        if parts:
            where, params = _any(parts)
            ds = datasets.get(dataset_id)
            out.append(TableMatch(ds, ds.layer, ds.table, where, params, False, [f"{k.column} ({k.kind}, {k.storage})" for k in keys]))
    if quarantine:
        all_keys: dict[int, list[KeyTarget]] = defaultdict(list)
        for t in targets:
            all_keys[t.dataset_id].append(t)
        for ds in datasets.values():
            m = quarantine_match(wh, ds, all_keys.get(ds.pk, []), subject, catalogue)
            if m:
                out.append(m)
    return out


def quarantine_match(
    wh: Warehouse, ds: Dataset, keys: list[KeyTarget], subject: Subject, catalogue: dict
) -> TableMatch | None:
    """The subject's rows in ``<table>__quarantine``: its key columns (as text) and raw records holding an identifier."""
    name = f"{ds.table}__quarantine"
    if (ds.layer, name) not in catalogue:
        return None
    have = set(catalogue[(ds.layer, name)])
    parts: list[tuple[str, list]] = []
    described = []
    for k in keys:
        if k.column not in have:
            continue
        values = sorted(subject.values_for(k))
        if values:
            parts.append(_in(k.expr(wh), k.params(values)))
            described.append(f"{k.column} ({k.kind}, {k.storage})")
    if RAW_COLUMN in have:
        raw = sorted({v.lower() for vs in subject.clear.values() for v in vs if len(v) >= RAW_MIN_CHARS})
        if raw:
            parts.extend((f"strpos(lower({wh.quote(RAW_COLUMN)}), %s) > 0", [v]) for v in raw)
            described.append(f"{RAW_COLUMN} (text search, {len(raw)} value(s))")
    if not parts:
        return None
    where, params = _any(parts)
    return TableMatch(ds, ds.layer, name, where, params, True, described)
