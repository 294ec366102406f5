"""Which recognizers a value or a column needs: cheap tests before Presidio's analysis.

A scan used to run every recognizer on every value. Most of them cannot match most values:
an e-mail needs an ``@``, a phone number digits, a name a capital letter. Here each entity
has a *necessary* condition on the value's characters, checked in one pass; Presidio then
runs only the recognizers of the entities that pass (``AnalyzerEngine.analyze(entities=...)``),
so what they find is exactly what the full run finds (``compliance/tests/test_prefilter.py``
compares the two value by value). One test is a decision rather than a necessary
condition: an ISO date or timestamp is never a phone number.

A column can narrow it further, from what :func:`compliance.detection._decide` does with the
results: a column of flags is never PII; in a column of plain numbers only the entities a
checksum can prove (``NUMERIC_OK``) and the one the column's name suggests can be found; and in
any column the entities ``_decide`` reads as nothing (``NOT_PII``: dates and times, URLs, UUIDs,
NER's groups and organisations, unless the column's name makes a date a birth date or a URL a
referrer) are not looked for (Presidio removes duplicates within an entity type only, so leaving
one type out changes no other type's results). The URL and date recognizers were a third of a
demo scan, most of it on e-mail addresses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# An ISO date or timestamp: phonenumbers' own matcher tries it as a number of every region.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$")
# No number of a supported region has fewer digits (see FastPhoneRecognizer.MIN_DIGITS).
PHONE_MIN_DIGITS = 4
# The entities spaCy's NER may find, when a model is configured (PII_SPACY_MODEL): no character test holds for them.
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "DATE_TIME", "NRP", "ORGANIZATION", "AGE", "ID", "EMAIL",
                          "PHONE_NUMBER"})
# The fewest digits any pattern of the entity's recognizers (Presidio's and Atlas's) can match:
# CREDIT_CARD 4+3+3+3, US_SSN nine, UK_NHS ten, IBAN_CODE its check digits, Steuer-ID eleven,
# NIR 1+2+2+1+3+3+2, BSN nine, NINO six, DNI/NIE seven, a date, a house number, GIR 0AA.
MIN_DIGITS = {"CREDIT_CARD": 13, "US_SSN": 9, "UK_NHS": 10, "IBAN_CODE": 2, "DATE_TIME": 1, "STREET_ADDRESS": 1,
              "POSTCODE": 1, "DE_TAX_ID": 11, "FR_NIR": 14, "NL_BSN": 9, "UK_NINO": 6, "ES_NIF": 7}


def value_entities(text: str, supported: Iterable[str], *, ner: bool = False) -> list[str]:
    """The entities whose recognizers can match ``text`` (a subset of ``supported``, in its order).

    Every test is necessary for its entity's recognizers (their patterns or code need it), so
    leaving the others out changes nothing they find; the ISO-date test for phones is the one
    decision. With ``ner`` (a spaCy model), the entities its NER finds are always kept.
    """
    digits = sum(map(str.isdigit, text))
    return [e for e in supported if (ner and e in NER_ENTITIES) or _possible(e, text, digits)]


def _possible(entity: str, text: str, digits: int) -> bool:
    if entity in MIN_DIGITS:
        return digits >= MIN_DIGITS[entity]
    if entity == "PHONE_NUMBER":
        return digits >= PHONE_MIN_DIGITS and not _ISO_DATE.match(text)
    if entity == "EMAIL_ADDRESS":  # Presidio's pattern and AtlasUrlEmailRecognizer
        return "@" in text or "%40" in text.upper()
    if entity == "URL":  # every pattern ends in a dot and a top-level domain
        return "." in text
    if entity == "IP_ADDRESS":  # IPv4 needs digits, IPv6 a colon
        return digits > 0 or ":" in text
    if entity == "MAC_ADDRESS":
        return ":" in text or "-" in text or "." in text
    if entity == "UUID":
        return "-" in text
    if entity == "IT_FISCAL_CODE":  # sixteen characters
        return len(text) >= 16
    if entity == "PERSON":  # the name list needs a capitalised word (spaCy without a model finds nothing)
        return any(map(str.isupper, text))
    if entity == "LOCATION":  # a listed city name
        return any(map(str.isalpha, text))
    # NRP, ORGANIZATION, AGE, ID, EMAIL: only spaCy's NER, off without a model. An entity this
    # module does not know is always analysed.
    return entity not in ("NRP", "ORGANIZATION", "AGE", "ID", "EMAIL")


def column_entities(column: str, values: Sequence[str], supported: Iterable[str]) -> frozenset[str] | None:
    """The entities whose findings can change this column's verdict (a subset of ``supported``).

    Mirrors :func:`compliance.detection._decide`: a column of flags gets no verdict at all;
    in a column of plain numbers every entity but ``NUMERIC_OK``'s and the named one is
    dropped, and it cannot be free text; in any column, an entity ``_decide`` reads as nothing
    (:func:`compliance.detection._entity` gives None whatever the value) is dropped.
    """
    from .detection import _BOOLEAN, _NUMERIC, ALIASES, NUMERIC_OK, _entity, name_evidence

    if not values:
        return frozenset()
    if all(v.lower() in _BOOLEAN for v in values):
        return frozenset()
    named, _ = name_evidence(column)
    if not all(_NUMERIC.match(v) for v in values):
        return frozenset(e for e in supported if _entity(e, named) is not None)
    wanted = set(NUMERIC_OK)
    if named:
        wanted.add(named)
    if "PERSON" in wanted:  # a person beside a street or place is the street or place (see _decide)
        wanted |= {"STREET_ADDRESS", "LOCATION", "POSTCODE"}
    sources = set(wanted)
    sources |= {raw for raw, entity in ALIASES.items() if entity in wanted}
    if named == "DATE_OF_BIRTH":
        sources.add("DATE_TIME")
    if named in ("STREET_ADDRESS", "POSTCODE"):
        sources.add("LOCATION")
    return frozenset(e for e in supported if e in sources)


def analyze_columns(engine, prepared: dict[str, list[str]], *, ner: bool, batch_size: int = 256,
                    first=None, settles=None) -> dict[str, list]:
    """Presidio's results for every value of every column, each value run through only the
    recognizers that can matter (:func:`value_entities` within :func:`column_entities`).

    Values that need none are not tokenised nor analysed; the rest go through spaCy in batches
    and ``AnalyzerEngine.analyze`` with the entities kept.

    Cheap and decisive first: with ``first(column)`` (the entities its name points to) and
    ``settles(column, values, results)``, a column's values are first analysed for those entities
    only; when that settles the column's verdict, the other recognizers (the phone recognizer
    among them) never run on it. Otherwise the others run and their results join the first ones
    (each entity's results come from one pass, so the union is the one-pass analysis).
    """
    supported = engine.get_supported_entities(language="en")
    out: dict[str, list] = {}
    keep: dict[str, list[str]] = {}
    for column, values in prepared.items():
        out[column] = [[] for _ in values]
        allowed = column_entities(column, values, supported)
        keep[column] = [e for e in supported if e in allowed]
    if first is not None and settles is not None:
        early = {}
        for column, entities in keep.items():
            wanted = first(column)
            head = [e for e in entities if e in wanted]
            if head and len(head) < len(entities):
                early[column] = head
        _analyze(engine, prepared, early, out, ner=ner, batch_size=batch_size)
        for column, head in early.items():
            settled = settles(column, prepared[column], out[column])
            keep[column] = [] if settled else [e for e in keep[column] if e not in head]
    _analyze(engine, prepared, keep, out, ner=ner, batch_size=batch_size)
    return out


def analyze_values(engine, texts: Sequence[str], entities: Iterable[str], *, ner: bool,
                   batch_size: int = 256) -> list[list]:
    """Presidio's results for each text, for ``entities``, each text run through only the recognizers
    that can match it (:func:`value_entities`): what ``AnalyzerEngine.analyze(entities=...)`` finds in
    each, without analysing the texts that none of them can match (free-text anonymisation)."""
    out: dict[str, list] = {"": [[] for _ in texts]}
    _analyze(engine, {"": list(texts)}, {"": list(entities)}, out, ner=ner, batch_size=batch_size)
    return out[""]


def _analyze(engine, prepared: dict[str, list[str]], keep: dict[str, list[str]], out: dict[str, list], *,
             ner: bool, batch_size: int) -> None:
    """Add to ``out`` the results of the ``keep`` entities of each column's values (those that can have them)."""
    plan: list[tuple[str, int, str, list[str]]] = []
    for column, entities in keep.items():
        if not entities:
            continue
        for i, text in enumerate(prepared[column]):
            found = value_entities(text, entities, ner=ner)
            if found:  # analyze(entities=[]) would mean every entity
                plan.append((column, i, text, found))
    if not plan:
        return
    texts = [text for _, _, text, _ in plan]
    artifacts = engine.nlp_engine.process_batch(texts=texts, language="en", batch_size=batch_size)
    for (column, i, text, entities), (_, nlp) in zip(plan, artifacts, strict=True):
        out[column][i] = [*out[column][i], *engine.analyze(text=text, language="en", entities=entities,
                                                           nlp_artifacts=nlp)]
