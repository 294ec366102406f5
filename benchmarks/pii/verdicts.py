"""Every Atlas verdict on the evaluation and blind sets, for comparing two trees field by field:
``PYTHONHASHSEED=0 python -m benchmarks.pii.verdicts OUT.json`` (in each tree), then ``cmp``.

``benchmarks.pii.evaluate`` and ``.blind`` score entities per column; this keeps everything a finding
records (entity, share, mean score, confidence, name evidence, values analysed, the samples kept), so a
change meant to be exact (a faster classification) can be shown to change nothing. The sets' values
come out of sets, so the hash seed must be the same in both runs. Prints the classification's CPU seconds.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("ATLAS_VAR_DIR", str(Path(tempfile.gettempdir()) / "atlas-bench-pii"))


def main() -> None:
    import django

    django.setup()
    from benchmarks.pii import blindset, evalset
    from compliance.analyzer import analyzer
    from compliance.detection import classify

    analyzer()  # built before the clock starts: the comparison is of classification
    out, cpu = {}, 0.0
    for name, tables in (("eval", evalset.build(20261203)), ("blind", blindset.build(1517))):
        for table, columns in tables.items():
            samples = {c: values for c, (values, _) in columns.items()}
            start = time.process_time()
            result = classify(samples)
            cpu += time.process_time() - start
            out[f"{name}.{table}"] = {"verdicts": [asdict(v) for v in result.verdicts], "errors": result.column_errors}
    print(f"classification CPU s: {cpu:.2f}", file=sys.stderr)
    Path(sys.argv[1]).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
