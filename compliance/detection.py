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
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from atlas import audit
from atlas.warehouse import WarehouseError, get_warehouse
from atlas.warehouse.base import LOAD_COLUMNS, QUARANTINE_COLUMNS
from pipelines.models import Dataset, RunStatus

from .models import PiiFinding, PiiScan
from .policies import protect_by_default
from .vocab import ORG_WORDS

logger = logging.getLogger(__name__)

# Column-name evidence in English, German, French, Dutch, Spanish and Italian, tried in order
# on the normalised name (lower case, accents stripped, words joined by "_"): ``email_address``
# is an email, ``geburtsort`` a place before ``geburt`` makes it a birth date.
NAME_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (entity, re.compile(pattern))
    for entity, pattern in (
        ("EMAIL_ADDRESS", r"e_?mail|(^|_)(mail|courriel|correo|mailadres|posta_elettronica)(_|$)"),
        ("IP_ADDRESS", r"(^|_)(ip|ipv4|ipv6|ip_address|client_ip|remote_addr(ess)?|ip_adres|adresse_ip|direccion_ip"
                       r"|indirizzo_ip|x_forwarded_for|forwarded_for|forwarded|xff|true_client_ip|real_ip)(_|$)"),
        ("IBAN_CODE", r"(^|_)iban(_|$)"),
        ("MAC_ADDRESS", r"(^|_)(mac|mac_address|macaddr|mac_adres|adresse_mac)(_|$)"),
        ("DE_TAX_ID", r"steuer_?id|steueridentifikationsnummer|(^|_)(idnr|st_?idnr|tax_?id_de)(_|$)"),
        ("FR_NIR", r"(^|_)(nir|insee|num_?secu|numero_(de_)?securite_sociale|securite_sociale|secu)(_|$)"),
        ("NL_BSN", r"(^|_)(bsn|burgerservicenummer|sofi_?nummer)(_|$)"),
        ("UK_NINO", r"(^|_)(nino|ni_?number|ni_?no|national_insurance(_number|_no)?)(_|$)"),
        ("US_SSN", r"(^|_)(ssn|social_security(_number|_no)?)(_|$)"),
        ("ES_NIF", r"(^|_)(dni|nie|nif|documento(_identidad)?)(_|$)"),
        ("IT_FISCAL_CODE", r"codice_?fiscale|(^|_)(cod_?fisc|cf|fiscal_code)(_|$)"),
        ("CREDIT_CARD", r"(credit_?card|card_?(number|no|num)|kreditkarte|carte_bancaire|tarjeta|carta_di_credito"
                        r"|(^|_)(cc|pan)_?(number|no|num)?$)"),
        ("PHONE_NUMBER", r"(^|_)(phone|telephone|tel|mobile|cell|fax|msisdn|telefon|telefonnummer|handy|mobil"
                         r"|mobilnummer|handynummer|festnetz|portable|telefono|cellulare|movil|telefoon|mobiel|gsm"
                         r"|telefoonnummer)(_|$|_?(number|nummer|numero|no))"),
        # A place of birth is a place; tried before the birth date.
        ("LOCATION", r"geburtsort|birth_?place|place_of_birth|lieu_(de_)?naissance|geboorteplaats|lugar_(de_)?nacimiento"
                     r"|luogo_(di_)?nascita"),
        # A place word makes any name a place, a birth word with it included (``ciudad_nascita``, ``birth_town``).
        ("LOCATION", r"(^|_)(city|town|municipality|ort|wohnort|stadt|gemeinde|ville|commune|localite|plaats"
                     r"|woonplaats|gemeente|stad|ciudad|localidad|municipio|poblacion|citta|comune|localita)(_|$)"),
        ("DATE_OF_BIRTH", r"(^|_)(dob|born|bday|ddn|fdn|geb|geboren|gebdat)(_|$)|birth|geburt|naissance|geboorte"
                          r"|nacimiento|nascita"),
        ("POSTCODE", r"(^|_)(postcode|post_code|postal_code|postalcode|zip|zipcode|zip_code|plz|postleitzahl"
                     r"|code_postal|codepostal|cp|codigo_postal|cap|postnummer|postcode_nl)(_|$)"),
        ("STREET_ADDRESS", r"address|adress|adres|(^|_)(street|addr|strasse|str|anschrift|rue|voie|straat|direccion|calle"
                           r"|domicilio|indirizzo|via|hausnummer|huisnummer)(_|$)"),
        ("URL", r"(^|_)(referr?er|http_referr?er|referr?er_url|ref_url|referring_url|landing_page|page_url"
                r"|request_url|request_uri)(_|$)"),
        ("PERSON", r"^(name|full_?name|first_?name|last_?name|given_?name|family_?name|middle_?name|maiden_?name"
                   r"|surname|forename|firstname|lastname|vorname|nachname|familienname|rufname|nom|prenom"
                   r"|nom_de_famille|naam|voornaam|achternaam|roepnaam|nombre|apellidos?|primer_apellido"
                   r"|segundo_apellido|nome|cognome|holder|account_?holder|card_?holder|kontoinhaber|titulaire"
                   r"|titular|intestatario|rekeninghouder|tenaamstelling|beneficiary|begunstigde|nom_famille"
                   r"|ansprechpartner|inhaber|contactpersoon|contact_person|personne_contact|persona_contacto)$"
                   r"|^((customer|contact|person|user|employee|patient|holder|account_holder|owner|recipient|sender"
                   r"|client|kunde|kunden|mitarbeiter|empfaenger|destinataire|cliente|klant|ontvanger)_?"
                   r"(name|nom|naam|nombre|nome)|(name|nom|naam|nombre|nome)_(client|cliente|klant|kunde|titulaire"
                   r"|titular|completo|complet))$"),
    )
)
# Flags and counters about an entity (``email_opt_in``, ``phone_verified``) are not the entity.
NOT_THE_ENTITY = re.compile(
    r"(^|_)(opt_?in|opt_?out|optin|optout|consent|verified|confirmed|valid|is|has|flag|count|enabled|allowed"
    r"|subscribed|bounced?|sent|status|type|domain|hash(ed)?|format|length|provider|country|prefix|region"
    r"|einwilligung|consentement|toestemming|consentimiento|consenso)(_|$)"
)
FREE_TEXT_NAMES = re.compile(
    r"(^|_)(notes?|comments?|remarks?|description|message|text|memo|body|bemerkung|kommentar|notiz|nachricht"
    r"|remarque|commentaire|opmerking|opmerkingen|nota|notas|comentario|commento|messaggio|descrizione)(_|$)"
)

