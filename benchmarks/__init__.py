"""Atlas benchmarks: run with ``python -m benchmarks.<name>`` (see README.md); never collected by pytest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def bytecode_env(prefix: Path) -> dict[str, str]:
    """Environment additions for child processes that read and write their bytecode under ``prefix``.

    As an installed image has it (``pip install`` compiles every module): without them, a machine whose
    environment says ``PYTHONDONTWRITEBYTECODE=1`` (this one's does; uv installs without bytecode) makes
    every process compile every module it imports from source, seconds of CPU that no deployed run pays.
    The caller runs an untimed warm-up first, which writes the bytecode; the timed runs read it.
    """
    return {"PYTHONPYCACHEPREFIX": str(prefix), "PYTHONDONTWRITEBYTECODE": ""}


def fresh_postgres(name: str) -> str:
    """Drop and create the PostgreSQL database ``name`` (on ``BENCH_DATABASE_URL``'s server); its URL for Django."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return (PG_ADMIN.rsplit("/", 1)[0] + f"/{name}").replace("postgresql://", "postgres://")


def run_child(module: str, env: dict[str, str]) -> dict:
    """Run ``python -m module`` at the repository root with ``env`` added; the JSON on its last output line."""
    out = subprocess.run([sys.executable, "-m", module], cwd=ROOT, env={**os.environ, **env},
                         capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr[-5000:])
        raise SystemExit(f"{module} failed ({out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_results(area: str, data: Any, lines: list[str]) -> None:
    """``results/<area>.json`` (every figure) and ``results/<area>.md`` (the tables), then the tables printed."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{area}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{area}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
