"""National identifiers with their check digits, and the other locale-aware recognizers.

Each identifier has a pure validator (text in, bool out) that the unit tests
call directly, and a Presidio pattern recognizer that finds candidates by shape
and keeps only those the validator accepts, so a 9-digit order number is not
a Dutch BSN unless it passes the 11-proef, and a column is only called a
national-ID column when (nearly) all its values carry a valid check digit.

Entities: ``DE_TAX_ID`` (Steuer-ID, ISO 7064 MOD 11,10), ``FR_NIR`` (numéro de
sécurité sociale, key = 97 - n mod 97), ``NL_BSN`` (11-proef), ``UK_NINO``
(prefix and suffix rules; no check digit exists), ``ES_NIF`` (DNI and NIE,
letter = n mod 23), ``IT_FISCAL_CODE`` (codice fiscale, odd/even check
letter). US SSNs (area/group/serial rules) and IBANs (mod-97) use Presidio's
own validated recognizers. Also here: URLs that carry an e-mail address
(``EMAIL_ADDRESS``), postcodes by country format (``POSTCODE``) and places
from the city lists Faker ships (``LOCATION``).
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from urllib.parse import unquote_plus

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")


def _compact(text: str) -> str:
    return _NON_ALNUM.sub("", text).upper()


# --- validators ------------------------------------------------------------------
def valid_de_tax_id(text: str) -> bool:
    """German Steuer-ID: 11 digits, no leading 0, one digit repeated in the first ten, ISO 7064 MOD 11,10."""
    digits = _compact(text)
    if len(digits) != 11 or not digits.isdigit() or digits[0] == "0":
        return False
    counts = [digits[:10].count(d) for d in set(digits[:10])]
    # Since 2016 one digit appears two or three times in the first ten; every other once.
    if sorted(counts, reverse=True)[0] not in (2, 3) or sum(1 for c in counts if c > 1) != 1:
        return False
    product = 10
    for d in digits[:10]:
        total = (int(d) + product) % 10 or 10
        product = (total * 2) % 11
    check = 11 - product
    return (0 if check == 10 else check) == int(digits[10])


def valid_fr_nir(text: str) -> bool:
    """French NIR: sex, year, month, department (2A/2B for Corsica), commune, order, 2-digit key."""
    nir = _compact(text)
    if len(nir) != 15 or nir[0] not in "12378":
        return False
    body, key = nir[:13], nir[13:]
    if not key.isdigit():
        return False
    number = body.replace("2A", "19", 1) if body[5:7] == "2A" else body
    number = number.replace("2B", "18", 1) if body[5:7] == "2B" else number
    if not number.isdigit():
        return False
    month = int(body[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    return 97 - int(number) % 97 == int(key)


def valid_nl_bsn(text: str) -> bool:
    """Dutch BSN: 9 digits passing the 11-proef (9*d1 + 8*d2 + ... + 2*d8 - d9 divisible by 11)."""
    digits = _compact(text)
    if len(digits) == 8:
        digits = "0" + digits
    if len(digits) != 9 or not digits.isdigit() or int(digits) == 0:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - int(digits[8])
    return total % 11 == 0


_NINO_BAD_PREFIXES = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


def valid_uk_nino(text: str) -> bool:
    """UK National Insurance number: two prefix letters (HMRC rules), six digits, suffix A-D."""
    nino = _compact(text)
    if not re.fullmatch(r"[A-Z]{2}\d{6}[A-D]", nino):
        return False
    first, second = nino[0], nino[1]
    return (
        first not in "DFIQUV" and second not in "DFIQUVO" and nino[:2] not in _NINO_BAD_PREFIXES
    )


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def valid_es_nif(text: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): letter = number mod 23."""
    code = _compact(text)
    if len(code) != 9:
        return False
    head, letter = code[:8], code[8]
    if head[0] in "XYZ":
        head = str("XYZ".index(head[0])) + head[1:]
    return head.isdigit() and _DNI_LETTERS[int(head) % 23] == letter


_CF_ODD = {
    **dict(zip("0123456789", (1, 0, 5, 7, 9, 13, 15, 17, 19, 21), strict=True)),
    **dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12,
                                              14, 16, 10, 22, 25, 24, 23), strict=True)),
}
_CF_OMOCODIA = "LMNPQRSTUV"  # letters that replace digits 0-9 when two people share a code


def valid_it_fiscal_code(text: str) -> bool:
    """Italian codice fiscale: 16 characters (omocodia letters allowed), odd/even check letter."""
    code = _compact(text)
    if not re.fullmatch(r"[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]", code):
        return False
    total = 0
    for i, ch in enumerate(code[:15]):
        if i % 2 == 0:  # 1st, 3rd, ... (odd positions counted from one)
            total += _CF_ODD[ch]
        else:
            total += int(ch) if ch.isdigit() else ord(ch) - ord("A")
    return chr(ord("A") + total % 26) == code[15]


# --- recognizers ---------------------------------------------------------------------
class ValidatedPatternRecognizer(PatternRecognizer):
    """A pattern recognizer whose candidates must pass a check-digit validator (invalid ones are dropped)."""

    def __init__(self, entity: str, name: str, patterns: list[Pattern], validator, context=None) -> None:
        self._validator = validator
        super().__init__(supported_entity=entity, name=name, patterns=patterns, context=context or [])

    def validate_result(self, pattern_text: str) -> bool:
        return bool(self._validator(pattern_text))


