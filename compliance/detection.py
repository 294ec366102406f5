"""Which columns carry personal data: sample in the warehouse, analyse in batch, decide with evidence.

:func:`classify_columns` is pure (values in, verdicts out) so the evaluation
test and the benchmark call it directly; :func:`scan_dataset` samples a
dataset's columns in the warehouse (never loading the table), classifies
them and records the scan and its findings.
"""

from __future__ import annotations

import logging
import re
import statistics
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from atlas import audit
from atlas.warehouse import WarehouseError, get_warehouse
from atlas.warehouse.base import LOAD_COLUMNS, QUARANTINE_COLUMNS
from pipelines.models import Dataset, RunStatus

from .models import PiiFinding, PiiScan

logger = logging.getLogger(__name__)

# Column-name evidence, tried in order (``email_address`` is an email, not an address).
NAME_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (entity, re.compile(pattern))
    for entity, pattern in (
        ("EMAIL_ADDRESS", r"(^|_)(e_?mail|mail)(_|$)|email"),
        ("IP_ADDRESS", r"(^|_)(ip|ipv4|ipv6|ip_address|client_ip|remote_addr)(_|$)"),
        ("IBAN_CODE", r"(^|_)iban(_|$)"),
        ("US_SSN", r"(^|_)(ssn|social_security(_number)?)(_|$)"),
        ("CREDIT_CARD", r"(credit_?card|card_?(number|no|num)|(^|_)(cc|pan)_?(number|no|num)?$)"),
        ("PHONE_NUMBER", r"(^|_)(phone|telephone|tel|mobile|cell|fax|msisdn)(_|$|_?number)"),
        ("DATE_OF_BIRTH", r"(^|_)(dob|birth|birthday|date_of_birth|born)(_|$)|birth"),
        ("POSTCODE", r"(^|_)(postcode|post_code|postal_code|zip|zipcode|zip_code|plz)(_|$)"),
        ("STREET_ADDRESS", r"(^|_)(address|street|addr|address_line\d?|street_address)(_|$)"),
        ("LOCATION", r"(^|_)(city|town|municipality)(_|$)"),
        (
            "PERSON",
            r"^(name|full_?name|first_?name|last_?name|given_?name|family_?name|middle_?name|surname|forename"
            r"|(customer|contact|person|user|employee|patient|holder|account_holder)_?name)$",
        ),
    )
)
FREE_TEXT_NAMES = re.compile(r"(^|_)(notes?|comments?|remarks?|description|message|text|memo|body)(_|$)")

# Entities that describe a value but are not personal data on their own.
NOT_PII = {"DATE_TIME", "URL", "NRP", "ORGANIZATION", "UUID"}
# Postcode recognizers of several countries, reported as one entity.
ALIASES = {"UK_POSTCODE": "POSTCODE", "DE_PLZ": "POSTCODE", "CA_POSTAL_CODE": "POSTCODE"}
# A column of plain numbers is an id or an amount unless a checksum proves more.
NUMERIC_OK = {"CREDIT_CARD"}
# Inside free text, these need a strong score (national-id patterns fire on many numbers).
FREE_TEXT_ENTITIES = {"EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"}
FREE_TEXT_MIN_SCORE = {"PERSON": 0.8, "PHONE_NUMBER": 0.4}
FREE_TEXT_MIN_SHARE = 0.02
NAME_EVIDENCE_MIN_SHARE = 0.2
WHOLE_VALUE_COVERAGE = 0.8
SAMPLES_KEPT = 5
_ALPHA_WORD = re.compile(r"[^\W\d_]{2,}")
_NUMERIC = re.compile(r"^[+-]?\d+([.,]\d+)?$")
_DATE_LIKE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T].*)?$")


@dataclass
class ColumnVerdict:
    """What a column carries and why (one per entity found; empty entity: nothing found)."""

    column: str
    entity: str
    share: float
    mean_score: float
    name_evidence: str
    sample_size: int
    free_text: bool = False
    samples: list[str] = field(default_factory=list)