# Entities that describe a value but are not personal data on their own (a referrer URL is, by its name).
NOT_PII = {"DATE_TIME", "URL", "NRP", "ORGANIZATION", "UUID"}
# Postcode recognizers of several countries, reported as one entity.
ALIASES = {"UK_POSTCODE": "POSTCODE", "DE_PLZ": "POSTCODE", "CA_POSTAL_CODE": "POSTCODE"}
# A column of plain numbers is an id or an amount unless a checksum proves more (and nearly every value passes).
# (A 9-digit number passes the 11-proef one time in eleven: a BSN column must be nearly all valid.)
NUMERIC_OK = {"CREDIT_CARD": 0.6, "DE_TAX_ID": 0.9, "NL_BSN": 0.9, "FR_NIR": 0.9}
# Inside free text, these need a strong score (national-id patterns fire on many numbers).
FREE_TEXT_ENTITIES = {"EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"}
FREE_TEXT_MIN_SCORE = {"PERSON": 0.8, "PHONE_NUMBER": 0.4}
FREE_TEXT_MIN_SHARE = 0.02
NAME_EVIDENCE_MIN_SHARE = 0.2
# The share of a value's characters (separators aside) an entity's matches must cover to be the value.
WHOLE_VALUE_COVERAGE = 0.8
COVERAGE = {"STREET_ADDRESS": 0.5}
SAMPLES_KEPT = 5
# Whatever a value's size, at most this many characters of it are analysed (the scan records how many were cut).
MAX_VALUE_CHARS = 2000
_ALPHA_WORD = re.compile(r"[^\W\d_]{2,}")
_NUMERIC = re.compile(r"^[+-]?\d+([.,]\d+)?$")
_DATE_LIKE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T].*)?$")
_DATE_ONLY = re.compile(
    r"^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}|\d{1,2}\.?\s+[^\W\d_]{3,}\.?\s+\d{4}"
    r"|[^\W\d_]{3,}\.?\s+\d{1,2},?\s+\d{4})$"
)
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")
_BOOLEAN = {"true", "false", "t", "f", "yes", "no", "y", "n", "0", "1", "ja", "nein", "oui", "non", "si", "sí",
            "wahr", "falsch", "vrai", "faux", "waar", "onwaar", "vero", "falso", "verdadero", "j"}
