"""Score Atlas's PII detection on the blind set: ``python -m benchmarks.pii.blind``.

The set (:mod:`benchmarks.pii.blindset`) was written apart from the detectors and from the
first set; the scoring is :mod:`benchmarks.pii.evaluate`'s (per entity, macro F1,
PII-vs-none, traps). Writes ``benchmarks/results/pii_blind.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.pii.evaluate import RESULTS, atlas_predictions, markdown, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1517)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tag", default="", help="results file suffix (e.g. before) for a comparison")
    args = parser.parse_args()
    import django

    django.setup()
    from benchmarks.pii.blindset import LOCALES, build

    tables = build(args.seed)
    columns = sum(len(c) for c in tables.values())
    traps = sum(1 for c in tables.values() for _, label in c.values() if label is None)
    results = {"dataset": {"seed": args.seed, "tables": len(tables), "locales": len(LOCALES), "columns": columns,
                           "traps": traps, "set": "blind (benchmarks/pii/blindset.py)"}, "tools": {}}
    start = time.perf_counter()
    predicted = atlas_predictions(tables)
    results["tools"]["Atlas"] = {**score(tables, predicted), "seconds": time.perf_counter() - start}
    print(f"Atlas: done in {results['tools']['Atlas']['seconds']:.1f} s", file=sys.stderr)
    name = "pii_blind" + (f"_{args.tag}" if args.tag else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    md = markdown(results).replace("on the labelled evaluation set", "on the blind evaluation set", 1)
    (args.out / f"{name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
