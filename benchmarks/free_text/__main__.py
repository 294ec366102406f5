"""``python -m benchmarks.free_text``: PII inside free text anonymised, Atlas against Presidio as a user calls it.

The job: every distinct value of a free-text column, its PII (e-mail addresses, phone numbers,
names, cards, IBANs, IPs, SSNs) replaced by its entity type, the mapping returned (what an
``anonymise_text`` policy does before writing it back). Two sets of texts, made here:

- ``demo notes``: the distinct ``notes`` of the demo's customers at ``BENCH_ROWS`` orders
  (``demo.generator``, seeded): mostly harmless text, some with a phone number or an e-mail;
- ``PII-dense corpus``: ``compliance/tests/test_free_text.corpus`` (multi-locale notes that all carry
  PII or a decoy), ``BENCH_CORPUS`` texts.

Three ways, in one process each (a child: the analyzer is built before the clock starts, as a
started worker has it; the children Atlas spawns build their own inside the time):

- ``Presidio``: ``BatchAnalyzerEngine.analyze_iterator`` over every text with every recognizer the
  analyzer has, then ``AnonymizerEngine`` for the free-text entities — what Atlas did before;
- ``Atlas, 1 process``: ``anonymised_texts(processes=1)`` (only the free-text recognizers, and each
  text only those that can match it);
- ``Atlas, N processes``: the same in ``ATLAS_PII_TEXT_PROCESSES`` spawned processes (default: the CPUs).

Every way must return the same mapping (checked). Writes benchmarks/results/free_text.json and .md.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import ROOT, run_child, write_results

WAYS = ("presidio", "atlas_1", "atlas_n")


def child() -> None:
    """One way over one set of texts (``BENCH_WAY``, ``BENCH_TEXTS_FILE``); prints its JSON line."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    import django

    django.setup()
    from django.conf import settings

    from compliance.analyzer import analyzer, batch_analyzer
    from compliance.detection import FREE_TEXT_ENTITIES, FREE_TEXT_MIN_SCORE
    from compliance.free_text import processes_for
    from compliance.policies import anonymised_texts

    texts = json.loads(Path(os.environ["BENCH_TEXTS_FILE"]).read_text(encoding="utf-8"))
    way = os.environ["BENCH_WAY"]
    analyzer()
    processes = 1
    t0, c0 = time.perf_counter(), time.process_time()
    if way == "presidio":
        from presidio_anonymizer import AnonymizerEngine

        anonymizer, mapping = AnonymizerEngine(), []
        for text, results in zip(texts, batch_analyzer().analyze_iterator(texts, language="en", batch_size=256),
                                 strict=True):
            keep = [r for r in results
                    if r.entity_type in FREE_TEXT_ENTITIES and r.score >= FREE_TEXT_MIN_SCORE.get(r.entity_type, 0.5)]
            new = anonymizer.anonymize(text=text, analyzer_results=keep).text if keep else text
            if new != text:
                mapping.append((text, new))
    elif way == "atlas_1":
        mapping = anonymised_texts(texts, processes=1)
    else:
        processes = processes_for(len(texts), processes=settings.ATLAS_PII_TEXT_PROCESSES or os.cpu_count())
        mapping = anonymised_texts(texts, processes=processes)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    digest = hashlib.sha256(json.dumps(mapping).encode()).hexdigest()
    print(json.dumps({"way": way, "wall": round(wall, 3), "parent_cpu": round(cpu, 3), "texts": len(texts),
                      "changed": len(mapping), "processes": processes, "digest": digest}))


def texts_sets(work: str) -> dict[str, str]:
    """The two sets of texts, each written as a JSON list; returns name -> file."""
    import csv

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    import django

    django.setup()
    from compliance.tests.test_free_text import corpus
    from demo.generator import generate

    rows = int(os.environ.get("BENCH_ROWS", "1000000"))
    generate(Path(work) / "demo", rows=rows, seed=42)
    with open(Path(work) / "demo" / "customers.csv", encoding="utf-8", errors="replace", newline="") as f:
        notes = sorted({r["notes"] for r in csv.DictReader(f) if r.get("notes")})
    out = {}
    for name, texts in ((f"demo notes ({rows:,} orders)", notes),
                        ("PII-dense corpus", corpus(int(os.environ.get("BENCH_CORPUS", "20000")), seed=3))):
        path = Path(work) / f"{len(out)}.json"
        path.write_text(json.dumps(texts), encoding="utf-8")
        out[name] = str(path)
    return out


def main() -> None:
    if os.environ.get("BENCH_WAY"):
        child()
        return
    with tempfile.TemporaryDirectory(prefix="atlas-bench-free-text-") as work:
        env = {"ATLAS_VAR_DIR": work, "DEBUG": "true", "DATABASE_URL": f"sqlite:///{work}/atlas.sqlite3",
               "WAREHOUSE_URL": "", "CELERY_BROKER_URL": ""}
        os.environ.update(env)
        sets = texts_sets(work)
        results = []
        for name, path in sets.items():
            row = {"set": name}
            for way in WAYS:
                row[way] = run_child("benchmarks.free_text", {**env, "BENCH_WAY": way, "BENCH_TEXTS_FILE": path})
            if len({row[w]["digest"] for w in WAYS}) != 1:
                raise SystemExit(f"{name}: the ways do not return the same mapping")
            results.append(row)
    data = {"results": results, "cpus": os.cpu_count(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg()}
    write_results("free_text", data, render(data))


def render(data: dict) -> list[str]:
    lines = [
        "# Free-text anonymisation: Atlas against Presidio as a user calls it",
        "",
        f"`python -m benchmarks.free_text` ({data['date']}, {data['cpus']} CPUs, Python {data['python']}, load"
        f" average at the end {data['load_average'][0]:.1f}): every distinct text's PII replaced by its entity type,"
        " the same mapping from every way (checked). Wall seconds, the analyzer built before the clock"
        " (Atlas's children build theirs inside it).",
        "",
        "| texts | distinct | changed | Presidio (every recognizer, every text) | Atlas, 1 process | × Presidio"
        " | Atlas, N processes | × Presidio | × 1 process |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in data["results"]:
        p, one, n = r["presidio"], r["atlas_1"], r["atlas_n"]
        lines.append(f"| {r['set']} | {p['texts']:,} | {p['changed']:,} | {p['wall']:.2f} s | {one['wall']:.2f} s |"
                     f" {p['wall'] / one['wall']:.2f}× | {n['wall']:.2f} s ({n['processes']}) |"
                     f" {p['wall'] / n['wall']:.2f}× | {one['wall'] / n['wall']:.2f}× |")
    return lines


if __name__ == "__main__":
    main()
