"""Presidio, offline by design: one analyzer per process, never a model download.

A bare ``AnalyzerEngine()`` loads (and downloads) ``en_core_web_lg``; Atlas
instead gives it a blank spaCy English pipeline (tokenizer only) and the
pattern recognizers, plus two recognizers of its own that work without NER:
person names from a list built from Faker's locale data, and street
addresses by their shape. ``PII_SPACY_MODEL`` names an installed spaCy model
to add NER. tldextract (used by the email and URL recognizers) is pointed at
its bundled suffix-list snapshot so it never reaches the network.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from functools import lru_cache

from django.conf import settings

# Presidio logs every registry lookup (INFO) and every recognizer of another language
# (WARNING): thousands of lines per scan.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

from presidio_analyzer import (  # noqa: E402
    AnalyzerEngine,
    BatchAnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine  # noqa: E402
from presidio_analyzer.predefined_recognizers import PhoneRecognizer  # noqa: E402

# Locales whose first names and surnames feed the name list (Faker's own data).
NAME_LOCALES = (
    "en_US", "en_GB", "en_IE", "de_DE", "de_AT", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_PT", "pl_PL", "sv_SE",
)
# Common English words that are also given names or surnames; never a name on their own.
NAME_STOPWORDS = {
    "May", "June", "April", "August", "Will", "Bill", "Mark", "Rose", "Grace", "Hope", "Faith", "Joy", "Page",
    "Street", "Lane", "Hill", "Wood", "King", "Black", "White", "Green", "Brown", "Gray", "Grey", "Young",
    "Long", "Rich", "Price", "Best", "Bell", "Little", "Small", "Strong", "Love", "Ring", "Gate", "Call",
    "Send", "Leave", "Deliver", "Account", "Gift", "Contact", "Please", "Driver", "Customer", "Parcel",
    "Repeat", "Prefers", "Fragile", "No", "Art", "Case", "Tent", "Head", "Cap", "Classic", "Premium",
    "Navy", "Sage", "Oat", "Mustard", "Nordic", "Urban", "Vintage", "Compact", "Deluxe", "Everyday", "The",
    "Le", "La", "De", "Van", "Von", "Del", "Da", "Di", "Du", "Des", "Der", "Den", "Am", "Im", "Bad",
}
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IE", "ES", "IT", "NL", "BE", "AT", "CH", "CA", "AU", "IN", "BR")
_WORD = re.compile(r"[^\W\d_][^\W\d_'’-]*", re.UNICODE)
_STREET_WORDS = (
    r"street|st|avenue|ave|road|rd|lane|ln|drive|dr|way|court|ct|boulevard|blvd|place|pl|square|sq|terrace"
    r"|crescent|close|parkway|pkwy|highway|hwy|row|walk|gardens|grove|mews|hill|park|view|trail|circle|cir"
    r"|suite|apt|unit|straße|strasse|str|weg|allee|platz|gasse|ring|damm|ufer|chaussee|rue|avenue|boulevard"
    r"|chemin|impasse|allée|quai|place|cours|calle|via|viale|piazza|plein|laan|straat|gracht"
)
_tld_lock = threading.Lock()


def offline_tldextract() -> None:
    """Make ``tldextract.extract`` use the suffix list shipped in the package (no HTTP)."""
    import tldextract.tldextract as tld

    with _tld_lock:
        if not getattr(tld.TLD_EXTRACTOR, "_atlas_offline", False):
            extractor = tld.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
            extractor._atlas_offline = True
            tld.TLD_EXTRACTOR = extractor


@lru_cache(maxsize=1)
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, surnames) from Faker's person providers of :data:`NAME_LOCALES`."""
    firsts: set[str] = set()
    lasts: set[str] = set()
    for locale in NAME_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female"):
            firsts.update(_names(getattr(provider, attr, ())))
        lasts.update(_names(getattr(provider, "last_names", ())))
    clean = lambda names: frozenset(n for n in names if len(n) > 1 and n not in NAME_STOPWORDS)  # noqa: E731
    return clean(firsts), clean(lasts)


