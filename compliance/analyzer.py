"""Presidio, offline by design: one analyzer per process, never a model download.

A bare ``AnalyzerEngine()`` loads (and downloads) ``en_core_web_lg``; Atlas
instead gives it what a blank spaCy English pipeline gives (no entity, no
lemma: ``_BlankNlpEngine``, which runs no pipeline) and the pattern recognizers, plus two recognizers of its own that work without NER:
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

import phonenumbers  # noqa: E402
from presidio_analyzer import (  # noqa: E402
    AnalyzerEngine,
    BatchAnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer  # noqa: E402
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine  # noqa: E402
from presidio_analyzer.predefined_recognizers import PhoneRecognizer  # noqa: E402

from .vocab import ORG_WORDS  # noqa: E402

# Locales whose first names and surnames feed the name list (Faker's own data).
NAME_LOCALES = (
    "en_US", "en_GB", "en_IE", "de_DE", "de_AT", "de_CH", "fr_FR", "fr_CH", "es_ES", "it_IT", "nl_NL", "nl_BE",
    "pt_PT", "pl_PL", "sv_SE", "da_DK",
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
# Street words in English, German, French, Spanish, Italian and Dutch; Faker's address data adds more.
_STREET_SUFFIXES = (
    "street st avenue ave road rd lane ln drive dr way court ct boulevard blvd place pl square sq terrace crescent"
    " close parkway pkwy highway hwy row walk gardens grove mews hill park view trail circle cir"
    " straße strasse str weg allee platz gasse ring damm ufer chaussee steig pfad markt"
    " straat laan plein gracht singel kade dijk hof pad steeg dreef baan"
)
_STREET_PREFIXES = (
    "rue avenue av boulevard bd chemin impasse allée allee quai place cours route passage"
    " calle c avenida avda plaza paseo camino carrera ronda travesía glorieta pasaje rambla cuesta urbanización"
    " callejón cañada alameda acceso carretera"
    " via viale piazza piazzale corso largo vicolo strada borgo contrada rotonda incrocio stretto canale"
)
# Titles that open a person's name (kept inside the name's span).
HONORIFICS = {
    "Mr", "Mrs", "Ms", "Miss", "Dr", "Prof", "Sir", "Dame", "Herr", "Frau", "M", "Mme", "Mlle", "Monsieur",
    "Madame", "Sr", "Sra", "Srta", "Don", "Doña", "Sig", "Sig.ra", "Signor", "Signora", "Dott", "Dhr", "Mevr",
}
NAME_PARTICLES = {"van", "von", "der", "den", "de", "del", "della", "di", "da", "du", "des", "le", "la", "zu", "ten",
                  "ter", "y", "e", "dos", "das", "d'"}
_NAME_GAP = re.compile(r"\.?\s+|\s*,\s*")


@lru_cache(maxsize=1)
def street_words() -> tuple[str, str]:
    """(suffix alternation, prefix alternation) for the street recognizer: built-in words plus Faker's."""
    suffixes = set(_STREET_SUFFIXES.split())
    prefixes = set(_STREET_PREFIXES.split())
    suffixes.update(w.lower() for w in importlib.import_module("faker.providers.address.en_US").Provider.street_suffixes)
    suffixes.update(w.lower() for w in importlib.import_module("faker.providers.address.nl_NL").Provider.street_suffixes)
    prefixes.update(w.lower().rstrip(".") for w in importlib.import_module("faker.providers.address.es_ES").Provider.street_prefixes)
    prefixes.update(w.lower() for w in importlib.import_module("faker.providers.address.it_IT").Provider.street_suffixes)
    prefixes.update(w.lower() for w in importlib.import_module("faker.providers.address.fr_FR").Provider.street_prefixes)
    alt = lambda words: "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))  # noqa: E731
    return alt(suffixes), alt(prefixes)


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
    """PERSON without NER: runs of capitalised words found in the first-name and surname lists.

    A run holding a listed first name and a listed surname (``Anna Maria Müller``,
    ``Dr. Jan van der Berg``, ``MÜLLER, Anna``) scores high and covers the whole
    run with its title; a lone listed word scores low, so a city such as "Lake
    Michael" or a product does not become a person. A value with a company's legal
    form (``Schmidt GmbH``, ``Carter LLC``) holds no person.
    """

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="AtlasNameListRecognizer", supported_language="en")

    def load(self) -> None:
        name_lists()

    @staticmethod
    def _canon(word: str) -> str:
        return word.title() if word.isupper() and len(word) > 1 else word

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None):
        if ORG_WORDS.search(text):
            return []
        firsts, lasts = name_lists()
        words = list(_WORD.finditer(text))
        results: list[RecognizerResult] = []
        i = 0
        while i < len(words):
            run = [words[i]]
            j = i + 1
            if not words[i].group()[:1].isupper():
                i = j
                continue
            while j < len(words) and _NAME_GAP.fullmatch(text[words[j - 1].end() : words[j].start()]):
                w = words[j].group()
                if not (w[:1].isupper() or w.lower() in NAME_PARTICLES):
                    break
                run.append(words[j])
                j += 1
            results.extend(self._run(text, run, firsts, lasts))
            i = j
        return results

    def _run(self, text: str, run: list, firsts: frozenset, lasts: frozenset) -> list[RecognizerResult]:
        canon = [self._canon(m.group()) for m in run]
        start = 0
        while start < len(run) and canon[start].rstrip(".") in HONORIFICS:
            start += 1
        core = [(m, c) for m, c in zip(run[start:], canon[start:], strict=True) if c.lower() not in NAME_PARTICLES]
        if not core or not core[0][1][:1].isupper():
            return []
        listed = [c in firsts or c in lasts for _, c in core]
        if len(core) >= 2 and all(listed) and any(c in firsts for _, c in core) and any(c in lasts for _, c in core):
            return [self._result(run[0].start(), run[-1].end(), 0.85)]
        out = []
        for (m, c), is_listed in zip(core, listed, strict=True):
            if is_listed and c[:1].isupper():
                out.append(self._result(m.start(), m.end(), 0.5 if c in firsts and c in lasts else 0.45))
        return out

    def _result(self, start: int, end: int, score: float) -> RecognizerResult:
        return RecognizerResult("PERSON", start, end, score, recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
        })


class FastPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer, run only where a phone number can be.

    It runs python-phonenumbers' matcher once per region (15 here) over the whole
    text, which made it most of a scan's time. Here the matcher runs on each run of
    digits and phone punctuation long enough to be a number (with eight characters of
    context either side, which the matcher checks), and stops at the first region
    that accepts the run whole. Text with fewer than ``MIN_DIGITS`` digits is skipped
    (no number of the supported regions is shorter: phonenumbers' metadata, DE and AT).
    """

    MIN_DIGITS = 4
    _CANDIDATE = re.compile(r"(?:\+|\(|\b)\d[\d \t().\-/]{2,}\d(?:\s*(?:x|ext\.?|#)\s*\d{1,6})?", re.IGNORECASE)

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None):
        if sum(ch.isdigit() for ch in text) < self.MIN_DIGITS:
            return []
        results: list[RecognizerResult] = []
        for candidate in self._CANDIDATE.finditer(text):
            if sum(ch.isdigit() for ch in candidate.group()) < self.MIN_DIGITS:
                continue
            lo, hi = max(0, candidate.start() - 8), min(len(text), candidate.end() + 8)
            window = text[lo:hi]
            for region in self.supported_regions:
                found = [
                    (lo + m.start, lo + m.end)
                    for m in phonenumbers.PhoneNumberMatcher(window, region, leniency=self.leniency)
                ]
                for start, end in found:
                    results.append(self._result(start, end))
                if any(start <= candidate.start() and end >= candidate.end() for start, end in found):
                    break  # the whole run is a number of this region: no other region can say more
        return EntityRecognizer.remove_duplicates(results)

    def _result(self, start: int, end: int) -> RecognizerResult:
        return RecognizerResult(
            entity_type="PHONE_NUMBER", start=start, end=end, score=self.SCORE,
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


class LemmaContextOnlyWhenLemmatised(LemmaContextAwareEnhancer):
    """Presidio's context enhancer, skipped where it cannot change a score.

    It raises a result's score when a recognizer's context word is found among the lemmas around
    it, after a deep copy of every result (an eighth of a scan's time). The blank spaCy pipeline
    Atlas runs without a model has no lemmatizer: every lemma is empty, no context word is a part
    of an empty one, and no score can change. So, with no lemma and no context given, the results
    are returned as they are; with a model (``PII_SPACY_MODEL``), Presidio's enhancer runs
    (``compliance/tests/test_prefilter.py`` compares both, value by value).
    """

    def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
        if not context and nlp_artifacts is not None and not any(nlp_artifacts.lemmas):
            return raw_results
        return super().enhance_using_context(text, raw_results, nlp_artifacts, recognizers, context)


def street_address_recognizer() -> PatternRecognizer:
    """STREET_ADDRESS by shape: a house number with a street word, in the orders of en, de, nl, fr, es and it."""
    suffix, prefix = street_words()
    name = r"[^\W\d_][\w'’.-]*"
    number = r"\d{1,5}(?:\s?[a-zA-Z]\b|\s?(?:bis|ter)\b|-\d{1,4})?"
    patterns = [
        # 141 Hodges Mountains, Flat 3, 12 High Street
        Pattern("number, words, street word", rf"(?i)\b\d{{1,5}}[a-z]?,?\s+(?:{name}\s+){{0,5}}(?:{suffix})\b\.?", 0.6),
        # Hauptstraße 5a, Löwerstr. 7, Lucasboulevard 7
        Pattern("street word, number", rf"(?i)\b{name}?(?:{suffix})\.?,?\s+{number}", 0.6),
        # 214, avenue Charlotte Gilles; 12 bis rue de la Paix; 7 via Roma
        Pattern("number, street prefix", rf"(?i)\b{number},?\s+(?:{prefix})\.?\s+{name}", 0.6),
        # Calle Mayor, 23; Via Roma 12; Plaza de Teodora Porta 19; Contrada Danilo, 77
        Pattern("street prefix, words, number", rf"(?i)\b(?:{prefix})\.?\s+(?:{name}\s+){{0,5}}{name},?\s+(?:n[º°o.]\s*)?{number}",
                0.6),
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


class _BlankNlpEngine(SpacyNlpEngine):
    """What spaCy's blank English pipeline gives Presidio, without building or running it.

    With no model (``PII_SPACY_MODEL`` unset, the default) the pipeline only tokenises: no entity
    is ever found and every lemma is empty, so nothing a recognizer or the context enhancer reads
    depends on the tokens (Atlas's recognizers read the text; ``SpacyRecognizer`` reads the
    entities; :class:`LemmaContextOnlyWhenLemmatised` returns the results as they are when no
    lemma is set, and Presidio's own enhancer finds no context word among no tokens). Building the
    blank pipeline took about half a CPU second and tokenising a scan's values as much again; the
    artifacts here are the blank pipeline's with no tokens, and every verdict is the same
    (``benchmarks.pii.verdicts`` before and after; ``compliance/tests/test_analyzer_nlp.py`` compares
    the results with the blank pipeline's, value by value). It reports the same supported
    entities as the blank ``SpacyNlpEngine`` (its NER configuration's), so the registry is the same.
    Presidio itself still imports spaCy.
    """

    def __init__(self) -> None:
        super().__init__(models=[{"lang_code": "en", "model_name": "blank"}])
        self._blank = None  # built only if asked about the vocabulary (nothing in Atlas does)

    def load(self) -> None:
        from spacy.tokens import Doc
        from spacy.vocab import Vocab

        self.nlp = {"en": None}
        self._no_tokens = Doc(Vocab(), words=[])

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        self._check(language)
        return self._artifacts(language)

    def process_batch(self, texts, language: str, batch_size: int = 1, n_process: int = 1, as_tuples: bool = False):
        self._check(language)
        for item in texts:
            if as_tuples:
                if not (isinstance(item, tuple) and len(item) == 2):
                    raise ValueError("When 'as_tuples' is True, 'texts' must be a list of tuples (text, context).")
                yield str(item[0]), self._artifacts(language), item[1]
            else:
                yield str(item), self._artifacts(language)

    def _check(self, language: str) -> None:
        if not self.nlp:
            raise ValueError("NLP engine is not loaded. Consider calling .load()")
        if language not in self.nlp:
            raise KeyError(language)  # as the blank pipeline's engine does (``self.nlp[language]``)

    def _artifacts(self, language: str) -> NlpArtifacts:
        return NlpArtifacts(entities=[], tokens=self._no_tokens, tokens_indices=[], lemmas=[], nlp_engine=self,
                            language=language, scores=[])

    def get_nlp(self, language: str):
        self._check(language)
        if self._blank is None:
            import spacy

            self._blank = spacy.blank("en")
        return self._blank

    def is_stopword(self, word: str, language: str) -> bool:
        return self.get_nlp(language).vocab[word].is_stop

    def is_punct(self, word: str, language: str) -> bool:
        return self.get_nlp(language).vocab[word].is_punct


def nlp_engine(model: str) -> SpacyNlpEngine:
    """The NLP engine for ``PII_SPACY_MODEL``: the model's pipeline, or none at all without one."""
    return _OfflineSpacyNlpEngine(model) if model else _BlankNlpEngine()


# Presidio's recognizers Atlas uses (an allowlist: the others are weak number patterns, such as US
# passports and driver licences, that fire on order ids and SKUs).
PRESIDIO_RECOGNIZERS = {
    "EmailRecognizer", "IbanRecognizer", "IpRecognizer", "CreditCardRecognizer", "DateRecognizer", "UrlRecognizer",
    "UsSsnRecognizer", "NhsRecognizer", "UuidRecognizer", "MacAddressRecognizer", "SpacyRecognizer",
}


def _build() -> AnalyzerEngine:
    from .recognizers import (
        CityRecognizer,
        UrlEmailRecognizer,
        national_id_recognizers,
        postcode_recognizer,
    )

    offline_tldextract()
    engine = nlp_engine(settings.PII_SPACY_MODEL)
    engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
    registry.recognizers = [r for r in registry.recognizers if r.name in PRESIDIO_RECOGNIZERS]
    # The default phone regions miss most of Europe; a customer table rarely does.
    registry.add_recognizer(FastPhoneRecognizer(supported_regions=PHONE_REGIONS))
    registry.add_recognizer(NameListRecognizer())
    registry.add_recognizer(street_address_recognizer())
    registry.add_recognizer(postcode_recognizer())
    registry.add_recognizer(CityRecognizer())
    registry.add_recognizer(UrlEmailRecognizer())
    for recognizer in national_id_recognizers():
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(
        registry=registry, nlp_engine=engine, supported_languages=["en"],
        context_aware_enhancer=LemmaContextOnlyWhenLemmatised(),
    )


_engine_lock = threading.Lock()
_engine: AnalyzerEngine | None = None


def analyzer() -> AnalyzerEngine:
    """The process's analyzer, built once even when two threads ask at the same time (the registry
    takes a second or two; ``compliance.scan_tasks.warm_up`` builds it beside an ingest)."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                engine = _build()
                # The name lists and street words the recognizers read on first use: loaded now too.
                name_lists()
                street_words()
                _first_use(engine)
                _engine = engine
    return _engine


# Made-up values (no one's data) that every kind of recognizer Atlas runs has something to look at in.
FIRST_USE_TEXTS = (
    "Anna Schmidt <anna.schmidt@example.de>, https://www.example.co.uk/a?b=1, 12 High Street, 10115 Berlin",
    "+49 30 1234567, (212) 555-0142, 020 7946 0958, 4111 1111 1111 1111, DE89 3704 0044 0532 0130 00, 192.0.2.1",
)


def _first_use(engine: AnalyzerEngine) -> None:
    """Analyse :data:`FIRST_USE_TEXTS` once and throw the results away: what the recognizers load on
    their first use (tldextract's public-suffix trie, about a quarter of a CPU second; phonenumbers'
    region metadata; the patterns' compiled expressions) is loaded here, in the thread that builds the
    analyzer beside an ingest (``scan_tasks.warm_up``), instead of in the main thread's first scan.
    Analysing has no other effect: every later result is what it would have been
    (``compliance/tests/test_analyzer_nlp.py``). A failure here is left to the scan to meet and report."""
    for text in FIRST_USE_TEXTS:
        try:
            engine.analyze(text=text, language="en")
        except Exception:  # the scan that meets it reports it
            logging.getLogger(__name__).warning("The PII analyzer's first use failed.", exc_info=True)
            return


def batch_analyzer() -> BatchAnalyzerEngine:
    return BatchAnalyzerEngine(analyzer_engine=analyzer())