def name_evidence(column: str) -> tuple[str | None, str]:
    """The entity a column's name suggests, and the evidence as text."""
    norm = re.sub(r"[^a-z0-9]+", "_", re.sub(r"([a-z])([A-Z])", r"\1_\2", column).lower()).strip("_")
    for entity, pattern in NAME_RULES:
        if pattern.search(norm):
            return entity, f"column name {column!r} suggests {entity}"
    return None, ""


def _is_free_text(values: Sequence[str], column: str) -> bool:
    if not values:
        return False
    words = statistics.median(len(_ALPHA_WORD.findall(v)) for v in values)
    return words >= 3 or (bool(FREE_TEXT_NAMES.search(column.lower())) and words >= 2)


def classify_columns(samples: Mapping[str, Sequence[str]]) -> list[ColumnVerdict]:
    """Decide each column's entity from its sampled distinct values and its name.

    Every value is analysed once, all columns in one batch. A structured
    column gets at most one entity (the best supported); a free-text column
    gets one finding per entity found inside its text.
    """
    # Presidio and spaCy load here, on the first scan, not when a process starts (about 1.5 s).
    from .analyzer import batch_analyzer

    columns = list(samples)
    flat = [str(v).strip() for c in columns for v in samples[c]]
    results = list(batch_analyzer().analyze_iterator(flat, language="en", batch_size=256)) if flat else []
    verdicts: list[ColumnVerdict] = []
    pos = 0
    for column in columns:
        values = [str(v).strip() for v in samples[column]]
        column_results = results[pos : pos + len(values)]
        pos += len(values)
        verdicts.extend(_decide(column, values, column_results))
    return verdicts


def _entity(name: str, named: str | None) -> str | None:
    name = ALIASES.get(name, name)
    if name == "DATE_TIME" and named == "DATE_OF_BIRTH":
        return "DATE_OF_BIRTH"
    if name == "LOCATION" and named in ("STREET_ADDRESS", "POSTCODE"):
        return named
    return None if name in NOT_PII else name


def _decide(column: str, values: list[str], results: list[list]) -> list[ColumnVerdict]:
    named, evidence = name_evidence(column)
    n = len(values)
    if n == 0:
        return []
    numeric = all(_NUMERIC.match(v) for v in values)
    # Two readings of the same results: the whole value is the entity (structured),
    # or the entity appears inside the value (free text).
    whole: dict[str, list[float]] = {}
    inside: dict[str, list[float]] = {}
    matched: dict[str, list[str]] = {}
    for value, found in zip(values, results, strict=True):
        best_whole: dict[str, float] = {}
        best_inside: dict[str, float] = {}
        for r in found:
            entity = _entity(r.entity_type, named)
            if entity is None:
                continue
            if (r.end - r.start) >= WHOLE_VALUE_COVERAGE * len(value):
                best_whole[entity] = max(best_whole.get(entity, 0.0), r.score)
            if entity in FREE_TEXT_ENTITIES and r.score >= FREE_TEXT_MIN_SCORE.get(entity, 0.5):
                best_inside[entity] = max(best_inside.get(entity, 0.0), r.score)
        if named == "DATE_OF_BIRTH" and _DATE_LIKE.match(value):
            best_whole.setdefault("DATE_OF_BIRTH", 0.5)
        for target, best in ((whole, best_whole), (inside, best_inside)):
            for entity, score in best.items():
                target.setdefault(entity, []).append(score)
        for entity in {**best_whole, **best_inside}:
            if len(matched.setdefault(entity, [])) < SAMPLES_KEPT:
                matched[entity].append(value)

    def verdict(entity: str, hits: dict[str, list[float]], is_text: bool = False) -> ColumnVerdict:
        scores = hits.get(entity, [])
        return ColumnVerdict(
            column=column,
            entity=entity,
            share=round(len(scores) / n, 4),
            mean_score=round(sum(scores) / len(scores), 4) if scores else 0.0,
            name_evidence=evidence if entity == named else "",
            sample_size=n,
            free_text=is_text,
            samples=matched.get(entity, [])[:SAMPLES_KEPT],
        )

    candidates = []
    for entity, scores in whole.items():
        share, mean = len(scores) / n, sum(scores) / len(scores)
        if numeric and entity not in NUMERIC_OK and entity != named:
            continue  # an order id is not a phone number nor an NHS number
        by_values = share >= settings.PII_MIN_SHARE and mean >= settings.PII_MIN_SCORE
        by_name = entity == named and share >= NAME_EVIDENCE_MIN_SHARE
        if by_values or by_name:
            candidates.append((entity == named, share * mean, entity))
    if candidates:
        return [verdict(max(candidates)[2], whole)]
    if _is_free_text(values, column):
        return [verdict(e, inside, True) for e, s in sorted(inside.items()) if len(s) / n >= FREE_TEXT_MIN_SHARE]
    if named and not (numeric and named in ("PERSON", "LOCATION", "STREET_ADDRESS", "EMAIL_ADDRESS")):
        return [verdict(named, whole)]  # the name alone: a steward confirms or dismisses it
    return []