_IPV4 = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
_SEPARATORS = re.compile(r"[\s,;|]+")
_PRODUCT_TOKEN = re.compile(r"\b[A-Za-z][\w.-]*/\d[\w.]*")  # Mozilla/5.0, AppleWebKit/537.36


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
    confidence: float = 0.0


@dataclass
class Classification:
    """All verdicts of one classification, with what could not be analysed (never a value)."""

    verdicts: list[ColumnVerdict]
    column_errors: dict[str, str] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)


def normalise_column(column: str) -> str:
    """``dateDeNaissance`` -> ``date_de_naissance``; ``Città`` -> ``citta``; ``Straße`` -> ``strasse``."""
    text = re.sub(r"([a-z])([A-Z])", r"\1_\2", column).replace("ß", "ss")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def name_evidence(column: str) -> tuple[str | None, str]:
    """The entity a column's name suggests, and the evidence as text."""
    norm = normalise_column(column)
    # Numbered columns (``zip5``, ``surname_2``, ``tel1_home``): the word without its number, when the name as
    # written says nothing.
    bare = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", "_", norm)
    bare = re.sub(r"(^|_)\d+(?=_|$)", "", bare).strip("_")
    for name in dict.fromkeys((norm, bare)):
        for entity, pattern in NAME_RULES:
            if pattern.search(name):
                if NOT_THE_ENTITY.search(name):
                    return None, ""
                return entity, f"column name {column!r} suggests {entity}"
    return None, ""


def _is_free_text(values: Sequence[str], column: str) -> bool:
    """Sentences, not short structured values: several words separated by spaces, not machine strings."""
    if not values:
        return False
    if sum(1 for v in values if len(_PRODUCT_TOKEN.findall(v)) >= 2) >= 0.5 * len(values):
        return False  # user agents and similar product/version strings
    words = statistics.median(len(_ALPHA_WORD.findall(v)) for v in values)
    tokens = statistics.median(len(v.split()) for v in values)
    named = bool(FREE_TEXT_NAMES.search(normalise_column(column)))
    return (words >= 3 and tokens >= 3) or (named and words >= 2 and tokens >= 2)


def classify_columns(samples: Mapping[str, Sequence[str]]) -> list[ColumnVerdict]:
    """Decide each column's entity from its sampled distinct values and its name (see :func:`classify`)."""
    return classify(samples).verdicts