def national_id_recognizers() -> list[EntityRecognizer]:
    """One recognizer per national identifier; a validated match scores high (a check digit passed)."""
    return [
        ValidatedPatternRecognizer(
            "DE_TAX_ID", "AtlasDeTaxIdRecognizer",
            [Pattern("steuer-id", r"\b[1-9]\d(?:[ ./]?\d{3}){3}\b", 0.6)], valid_de_tax_id,
        ),
        ValidatedPatternRecognizer(
            "FR_NIR", "AtlasFrNirRecognizer",
            [Pattern("nir", r"\b[12378] ?\d{2} ?\d{2} ?(?:\d{2}|2[AaBb]) ?\d{3} ?\d{3} ?\d{2}\b", 0.7)],
            valid_fr_nir,
        ),
        ValidatedPatternRecognizer(
            "NL_BSN", "AtlasNlBsnRecognizer",
            [Pattern("bsn", r"\b\d{9}\b|\b\d{4}[ .]\d{2}[ .]\d{3}\b|\b\d{3}[ .]\d{3}[ .]\d{3}\b", 0.5)],
            valid_nl_bsn,
        ),
        ValidatedPatternRecognizer(
            "UK_NINO", "AtlasUkNinoRecognizer",
            [Pattern("nino", r"(?i)\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", 0.7)], valid_uk_nino,
        ),
        # HMRC's reserved test prefix and wrong suffixes still have the unmistakable 2-2-2 shape.
        PatternRecognizer(
            supported_entity="UK_NINO", name="AtlasUkNinoShapeRecognizer",
            patterns=[Pattern("nino shape", r"\b[A-Z]{2} \d{2} \d{2} \d{2} [A-Z]\b|\b[A-Z]{2}\d{6}[A-Z]\b", 0.4)],
        ),
        ValidatedPatternRecognizer(
            "ES_NIF", "AtlasEsNifRecognizer",
            [Pattern("dni/nie", r"(?i)\b(?:\d{8}|[XYZ][ -]?\d{7})[ -]?[A-Z]\b", 0.7)], valid_es_nif,
        ),
        ValidatedPatternRecognizer(
            "IT_FISCAL_CODE", "AtlasItFiscalCodeRecognizer",
            [Pattern("codice fiscale", r"(?i)\b[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]\b",
                     0.7)],
            valid_it_fiscal_code,
        ),
    ]


class UrlEmailRecognizer(EntityRecognizer):
    """An e-mail address carried inside a URL (``?email=anna%40example.de``, ``mailto:``, ``/u/a@b.c``)."""

    _URL = re.compile(r"(?i)\b(?:https?://|mailto:|www\.)[^\s<>\"']+")
    _EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")

    def __init__(self) -> None:
        super().__init__(supported_entities=["EMAIL_ADDRESS"], name="AtlasUrlEmailRecognizer", supported_language="en")

    def load(self) -> None:
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None):
        if "@" not in text and "%40" not in text.upper():
            return []
        results = []
        for m in self._URL.finditer(text):
            if self._EMAIL.search(unquote_plus(m.group())):
                results.append(RecognizerResult("EMAIL_ADDRESS", m.start(), m.end(), 0.85, recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                }))
        return results


def postcode_recognizer() -> PatternRecognizer:
    """POSTCODE by country format. Distinctive formats score high; a bare 5-digit number scores low
    (it becomes a postcode only with column-name evidence, see ``compliance.detection``)."""
    return PatternRecognizer(
        supported_entity="POSTCODE", name="AtlasPostcodeRecognizer",
        patterns=[
            Pattern("uk", r"(?i)\b(?:[A-Z]{1,2}\d[A-Z\d]?|GIR) ?\d[A-Z]{2}\b", 0.6),
            Pattern("nl", r"\b[1-9]\d{3} ?(?!SA|SD|SS)[A-Z]{2}\b", 0.6),
            Pattern("us zip+4", r"\b\d{5}-\d{4}\b", 0.5),
            Pattern("five digits (de, fr, es, it, us)", r"\b\d{5}\b", 0.05),
            Pattern("four digits (at, ch, be)", r"\b[1-9]\d{3}\b", 0.01),
        ],
    )


@lru_cache(maxsize=1)
def city_names() -> frozenset[str]:
    """Lower-cased city names from the city lists of Faker's address providers (shipped, offline)."""
    names: set[str] = set()
    for locale in ("de_DE", "de_AT", "de_CH", "nl_NL", "nl_BE", "it_IT"):
        provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
        names.update(c.lower() for c in getattr(provider, "cities", ()) if len(c) > 2)
    return frozenset(names)


class CityRecognizer(EntityRecognizer):
    """LOCATION: a whole value that is a listed city name (the list comes from Faker's address data)."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["LOCATION"], name="AtlasCityRecognizer", supported_language="en")

    def load(self) -> None:
        city_names()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None):
        value = text.strip()
        if not value or len(value) > 60 or value.lower() not in city_names():
            return []
        start = text.index(value)
        return [RecognizerResult("LOCATION", start, start + len(value), 0.6, recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
        })]
