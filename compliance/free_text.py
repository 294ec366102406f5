"""PII inside free text replaced by its entity type: Presidio over many distinct texts, on every CPU.

An ``anonymise_text`` policy analyses every distinct value of the column in the Atlas process
(``compliance.policies.anonymise_text_columns``). That is Python, one CPU: at 10M orders the
demo's 500k distinct notes took about 160 s of a 640 s first run on DuckDB. Above
``ATLAS_PII_TEXT_PARALLEL_MIN`` distinct texts the texts are split in order into as many parts as
there are processes (``ATLAS_PII_TEXT_PROCESSES``, default the CPUs, at most 4) and analysed in
child processes, their mappings joined in the same order: the same answer as one process (a test
compares them), in about half the time on two CPUs once each child has built its analyzer (about
2 CPU s, which is why small columns stay in the process).

The children are *spawned*, not forked: the parent is a worker with threads (its pool, the
heartbeat, DuckDB's), and a fork copies their locks in whatever state they are. A child loads no
Django app and opens no connection: it configures the one setting the analyzer reads
(``PII_SPACY_MODEL``, the parent's) and gets everything else as arguments, so nothing it does
depends on the parent's environment or touches the warehouse or the metadata.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

# Most children ever started for one column; two CPUs gain most of what there is to gain.
MAX_PROCESSES = 4


def anonymised(texts: Sequence[str], wanted: Iterable[str], keep: Iterable[str], min_scores: dict[str, float], *,
               prefilter: bool, ner: bool) -> list[tuple[str, str]]:
    """``(text, anonymised)`` for each text that changes, in order (see ``policies.anonymised_texts``).

    ``wanted``: the entities the recognizers are asked for; ``keep``: the entity types replaced, each
    from its score in ``min_scores`` (0.5 otherwise); ``prefilter``: each text meets only the
    recognizers that can match it (``compliance.prefilter``).
    """
    from presidio_anonymizer import AnonymizerEngine

    from .analyzer import batch_analyzer
    from .prefilter import analyze_values

    wanted, keep = sorted(set(wanted)), frozenset(keep)
    engine = batch_analyzer()
    if prefilter:
        analysed = analyze_values(engine.analyzer_engine, texts, wanted, ner=ner)
    else:
        analysed = engine.analyze_iterator(list(texts), language="en", batch_size=256, entities=wanted)
    anonymizer = AnonymizerEngine()
    mapping = []
    for text, results in zip(texts, analysed, strict=True):
        found = [r for r in results if r.entity_type in keep and r.score >= min_scores.get(r.entity_type, 0.5)]
        if found:
            new = anonymizer.anonymize(text=text, analyzer_results=found).text
            if new != text:
                mapping.append((text, new))
    return mapping


def processes_for(count: int, *, processes: int | None = None) -> int:
    """How many processes analyse ``count`` texts: ``processes`` when given, else 1 below the threshold and the
    setting (the CPUs) above it; never more than :data:`MAX_PROCESSES`, nor than there are texts."""
    from django.conf import settings

    if processes is None:
        if count < settings.ATLAS_PII_TEXT_PARALLEL_MIN:
            return 1
        processes = settings.ATLAS_PII_TEXT_PROCESSES or (os.cpu_count() or 1)
    return max(1, min(processes, MAX_PROCESSES, count))


def anonymised_in_processes(texts: Sequence[str], processes: int, **options) -> list[tuple[str, str]]:
    """:func:`anonymised` over ``texts`` split in order into ``processes`` parts, each in a spawned child."""
    from django.conf import settings

    size = -(-len(texts) // processes)
    parts = [list(texts[i : i + size]) for i in range(0, len(texts), size)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(parts), mp_context=context, initializer=_start_child,
                             initargs=(settings.PII_SPACY_MODEL,)) as pool:
        done = pool.map(_child_part, [(part, options) for part in parts])
        return [pair for mapping in done for pair in mapping]


def _start_child(spacy_model: str) -> None:
    """A child's start: the analyzer's one setting, then the analyzer, before its part arrives."""
    from django.conf import settings

    if not settings.configured:
        settings.configure(PII_SPACY_MODEL=spacy_model)
    from .analyzer import analyzer

    analyzer()


def _child_part(job: tuple[list[str], dict]) -> list[tuple[str, str]]:
    texts, options = job
    return anonymised(texts, **options)