def classify(samples: Mapping[str, Sequence[str]], *, prefilter: bool = True) -> Classification:
    """Decide each column's entity from its sampled distinct values and its name.

    Every value is analysed once (its first :data:`MAX_VALUE_CHARS` characters), all
    columns in one batch, by the recognizers that can matter for it
    (:mod:`compliance.prefilter`; ``prefilter=False`` runs every recognizer on every value,
    the reference the tests and the benchmark compare with). A structured column gets at
    most one entity (the best supported); a free-text column gets one finding per entity
    found inside its text. A column whose analysis fails is recorded in ``column_errors``
    and the others are still classified.
    """
    # Presidio and spaCy load here, on the first scan, not when a process starts (about 1.5 s).
    from .analyzer import batch_analyzer
    from .prefilter import analyze_columns

    columns = list(samples)
    truncated: dict[str, int] = {}
    prepared: dict[str, list[str]] = {}
    for column in columns:
        values = []
        for v in samples[column]:
            text = str(v).strip()
            if len(text) > MAX_VALUE_CHARS:
                truncated[column] = truncated.get(column, 0) + 1
                text = text[:MAX_VALUE_CHARS]
            values.append(text)
        prepared[column] = values
    errors: dict[str, str] = {}
    engine = batch_analyzer()
    ner = bool(settings.PII_SPACY_MODEL)

    def analyze(part: dict[str, list[str]]) -> dict[str, list]:
        if prefilter:
            return analyze_columns(engine.analyzer_engine, part, ner=ner,
                                   first=lambda column: named_sources(column)[1], settles=named_settles)
        flat = [v for c in part for v in part[c]]
        results = list(engine.analyze_iterator(flat, language="en", batch_size=256)) if flat else []
        by_column, pos = {}, 0
        for column, values in part.items():
            by_column[column] = results[pos : pos + len(values)]
            pos += len(values)
        return by_column

    try:
        by_column = analyze(prepared)
    except Exception:  # one bad column: analyse column by column, so only that one is lost
        by_column = {}
        for column in columns:
            try:
                by_column[column] = analyze({column: prepared[column]})[column]
            except Exception as exc:
                errors[column] = f"analysis failed ({type(exc).__name__})"
    verdicts: list[ColumnVerdict] = []
    for column in columns:
        if column not in by_column:
            continue
        try:
            verdicts.extend(_decide(column, prepared[column], by_column[column]))
        except Exception as exc:
            errors[column] = f"classification failed ({type(exc).__name__})"
    return Classification(verdicts, errors, truncated)


def _entity(name: str, named: str | None) -> str | None:
    name = ALIASES.get(name, name)
    if name == "DATE_TIME" and named == "DATE_OF_BIRTH":
        return "DATE_OF_BIRTH"
    if name == "LOCATION" and named in ("STREET_ADDRESS", "POSTCODE"):
        return named
    if name == "URL" and named == "URL":
        return "URL"
    return None if name in NOT_PII else name


def _coverage(value: str, spans: list[tuple[int, int]]) -> float:
    """Share of the value's characters (whitespace and list separators aside) the spans cover."""
    significant = len(_SEPARATORS.sub("", value))
    if not significant:
        return 0.0
    covered = [False] * len(value)
    for start, end in spans:
        covered[start:end] = [True] * (end - start)
    return sum(1 for ch, c in zip(value, covered, strict=True) if c and not _SEPARATORS.match(ch)) / significant


def _looks_like_versions(values: Sequence[str]) -> bool:
    """Dotted quads of small numbers (``2.14.0.3``) are versions; real IPv4 addresses use the whole range."""
    quads = [m for m in (_IPV4.match(v) for v in values) if m]
    if not quads:
        return False
    small = sum(1 for m in quads if int(m.group(1)) <= 30 and all(int(p) <= 99 for p in m.groups()))
    return small >= 0.5 * len(quads)


def _birth_dates_by_value(values: Sequence[str]) -> bool:
    """Dates without a time, of people alive and at least ten years old, spread over decades."""
    dated = [v for v in values if _DATE_ONLY.match(v)]
    if len(dated) < max(5, 0.9 * len(values)):
        return False
    years = [int(m.group(1)) for m in (_YEAR.search(v) for v in dated) if m]
    if len(years) < 0.9 * len(dated):
        return False
    return min(years) >= 1900 and max(years) <= date.today().year - 10 and max(years) - min(years) >= 15