# --- scans -------------------------------------------------------------------------
def scannable_columns(dataset: Dataset, names: Sequence[str]) -> list[str]:
    skip = set(LOAD_COLUMNS) | set(QUARANTINE_COLUMNS)
    return [c for c in names if c not in skip]


def scan_dataset(
    dataset: Dataset, *, actor=None, trigger: str = PiiScan.Trigger.MANUAL, sample_size: int | None = None
) -> PiiScan:
    """Classify a dataset's columns and record the scan; a failure is recorded, not raised.

    A re-scan refreshes the evidence of every finding it supports and removes
    proposed findings it no longer supports; confirmed and dismissed findings
    keep the steward's decision whatever the scan says.
    """
    size = sample_size or settings.PII_SAMPLE_SIZE
    scan = PiiScan.objects.create(
        dataset=dataset,
        trigger=trigger,
        triggered_by=actor if getattr(actor, "is_authenticated", False) else None,
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
        sample_size=size,
    )
    if trigger != PiiScan.Trigger.INGEST:  # a person (or script) asked: who, what, how large
        audit.record("pii.scan", actor=actor, target=scan, dataset=dataset.name, trigger=trigger, sample_size=size)
    try:
        wh = get_warehouse()
        if not wh.table_exists(dataset.layer, dataset.table):
            raise WarehouseError(f"{dataset.qualified_table} has not been loaded yet; nothing to scan.")
        columns = scannable_columns(dataset, [c.name for c in wh.columns(dataset.layer, dataset.table)])
        samples = wh.sample_distinct(
            dataset.layer, dataset.table, columns, limit=size, scan_rows=settings.PII_SCAN_ROWS
        )
        verdicts = classify_columns(samples)
        with transaction.atomic():
            saved = save_findings(dataset, verdicts, scan)
            scan.finish(
                RunStatus.SUCCEEDED,
                columns_scanned=len(columns),
                findings_count=len(saved),
                rows_in=sum(len(v) for v in samples.values()),
                details={"columns": {v.column: v.entity for v in verdicts}},
            )
    except Exception as exc:
        logger.warning("PII scan of %s failed: %s", dataset.name, exc)
        scan.fail(
            str(exc) if isinstance(exc, WarehouseError) else f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
    return scan


def save_findings(dataset: Dataset, verdicts: Sequence[ColumnVerdict], scan: PiiScan) -> list[PiiFinding]:
    """Upsert one finding per (column, entity); decisions survive, stale proposals go."""
    saved = []
    for v in verdicts:
        finding, _ = PiiFinding.objects.update_or_create(
            dataset=dataset,
            column=v.column,
            entity=v.entity,
            defaults={
                "free_text": v.free_text,
                "share": v.share,
                "mean_score": v.mean_score,
                "name_evidence": v.name_evidence,
                "sample_size": v.sample_size,
                "samples": v.samples,
                "last_scan": scan,
            },
        )
        saved.append(finding)
    (
        PiiFinding.objects.filter(dataset=dataset, status=PiiFinding.Status.PROPOSED)
        .exclude(pk__in=[f.pk for f in saved])
        .delete()
    )
    return saved
