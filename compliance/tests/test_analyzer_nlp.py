"""The analyzer without a spaCy model runs no spaCy pipeline (issue 20: the demo's first run).

``compliance.analyzer._BlankNlpEngine`` gives Presidio what spaCy's blank English pipeline gave it
(no entity, no lemma) without building or running that pipeline. The reference is the same
registry and enhancer on the blank pipeline itself (``_OfflineSpacyNlpEngine("")``, what Atlas
ran before): every result, value by value, and every verdict, field by field, must be the same.
"""

from __future__ import annotations

import pytest
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

from compliance import analyzer as analyzer_module
from compliance.analyzer import (
    LemmaContextOnlyWhenLemmatised,
    _BlankNlpEngine,
    _OfflineSpacyNlpEngine,
    analyzer,
)
from compliance.detection import classify
from compliance.prefilter import analyze_columns

from .test_prefilter import _corpus

pytestmark = pytest.mark.slow


def _full(results) -> list[tuple]:
    """Everything a result carries that a verdict or a finding could read."""
    return sorted(
        (r.entity_type, r.start, r.end, round(r.score, 9), r.recognition_metadata.get("recognizer_name")) for r in results
    )


def _outcome(engine: AnalyzerEngine, text: str, **kwargs) -> list[tuple] | tuple[str, str]:
    """The results, or the error raised (Presidio's enhancer fails alike on both engines for results
    that carry no explanation, such as the phone recognizer's, when context words are given)."""
    try:
        return _full(engine.analyze(text=text, language="en", **kwargs))
    except Exception as exc:  # noqa: BLE001 - compared, not hidden
        return ("raises", type(exc).__name__)


def _blank_pipeline_analyzer(ours: AnalyzerEngine, enhancer=None) -> AnalyzerEngine:
    nlp = _OfflineSpacyNlpEngine("")
    nlp.load()
    return AnalyzerEngine(registry=ours.registry, nlp_engine=nlp, supported_languages=["en"],
                          context_aware_enhancer=enhancer or LemmaContextOnlyWhenLemmatised())


def test_without_a_model_no_spacy_pipeline_is_built(settings):
    assert settings.PII_SPACY_MODEL == ""
    engine = analyzer().nlp_engine
    assert isinstance(engine, _BlankNlpEngine) and engine.nlp == {"en": None}
    # The same entities as the blank pipeline's engine: the registry (SpacyRecognizer's) is the same.
    reference = _OfflineSpacyNlpEngine("")
    assert sorted(engine.get_supported_entities()) == sorted(reference.get_supported_entities())
    assert isinstance(analyzer_module.nlp_engine("en_core_web_sm"), _OfflineSpacyNlpEngine)


def test_every_result_is_the_blank_pipelines(tmp_path):
    ours = analyzer()
    reference = _blank_pipeline_analyzer(ours)
    presidios = _blank_pipeline_analyzer(ours, LemmaContextAwareEnhancer())
    mine_with_presidios = AnalyzerEngine(registry=ours.registry, nlp_engine=ours.nlp_engine, supported_languages=["en"],
                                         context_aware_enhancer=LemmaContextAwareEnhancer())
    corpus = _corpus(tmp_path)
    values = sorted({v for vs in corpus.values() for v in vs if v})
    assert len(values) > 3000
    found = 0
    for value in values:
        mine = _full(ours.analyze(text=value, language="en"))
        assert mine == _full(reference.analyze(text=value, language="en")), value
        found += bool(mine)
    assert found > 1000  # the comparison saw results, not only empty lists
    # Presidio's own enhancer, and context words given: the same scores either way.
    for value in values[::7]:
        assert _full(mine_with_presidios.analyze(text=value, language="en")) == _full(
            presidios.analyze(text=value, language="en")), value
    outcomes: list = []
    for text in ("Tel 030 1234567", "card 4111 1111 1111 1111", "mail anna.schmidt@example.de", "ssn 078-05-1120"):
        for context in (["tel"], ["phone", "card"], ["email"], ["ssn", "social"]):
            outcomes.append(_outcome(ours, text, context=context))
            assert outcomes[-1] == _outcome(reference, text, context=context), (text, context)
            assert _outcome(mine_with_presidios, text, context=context) == _outcome(
                presidios, text, context=context), (text, context)
    assert sum(outcome[0] != "raises" for outcome in outcomes) >= 4


def test_batches_and_verdicts_are_the_blank_pipelines(tmp_path, monkeypatch):
    ours = analyzer()
    reference = _blank_pipeline_analyzer(ours)
    corpus = _corpus(tmp_path)
    mine = analyze_columns(ours, corpus, ner=False)
    theirs = analyze_columns(reference, corpus, ner=False)
    assert {c: [_full(r) for r in rs] for c, rs in mine.items()} == {c: [_full(r) for r in rs] for c, rs in theirs.items()}
    assert sum(bool(r) for rs in mine.values() for r in rs) > 1000
    verdicts = classify(corpus)
    monkeypatch.setattr(analyzer_module, "_engine", reference)
    expected = classify(corpus)
    assert not verdicts.column_errors and [vars(v) for v in verdicts.verdicts] == [vars(v) for v in expected.verdicts]
    assert len(verdicts.verdicts) > 10


def test_the_engine_refuses_what_the_blank_pipelines_engine_refuses():
    engine = _BlankNlpEngine()
    with pytest.raises(ValueError):
        engine.process_text("Anna", "en")  # not loaded
    engine.load()
    with pytest.raises(KeyError):
        engine.process_text("Anna", "de")
    with pytest.raises(ValueError):
        list(engine.process_batch(["Anna"], "en", as_tuples=True))
    (text, artifacts, context), = engine.process_batch([("Anna", {"row": 1})], "en", as_tuples=True)
    assert (text, context, artifacts.entities, artifacts.lemmas) == ("Anna", {"row": 1}, [], [])
    # Asked about the vocabulary (nothing in Atlas does), it answers as the blank pipeline.
    reference = _OfflineSpacyNlpEngine("")
    reference.load()
    for word in ("the", "Anna", ",", "and"):
        assert engine.is_stopword(word, "en") == reference.is_stopword(word, "en")
        assert engine.is_punct(word, "en") == reference.is_punct(word, "en")