def _compatible(entity: str, values: Sequence[str]) -> bool:
    """Whether values could hold what a column's name suggests (name evidence alone needs this)."""
    some = lambda pred: sum(1 for v in values if pred(v)) >= 0.5 * len(values)  # noqa: E731
    if entity == "EMAIL_ADDRESS":
        return some(lambda v: "@" in v or "%40" in v)
    if entity in ("PHONE_NUMBER", "IP_ADDRESS", "POSTCODE", "DE_TAX_ID", "FR_NIR", "NL_BSN", "US_SSN", "IBAN_CODE",
                  "CREDIT_CARD", "DATE_OF_BIRTH", "UK_NINO", "ES_NIF", "IT_FISCAL_CODE"):
        return some(lambda v: sum(ch.isdigit() for ch in v) >= 2)
    if entity in ("PERSON", "LOCATION"):
        return some(lambda v: bool(_ALPHA_WORD.search(v)))
    if entity == "URL":
        return some(lambda v: "/" in v or "." in v)
    return True


def _decide(column: str, values: list[str], results: list[list]) -> list[ColumnVerdict]:
    named, evidence = name_evidence(column)
    n = len(values)
    if n == 0:
        return []
    if all(v.lower() in _BOOLEAN for v in values):
        return []  # a flag (email_opt_in) says nothing about a person whatever the column's name
    numeric = all(_NUMERIC.match(v) for v in values)
    whole, inside, matched = _readings(values, results, named)
    org_share = sum(1 for v in values if ORG_WORDS.search(v)) / n

    def verdict(entity: str, hits: dict[str, list[float]], is_text: bool = False) -> ColumnVerdict:
        scores = hits.get(entity, [])
        share = len(scores) / n
        mean = sum(scores) / len(scores) if scores else 0.0
        return ColumnVerdict(
            column=column,
            entity=entity,
            share=round(share, 4),
            mean_score=round(mean, 4),
            name_evidence=evidence if entity == named else "",
            sample_size=n,
            free_text=is_text,
            samples=matched.get(entity, [])[:SAMPLES_KEPT],
            confidence=confidence(share, mean, by_name=entity == named, free_text=is_text),
        )

    candidates = [(entity == named, len(scores) / n * (sum(scores) / len(scores)), entity)
                  for entity, scores in whole.items() if _candidate(entity, scores, n, named, numeric, org_share)]
    if candidates:
        return [verdict(max(candidates)[2], whole)]
    if _is_free_text(values, column) and org_share < 0.2:
        return [verdict(e, inside, True) for e, s in sorted(inside.items()) if len(s) / n >= FREE_TEXT_MIN_SHARE]
    if named and _compatible(named, values) and not (
        numeric and named in ("PERSON", "LOCATION", "STREET_ADDRESS", "EMAIL_ADDRESS", "URL")
    ):
        return [verdict(named, whole)]  # the name alone: a steward confirms or dismisses it
    return []


def _candidate(entity: str, scores: list[float], n: int, named: str | None, numeric: bool, org_share: float) -> bool:
    """Whether the values support ``entity`` as the column's (structured) entity."""
    share, mean = len(scores) / n, sum(scores) / len(scores)
    if numeric and entity != named and share < NUMERIC_OK.get(entity, 2.0):
        return False  # an order id is not a phone number nor an NHS number
    if entity == "PERSON" and org_share >= 0.2 and entity != named:
        return False  # company names built from surnames
    by_values = share >= settings.PII_MIN_SHARE and mean >= settings.PII_MIN_SCORE
    by_name = entity == named and share >= NAME_EVIDENCE_MIN_SHARE
    return by_values or by_name


def named_sources(column: str) -> tuple[str | None, frozenset[str]]:
    """The entity a column's name suggests and every entity whose results :func:`_readings` can turn into its
    evidence (the recognizers to run first: :func:`named_settles`)."""
    named, _ = name_evidence(column)
    if named is None:
        return None, frozenset()
    wanted = {named}
    if named == "PERSON":  # a person beside a street or place is the street or place
        wanted |= {"STREET_ADDRESS", "LOCATION", "POSTCODE"}
    sources = set(wanted) | {raw for raw, entity in ALIASES.items() if entity in wanted}
    if named == "DATE_OF_BIRTH":
        sources.add("DATE_TIME")
    if named in ("STREET_ADDRESS", "POSTCODE"):
        sources.add("LOCATION")
    return named, frozenset(sources)