def _names(source) -> set[str]:
    out: set[str] = set()
    for value in source:
        # Compound names ("Jean-Pierre", "van der Berg") count by their parts too.
        out.add(value)
        out.update(w for w in _WORD.findall(value) if w[:1].isupper())
    return out


class NameListRecognizer(EntityRecognizer):
    """PERSON without NER: capitalised words found in the first-name and surname lists.

    A first name followed by a surname scores high; a lone listed word scores
    low, so a city such as "Lake Michael" or a product does not become a person.
    """

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="AtlasNameListRecognizer", supported_language="en")

    def load(self) -> None:
        name_lists()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None):
        firsts, lasts = name_lists()
        words = [m for m in _WORD.finditer(text) if m.group()[:1].isupper()]
        results: list[RecognizerResult] = []
        i = 0
        while i < len(words):
            w = words[i].group()
            nxt = words[i + 1] if i + 1 < len(words) else None
            adjacent = nxt is not None and text[words[i].end() : nxt.start()].strip() == ""
            if w in firsts and adjacent and nxt.group() in lasts:
                results.append(self._result(words[i].start(), nxt.end(), 0.85))
                i += 2
                continue
            if w in firsts or w in lasts:
                results.append(self._result(words[i].start(), words[i].end(), 0.5 if w in firsts and w in lasts else 0.45))
            i += 1
        return results

    def _result(self, start: int, end: int, score: float) -> RecognizerResult:
        return RecognizerResult("PERSON", start, end, score, recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
        })


class FastPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer, skipping text with too few digits to hold a phone number.

    It runs python-phonenumbers' matcher once per region (15 here), which made it half of
    a scan's time; names, cities and most emails have no digits at all. No number of the
    supported regions is shorter than ``MIN_DIGITS`` digits (phonenumbers' metadata: DE, AT).
    """

    MIN_DIGITS = 4

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None):
        if sum(ch.isdigit() for ch in text) < self.MIN_DIGITS:
            return []
        return super().analyze(text, entities, nlp_artifacts)


def street_address_recognizer() -> PatternRecognizer:
    """STREET_ADDRESS by shape: a house number and a street word, in English, German or French order."""
    patterns = [
        Pattern("number first", rf"(?i)\b\d{{1,5}}[a-z]?,?\s+(?:[^\W\d_][\w'.-]*\s+){{0,5}}(?:{_STREET_WORDS})\b\.?", 0.6),
        Pattern("street first", rf"(?i)\b[^\W\d_][\w'.-]*(?:{_STREET_WORDS})\.?\s+\d{{1,5}}[a-z]?\b", 0.6),
        Pattern("french", rf"(?i)\b\d{{1,4}},?\s+(?:{_STREET_WORDS})\s+[^\W\d_]", 0.6),
    ]
    return PatternRecognizer(supported_entity="STREET_ADDRESS", patterns=patterns, name="AtlasStreetAddressRecognizer")


class _OfflineSpacyNlpEngine(SpacyNlpEngine):
    """Loads a blank English pipeline, or an installed model named in settings; never downloads."""

    def __init__(self, model: str) -> None:
        super().__init__(models=[{"lang_code": "en", "model_name": model or "blank"}])
        self._model = model

    def load(self) -> None:
        import spacy

        self.nlp = {"en": spacy.load(self._model) if self._model else spacy.blank("en")}


def _build() -> AnalyzerEngine:
    offline_tldextract()
    nlp_engine = _OfflineSpacyNlpEngine(settings.PII_SPACY_MODEL)
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
    # The default phone regions miss most of Europe; a customer table rarely does.
    registry.remove_recognizer("PhoneRecognizer")
    registry.add_recognizer(FastPhoneRecognizer(supported_regions=PHONE_REGIONS))
    registry.add_recognizer(NameListRecognizer())
    registry.add_recognizer(street_address_recognizer())
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


_engine_lock = threading.Lock()


@lru_cache(maxsize=1)
def analyzer() -> AnalyzerEngine:
    """The process's analyzer (built once: the registry takes a second or two)."""
    with _engine_lock:
        return _build()


def batch_analyzer() -> BatchAnalyzerEngine:
    return BatchAnalyzerEngine(analyzer_engine=analyzer())
