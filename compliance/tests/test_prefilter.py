"""Fast scans (issue 20, item 3): each value meets only the recognizers that can match it.

The phone recognizer was most of a scan's time, run on ids, dates and timestamps that can
never be phone numbers. The reference is Presidio's full analysis (every recognizer, every
value: ``classify(prefilter=False)``); the prefiltered scan must find exactly the same,
value by value and column by column, on the labelled evaluation set of
:mod:`benchmarks.pii.evalset` and on the demo's customers.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from benchmarks.pii.evalset import build
from compliance.analyzer import FastPhoneRecognizer, analyzer
from compliance.detection import MAX_VALUE_CHARS, NUMERIC_OK, classify
from compliance.prefilter import _ISO_DATE, analyze_columns, column_entities, value_entities
from demo.generator import generate

pytestmark = pytest.mark.slow


def _key(results) -> list[tuple]:
    return sorted((r.entity_type, r.start, r.end, round(r.score, 9)) for r in results)


def _corpus(tmp_path: Path) -> dict[str, list[str]]:
    """Every column of the evaluation set (30 rows a table) and the demo's customers (300 rows)."""
    columns: dict[str, list[str]] = {}
    for table, cols in build(seed=20, rows=30).items():
        for column, (values, _) in cols.items():
            columns[f"{table}.{column}"] = [str(v).strip()[:MAX_VALUE_CHARS] for v in values]
    files = generate(tmp_path, rows=300, seed=3)
    with open(files.customers, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if None not in r.values()]
    for column in rows[0]:
        columns[f"demo.{column}"] = [r[column].strip() for r in rows if r[column] is not None]
    return columns


def test_the_phone_recognizer_runs_only_on_values_that_can_be_phones(monkeypatch):
    analyzer()  # built (and its first-use texts analysed) before counting: alone in its process, the test built it below
    calls: list[str] = []
    original = FastPhoneRecognizer.analyze

    def counted(self, text, entities, nlp_artifacts=None):
        calls.append(text)
        return original(self, text, entities, nlp_artifacts)

    monkeypatch.setattr(FastPhoneRecognizer, "analyze", counted)
    samples = {
        "customer_id": [str(1000 + i) for i in range(20)],
        "birth_date": [f"19{50 + i}-0{1 + i % 9}-1{i % 9}" for i in range(20)],
        "signup_at": [f"2023-0{1 + i % 9}-1{i % 9}T10:2{i % 9}:00" for i in range(20)],
        "email": [f"person{i}@example.org" for i in range(20)],
        "phone": [f"+49 30 {1234500 + i * 7}" for i in range(20)],
    }
    verdicts = {v.column: v.entity for v in classify(samples).verdicts}
    assert verdicts["phone"] == "PHONE_NUMBER" and verdicts["email"] == "EMAIL_ADDRESS"
    assert sorted(calls) == sorted(samples["phone"])  # not one id, date, timestamp or e-mail
    assert verdicts == {v.column: v.entity for v in classify(samples, prefilter=False).verdicts}


def test_each_value_is_found_exactly_as_by_every_recognizer(tmp_path):
    """Value by value, the character tests leave out only recognizers that find nothing; the one
    decision is that an ISO date or timestamp holds no phone number (phonenumbers reads the
    microseconds of ``2022-05-10 15:03:53.139551`` as one)."""
    engine = analyzer()
    supported = engine.get_supported_entities(language="en")
    corpus = _corpus(tmp_path)
    values = sorted({v for vs in corpus.values() for v in vs if v})
    assert len(values) > 3000
    skipped = 0
    for value in values:
        full = _key(engine.analyze(text=value, language="en"))
        if _ISO_DATE.match(value):
            full = [r for r in full if r[0] != "PHONE_NUMBER"]
        entities = value_entities(value, supported)
        skipped += len(supported) - len(entities)
        fast = _key(engine.analyze(text=value, language="en", entities=entities)) if entities else []
        assert fast == full, value
    assert skipped > len(values) * len(supported) / 2  # most recognizers are left out of most values