def named_settles(column: str, values: list[str], results: list[list]) -> bool:
    """Whether the results of :func:`named_sources`'s entities alone settle the column's verdict: the named
    entity is a candidate, so :func:`_decide` picks it whatever the other recognizers find (a candidate the
    name agrees with comes first, and the verdict carries only its own evidence)."""
    named, _ = name_evidence(column)
    n = len(values)
    if named is None or n == 0 or all(v.lower() in _BOOLEAN for v in values):
        return False
    whole, _, _ = _readings(values, results, named)
    scores = whole.get(named)
    return bool(scores) and _candidate(named, scores, n, named, all(_NUMERIC.match(v) for v in values),
                                       sum(1 for v in values if ORG_WORDS.search(v)) / n)


def _readings(values: list[str], results: list[list], named: str | None):
    """Two readings of the same results: the whole value is the entity (structured), or the entity appears
    inside the value (free text); with a few matched values of each entity."""
    whole: dict[str, list[float]] = {}
    inside: dict[str, list[float]] = {}
    matched: dict[str, list[str]] = {}
    for value, found in zip(values, results, strict=True):
        spans: dict[str, list[tuple[int, int]]] = {}
        scores: dict[str, float] = {}
        best_inside: dict[str, float] = {}
        for r in found:
            entity = _entity(r.entity_type, named)
            if entity is None:
                continue
            spans.setdefault(entity, []).append((r.start, r.end))
            scores[entity] = max(scores.get(entity, 0.0), r.score)
            if entity in FREE_TEXT_ENTITIES and r.score >= FREE_TEXT_MIN_SCORE.get(entity, 0.5):
                best_inside[entity] = max(best_inside.get(entity, 0.0), r.score)
        best_whole = {
            e: scores[e] for e, sp in spans.items() if _coverage(value, sp) >= COVERAGE.get(e, WHOLE_VALUE_COVERAGE)
        }
        # A street or a place named after a person is a street or a place.
        if "PERSON" in best_whole and ({"STREET_ADDRESS", "LOCATION", "POSTCODE"} & set(best_whole)):
            del best_whole["PERSON"]
        if named == "DATE_OF_BIRTH" and _DATE_LIKE.match(value):
            best_whole.setdefault("DATE_OF_BIRTH", 0.5)
        for target, best in ((whole, best_whole), (inside, best_inside)):
            for entity, score in best.items():
                target.setdefault(entity, []).append(score)
        for entity in sorted({**best_whole, **best_inside}):
            if len(matched.setdefault(entity, [])) < SAMPLES_KEPT:
                matched[entity].append(value)
    if "IP_ADDRESS" in whole and _looks_like_versions(values):
        del whole["IP_ADDRESS"]
    if "DATE_OF_BIRTH" not in whole and _birth_dates_by_value(values):
        whole["DATE_OF_BIRTH"] = [0.5] * sum(1 for v in values if _DATE_ONLY.match(v))
        matched["DATE_OF_BIRTH"] = [v for v in values if _DATE_ONLY.match(v)][:SAMPLES_KEPT]
    return whole, inside, matched


def confidence(share: float, mean: float, *, by_name: bool, free_text: bool = False) -> float:
    """How sure the scan is, 0 to 1: the values' evidence (share matched x mean score), raised by agreeing
    column-name evidence; a column name alone gives 0.4. Inside free text the share is naturally low,
    so the mean score counts, weighed by how often the entity appears."""
    values = mean * min(1.0, 0.5 + 5 * share) if free_text else share * mean
    name = 0.4 if by_name else 0.0
    return round(min(1.0, 1 - (1 - values) * (1 - name)), 4)


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
    return run_scan(scan, actor=actor)


