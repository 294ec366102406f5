"""Score PII detection on the labelled evaluation set: ``python -m benchmarks.pii.evaluate``.

Atlas (``compliance.detection.classify``, the values and the column names) and, when the
bench extra is installed, presidio-structured (``PandasAnalysisBuilder`` on the same
values, the same blank spaCy pipeline and Presidio's own recognizers) classify every
column of :mod:`benchmarks.pii.evalset`. Per entity: precision, recall, F1; macro F1
(the mean over the labelled entities); PII-vs-none recall and precision (a column with
personal data found as personal, whatever the entity); and every trap (a column without
personal data) that got a finding. Writes ``benchmarks/results/pii_eval.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("ATLAS_VAR_DIR", str(Path(tempfile.gettempdir()) / "atlas-bench-pii"))

RESULTS = Path(__file__).resolve().parent.parent / "results"


def atlas_predictions(tables: dict) -> dict[tuple[str, str], set[str]]:
    from compliance.detection import classify

    predicted: dict[tuple[str, str], set[str]] = {}
    for table, columns in tables.items():
        result = classify({c: values for c, (values, _) in columns.items()})
        for column in columns:
            predicted[(table, column)] = set()
        for v in result.verdicts:
            predicted[(table, v.column)].add("FREE_TEXT" if v.free_text else v.entity)
    return predicted


def presidio_structured_predictions(tables: dict) -> dict[tuple[str, str], set[str]] | str:
    try:
        import pandas as pd
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_structured import PandasAnalysisBuilder

        from compliance.analyzer import _OfflineSpacyNlpEngine, offline_tldextract
    except ImportError as exc:
        return f"not installed: {exc}"
    offline_tldextract()
    nlp = _OfflineSpacyNlpEngine("")
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    predicted: dict[tuple[str, str], set[str]] = {}
    for table, columns in tables.items():
        df = pd.DataFrame({c: values for c, (values, _) in columns.items()})
        mapping = PandasAnalysisBuilder(analyzer=engine).generate_analysis(df, n=len(df)).entity_mapping
        for column in columns:
            found = mapping.get(column)
            predicted[(table, column)] = {found} if found else set()
    return predicted


def score(tables: dict, predicted: dict[tuple[str, str], set[str]]) -> dict:
    """Column-level scores: per entity, macro F1, PII-vs-none, traps."""
    tp, fp, fn = Counter(), Counter(), Counter()
    pii_cols = found_pii = flagged = flagged_right = 0
    traps, wrong = [], []
    for table, columns in tables.items():
        for column, (_, truth) in columns.items():
            got = predicted[(table, column)]
            for entity in got:
                (tp if entity == truth else fp)[entity] += 1
            if truth and truth not in got:
                fn[truth] += 1
            if got != ({truth} - {None}):
                wrong.append({"column": f"{table}.{column}", "label": truth, "found": sorted(got)})
            if truth:
                pii_cols += 1
                found_pii += bool(got)
            else:
                traps.append({"column": f"{table}.{column}", "found": sorted(got), "ok": not got})
            if got:
                flagged += 1
                flagged_right += truth is not None
    labelled = sorted({t for cols in tables.values() for _, t in cols.values() if t})
    per_entity = {}
    for e in sorted(set(labelled) | set(fp)):
        p = tp[e] / (tp[e] + fp[e]) if tp[e] + fp[e] else 0.0
        r = tp[e] / (tp[e] + fn[e]) if tp[e] + fn[e] else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_entity[e] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4),
                         "tp": tp[e], "fp": fp[e], "fn": fn[e], "labelled": e in labelled}
    macro = sum(per_entity[e]["f1"] for e in labelled) / len(labelled)
    return {
        "per_entity": per_entity,
        "macro_f1": round(macro, 4),
        "pii_vs_none": {"recall": round(found_pii / pii_cols, 4), "precision": round(flagged_right / max(1, flagged), 4),
                        "pii_columns": pii_cols},
        "traps": {"count": len(traps), "false_positives": sum(1 for t in traps if not t["ok"]), "columns": traps},
        "wrong": wrong,
    }


def markdown(results: dict) -> str:
    ds = results["dataset"]
    lines = [f"# PII detection on the labelled evaluation set ({ds['tables']} tables, {ds['locales']} locales, "
             f"{ds['columns']} columns, {ds['traps']} traps; seed {ds['seed']})", ""]
    for tool, r in results["tools"].items():
        if isinstance(r, str):
            lines += [f"## {tool}", "", f"skipped: {r}", ""]
            continue
        lines += [f"## {tool}", "", f"macro F1 **{r['macro_f1']:.3f}**, PII-vs-none recall **{r['pii_vs_none']['recall']:.3f}**"
                  f" (precision {r['pii_vs_none']['precision']:.3f}), traps flagged {r['traps']['false_positives']}"
                  f" of {r['traps']['count']}, {r['seconds']:.1f} s", "",
                  "| entity | precision | recall | F1 | tp | fp | fn |", "|---|---:|---:|---:|---:|---:|---:|"]
        for e, m in r["per_entity"].items():
            mark = "" if m["labelled"] else " (not labelled)"
            lines.append(f"| {e}{mark} | {m['precision']:.2f} | {m['recall']:.2f} | {m['f1']:.2f} | {m['tp']} | {m['fp']} | {m['fn']} |")
        lines += ["", "Wrong columns:", ""]
        lines += [f"- `{w['column']}`: label {w['label']}, found {w['found'] or 'nothing'}" for w in r["wrong"]] or ["- none"]
        lines.append("")
    first = next(r for r in results["tools"].values() if not isinstance(r, str))
    lines += ["## Traps (Atlas)", "", "| column | found |", "|---|---|"]
    lines += [f"| `{t['column']}` | {', '.join(t['found']) or '-'} |" for t in first["traps"]["columns"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    import django

    django.setup()
    from benchmarks.pii.evalset import build

    tables = build(args.seed)
    locales = {t.split("_")[0] for t in tables if t != "export_misc"}
    columns = sum(len(c) for c in tables.values())
    traps = sum(1 for c in tables.values() for _, label in c.values() if label is None)
    results = {"dataset": {"seed": args.seed, "tables": len(tables), "locales": len(locales), "columns": columns,
                           "traps": traps}, "tools": {}}
    for name, fn in (("Atlas", atlas_predictions), ("presidio-structured", presidio_structured_predictions)):
        start = time.perf_counter()
        predicted = fn(tables)
        seconds = time.perf_counter() - start
        results["tools"][name] = predicted if isinstance(predicted, str) else {**score(tables, predicted), "seconds": seconds}
        print(f"{name}: done in {seconds:.1f} s", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pii_eval.json").write_text(json.dumps(results, indent=2) + "\n")
    md = markdown(results)
    (args.out / "pii_eval.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