def test_every_column_gets_the_same_verdict_as_the_full_analysis(tmp_path):
    corpus = _corpus(tmp_path)
    fast = classify(corpus)
    reference = classify(corpus, prefilter=False)
    assert not fast.column_errors and not reference.column_errors
    assert [vars(v) for v in fast.verdicts] == [vars(v) for v in reference.verdicts]
    found = {v.column.split(".", 1)[0] for v in fast.verdicts}
    assert {"demo", "uk_customers", "de_kunden"} <= found


def test_a_column_narrows_what_its_values_are_analysed_for():
    supported = analyzer().get_supported_entities(language="en")
    assert column_entities("email_opt_in", ["true", "false", "yes"], supported) == frozenset()
    ids = column_entities("order_id", ["1042", "1043", "99"], supported)
    assert ids == frozenset(NUMERIC_OK) & set(supported)
    postcodes = column_entities("postcode", ["80331", "10115"], supported)
    assert {"POSTCODE", "LOCATION"} <= postcodes and "PHONE_NUMBER" not in postcodes
    assert column_entities("customer_name", ["1", "2"], supported) >= {"PERSON", "STREET_ADDRESS", "LOCATION"}
    phones = column_entities("phone", ["+49 30 1234567", "0301234567"], supported)  # not all plain numbers
    assert {"PHONE_NUMBER", "PERSON", "EMAIL_ADDRESS", "CREDIT_CARD"} <= phones
    # What the verdict reads as nothing is not looked for, unless the column's name gives it a meaning.
    assert not {"URL", "DATE_TIME", "UUID"} & phones
    assert "URL" in column_entities("referrer", ["https://example.com/a"], supported)
    assert "DATE_TIME" in column_entities("birth_date", ["04.03.1987"], supported)
    assert column_entities("anything", [], supported) == frozenset()


def test_the_character_tests():
    supported = analyzer().get_supported_entities(language="en")
    assert "PHONE_NUMBER" not in value_entities("1957-09-04", supported)
    assert "PHONE_NUMBER" not in value_entities("2022-12-26T15:01:55", supported)
    assert "PHONE_NUMBER" in value_entities("+33 1 23 45 67 89", supported)
    assert "PHONE_NUMBER" not in value_entities("ext 12", supported)
    email = value_entities("anna.schmidt@example.de", supported)
    assert "EMAIL_ADDRESS" in email and "URL" in email and "CREDIT_CARD" not in email and "PERSON" not in email
    assert "PERSON" in value_entities("Anna Schmidt", supported)
    assert value_entities("   ", supported) == []
    # A spaCy model (PII_SPACY_MODEL) may find names in lower case: its entities are always kept.
    assert "PERSON" in value_entities("anna schmidt", supported, ner=True)


def test_values_needing_no_recognizer_are_not_analysed():
    engine = analyzer()
    out = analyze_columns(engine, {"flag": ["true", "false"], "blank": ["", " "], "name": ["Anna Schmidt"]}, ner=False)
    assert out["flag"] == [[], []] and out["blank"] == [[], []]
    assert [r.entity_type for r in out["name"][0]] == ["PERSON"]


def test_skipping_the_context_enhancer_without_lemmas_changes_no_score(tmp_path):
    """The blank spaCy pipeline has no lemmatizer: Presidio's context enhancer can raise no score, so
    Atlas skips it (``LemmaContextOnlyWhenLemmatised``). Value by value, the results are those of the
    same analyzer with Presidio's own enhancer."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    ours = analyzer()
    presidios = AnalyzerEngine(registry=ours.registry, nlp_engine=ours.nlp_engine, supported_languages=["en"],
                               context_aware_enhancer=LemmaContextAwareEnhancer())
    corpus = _corpus(tmp_path)
    values = sorted({v for vs in corpus.values() for v in vs if v})
    assert len(values) > 3000
    found = 0
    for value in values:
        mine = _key(ours.analyze(text=value, language="en"))
        assert mine == _key(presidios.analyze(text=value, language="en")), value
        found += bool(mine)
    assert found > 1000  # the comparison saw results, not only empty lists
    # With context words given, Presidio's enhancer runs and raises what it finds beside them.
    boosted = ours.analyze(text="Tel 030 1234567", language="en", context=["tel"])
    assert boosted and max(r.score for r in boosted) == max(
        r.score for r in presidios.analyze(text="Tel 030 1234567", language="en", context=["tel"]))