def run_scan(scan: PiiScan, *, actor=None) -> PiiScan:
    """Do a recorded scan (a new one, or one an ingest queued: ``compliance.scan_tasks``).

    A scan of some batches (``scan.batches``) samples only their rows and merges what it finds
    with each column's previous evidence (:func:`merge_findings`); a scan of the whole table
    replaces it (:func:`save_findings`). A failure is recorded on the scan, not raised.
    """
    dataset = scan.dataset
    if scan.status != RunStatus.RUNNING:
        scan.start()
    size = scan.sample_size or settings.PII_SAMPLE_SIZE
    try:
        wh = get_warehouse()
        if not wh.table_exists(dataset.layer, dataset.table):
            raise WarehouseError(f"{dataset.qualified_table} has not been loaded yet; nothing to scan.")
        columns = scannable_columns(dataset, [c.name for c in wh.columns(dataset.layer, dataset.table)])
        samples, sample_errors = sample_columns(wh, dataset, columns, size, batches=scan.batches or None)
        result = classify(samples)
        errors = {**sample_errors, **result.column_errors}
        details: dict = {**(scan.details or {}), "columns": {v.column: v.entity for v in result.verdicts}}
        if errors:
            details["column_errors"] = errors
        if result.truncated:
            details["truncated_values"] = {"max_chars": MAX_VALUE_CHARS, "columns": result.truncated}
        with transaction.atomic():
            # Two scans of one dataset (scan workers side by side) merge their evidence one after the other;
            # one taken over meanwhile (its worker thought lost) records nothing: its successor does.
            Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
            if PiiScan.objects.filter(pk=scan.pk).values_list("status", flat=True).first() != RunStatus.RUNNING:
                logger.warning("PII scan %s was taken over while it ran; its successor records the findings.", scan.pk)
                scan.refresh_from_db()
                return scan
            if scan.batches:
                sampled = {c: len(v) for c, v in samples.items() if c not in errors}
                saved = merge_findings(dataset, result.verdicts, scan, sampled=sampled)
            else:
                saved = save_findings(dataset, result.verdicts, scan, failed=set(errors))
            # Privacy by default: what the scan is sure enough of is protected on Chart before any review.
            protect_by_default(datasets=[dataset], actor=actor)
            scan.finish(
                RunStatus.SUCCEEDED,
                columns_scanned=len(columns) - len(errors),
                findings_count=len(saved),
                rows_in=sum(len(v) for v in samples.values()),
                details=details,
            )
    except Exception as exc:
        logger.warning("PII scan of %s failed: %s", dataset.name, exc)
        scan.fail(
            str(exc) if isinstance(exc, WarehouseError) else f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
    return scan


def sample_columns(
    wh, dataset: Dataset, columns: Sequence[str], size: int, *, batches: Sequence[str] | None = None
) -> tuple[dict[str, list[str]], dict]:
    """Sample all columns in one query; if that fails, column by column, recording which failed (and why,
    by error type only: a warehouse message may quote a value). ``batches``: their rows only."""
    kwargs = {"limit": size, "scan_rows": settings.PII_SCAN_ROWS, "max_chars": MAX_VALUE_CHARS}
    if batches:
        kwargs["batches"] = list(batches)
    try:
        return wh.sample_distinct(dataset.layer, dataset.table, columns, **kwargs), {}
    except Exception:
        if len(columns) < 2:
            raise
    samples: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for column in columns:
        try:
            samples.update(wh.sample_distinct(dataset.layer, dataset.table, [column], **kwargs))
        except Exception as exc:
            errors[column] = f"sampling failed ({type(exc).__name__})"
    if not samples:
        raise WarehouseError(f"Sampling {dataset.qualified_table} failed for every column.")
    return samples, errors


def save_findings(
    dataset: Dataset, verdicts: Sequence[ColumnVerdict], scan: PiiScan, *, failed: set[str] = frozenset()
) -> list[PiiFinding]:
    """Upsert one finding per (column, entity); decisions survive, stale proposals go.

    A column the scan could not analyse (``failed``) keeps its findings: no evidence is not
    evidence of absence."""
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
                "confidence": v.confidence,
                "name_evidence": v.name_evidence,
                "sample_size": v.sample_size,
                "samples": v.samples,
                "last_scan": scan,
                "covers": {"whole_table_scan": scan.pk, "batches": [], "batches_since": 0},
            },
        )
        saved.append(finding)
    (
        PiiFinding.objects.filter(dataset=dataset, status=PiiFinding.Status.PROPOSED)
        .exclude(pk__in=[f.pk for f in saved])
        .exclude(column__in=failed)
        .delete()
    )
    return saved


