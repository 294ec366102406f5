"""Atlas benchmarks: run with ``python -m benchmarks.<name>`` (see README.md); never collected by pytest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(area: str, data: Any, lines: list[str]) -> None:
    """``results/<area>.json`` (every figure) and ``results/<area>.md`` (the tables), then the tables printed."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{area}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{area}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
