"""``python -m benchmarks``: every benchmark, one after the other (``make bench``).

Each area is a package with its own ``__main__`` (``python -m benchmarks.<area>``)
that writes ``benchmarks/results/<area>.md`` and ``.json``; this runs them in
turn, each in its own process (Django settings are per process), and stops at
the first that fails. ``python -m benchmarks quality pii`` runs only those.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def areas() -> list[str]:
    return sorted(p.parent.name for p in HERE.glob("*/__main__.py"))


def main(argv: list[str]) -> int:
    known = areas()
    chosen = argv or known
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    for area in chosen:
        print(f"== benchmarks.{area}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{area}"], cwd=HERE.parent)
        print(f"== benchmarks.{area}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