# Batches a finding lists by id (the newest); older ones are counted in ``batches_since``.
COVERED_BATCHES_LISTED = 20


def merge_findings(
    dataset: Dataset, verdicts: Sequence[ColumnVerdict], scan: PiiScan, *, sampled: Mapping[str, int]
) -> list[PiiFinding]:
    """Merge a scan of new batches into each column's previous evidence (issue 20: work on what is new).

    For a column and entity, the evidence is what every scan since the last whole-table scan
    saw, weighed by the values each analysed: the share of values matched, their mean score and
    the values analysed add up as if one scan had seen them all, and the confidence follows.
    An entity the new batches do not show keeps its finding (the earlier rows still hold it),
    its share diluted by the values that did not match; an entity only they show is a new
    finding. Nothing is removed (no evidence in new rows is not absence from old ones), and
    decisions stay. ``sampled``: the values analysed per column (columns that failed are absent:
    their findings are left as they were). Each finding's ``covers`` names the batches added.
    """
    new_by_key = {(v.column, v.entity): v for v in verdicts if v.column in sampled}
    old_by_key = {
        (f.column, f.entity): f
        for f in PiiFinding.objects.filter(dataset=dataset, column__in=list(sampled))
    }
    saved: list[PiiFinding] = []
    for key in sorted(set(new_by_key) | set(old_by_key)):
        column, _ = key
        new, old = new_by_key.get(key), old_by_key.get(key)
        if old is None:
            finding = PiiFinding(
                dataset=dataset, column=new.column, entity=new.entity, free_text=new.free_text, share=new.share,
                mean_score=new.mean_score, confidence=new.confidence, name_evidence=new.name_evidence,
                sample_size=new.sample_size, samples=new.samples,
            )
            finding.covers = {"whole_table_scan": None, "batches": [], "batches_since": 0}
        else:
            finding = old
            n_old, n_new = old.sample_size, (new.sample_size if new else sampled[column])
            hits_old = old.share * n_old
            hits_new = new.share * n_new if new else 0.0
            total = n_old + n_new
            finding.share = round((hits_old + hits_new) / total, 4) if total else 0.0
            if hits_old + hits_new:
                finding.mean_score = round(
                    (old.mean_score * hits_old + (new.mean_score * hits_new if new else 0.0)) / (hits_old + hits_new), 4
                )
            finding.sample_size = total
            if new is not None:
                finding.free_text = old.free_text or new.free_text
                finding.name_evidence = old.name_evidence or new.name_evidence
                finding.samples = [*new.samples, *[v for v in old.samples if v not in new.samples]][:SAMPLES_KEPT]
            finding.confidence = confidence(
                finding.share, finding.mean_score, by_name=bool(finding.name_evidence), free_text=finding.free_text
            )
        covers = dict(finding.covers or {"whole_table_scan": None, "batches": [], "batches_since": 0})
        listed = [*(covers.get("batches") or []), *scan.batches]
        covers["batches_since"] = int(covers.get("batches_since") or 0) + len(scan.batches)
        covers["batches"] = listed[-COVERED_BATCHES_LISTED:]
        finding.covers = covers
        finding.last_scan = scan
        finding.save()
        saved.append(finding)
    return saved
