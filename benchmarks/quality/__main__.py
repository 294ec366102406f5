"""``python -m benchmarks.quality``: 20 checks over a 1M-row table on DuckDB and PostgreSQL.

Compares, in the same run: one query per check (how dbt runs tests), the best
hand-written single statement (the floor), and Atlas end to end (compile, one
scan, results recorded). Writes benchmarks/results/quality.json and .md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from benchmarks import write_results
from benchmarks.quality import anchors

ROOT = Path(__file__).resolve().parents[2]
PG_DB = "atlas_bench_quality"


def child(env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.quality.bench"], cwd=ROOT, env={**os.environ, **env},
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_anchors(work: Path, pg_env: dict, atlas_pg: dict) -> dict:
    """Soda Core, dbt test, Great Expectations and Atlas's command on the PostgreSQL table, interleaved."""
    runs = anchors.contenders(work, PG_DB, atlas_pg["rows"], pg_env)
    for name, run in runs.items():  # warm up (writes each tool's bytecode), and every tool must pass all 20 checks
        _, _, facts = run(bytecode=True)
        if facts.get("error") or facts.get("failed"):
            raise SystemExit(f"{name} did not pass the checks: {facts}")
    # BENCH_FROM_SOURCE=0 skips the processes that compile every module (the slow half of this part)
    from_source = os.environ.get("BENCH_FROM_SOURCE", "1") != "0"
    whole: dict[str, list[float]] = {name: [] for name in runs}
    source: dict[str, list[float]] = {name: [] for name in runs}
    execution: dict[str, list[float]] = {name: [] for name in runs}
    checks: dict[str, int] = {}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(int(os.environ.get("BENCH_REPEAT", "5"))):
        for name, run in runs.items():
            used = _children_cpu()
            wall, exe, facts = run(bytecode=True)
            cpu[name].append(_children_cpu() - used)
            whole[name].append(wall)
            if exe is not None:
                execution[name].append(exe)
            checks[name] = facts.get("checks")
            if from_source:
                source[name].append(run(bytecode=False)[0])
    execution["atlas_command"] = atlas_pg["runs"]["atlas"]  # run_checks in process: compile, one scan, results stored
    medians = {
        name: {"whole_process": statistics.median(whole[name]), "check_execution": statistics.median(execution[name]),
               "whole_process_from_source": statistics.median(source[name]) if source[name] else None,
               "process_cpu": statistics.median(cpu[name])}
        for name in runs
    }
    return {"medians": medians, "whole_process": whole, "whole_process_from_source": source, "process_cpu": cpu,
            "check_execution": execution, "checks": checks,
            "versions": {"soda-core-postgres / great_expectations": anchors.PINS, "dbt": dbt_version()}}


def _children_cpu() -> float:
    """CPU seconds of the waited-for child processes so far (the tool's own process; not the database's)."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def per_round(tools: dict, key: str, name: str) -> list[float]:
    """``name``'s time over Atlas's, round by round: the tools run one after another in each round, so a
    swing of the machine's load hits the tools of a round alike, and the ratios vary less than the times."""
    return [t / a for t, a in zip(tools[key][name], tools[key]["atlas_command"], strict=False) if a]


def dbt_version() -> str:
    from importlib.metadata import version

    return f"dbt-core {version('dbt-core')}, dbt-postgres {version('dbt-postgres')}"


def main() -> None:
    results = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="atlas-bench-quality-") as tmp:
        results.append(child({"ATLAS_VAR_DIR": tmp, "DEBUG": "true", "DATABASE_URL": f"sqlite:///{tmp}/meta.sqlite3",
                              "WAREHOUSE_URL": f"duckdb:///{tmp}/wh.duckdb"}))
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    with tempfile.TemporaryDirectory(prefix="atlas-bench-quality-") as tmp:
        pg_env = {"ATLAS_VAR_DIR": tmp, "DEBUG": "true",
                  "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{PG_DB}", "WAREHOUSE_URL": ""}
        results.append(child(pg_env))
        tools = measure_anchors(Path(tmp), pg_env, results[-1])
    lines = [
        "# Quality checks: 20 checks of mixed types over one table",
        "",
        *anchor_lines(tools, results[-1]["rows"]),
        "",
        "`python -m benchmarks.quality` — medians of the runs (interleaved); ratios against the floor,",
        "the fastest hand-written single statement of the run.",
        "",
        "| engine | rows | one query per check (dbt style) | floor (hand-written) | Atlas end to end | Atlas / floor"
        " | per-check / Atlas |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        m = r["medians"]
        r["ratios"] = {"atlas_vs_floor": m["atlas"] / m["floor"], "per_check_vs_atlas": m["one_query_per_check"] / m["atlas"]}
        lines.append(
            f"| {r['engine']} | {r['rows']:,} | {m['one_query_per_check']:.3f} s | {m['floor']:.3f} s ({r['floor']})"
            f" | {m['atlas']:.3f} s | {r['ratios']['atlas_vs_floor']:.2f}× | {r['ratios']['per_check_vs_atlas']:.2f}× |"
        )
    lines += [
        "",
        "Floor candidates (hand-written, same run):",
        "",
        *[
            f"- {r['engine']}: " + ", ".join(f"`{k[6:]}` {v:.3f} s" for k, v in r["medians"].items() if k.startswith("floor_"))
            for r in results
        ],
        "",
        "- *one query per check*: the SQL of dbt's generic tests (not_null, unique, accepted_values, relationships)",
        "  and of dbt_utils / dbt_expectations (accepted_range, regex, length, expression_is_true), one query each.",
        "- *floor `joins`*: one statement, uniqueness by hash `GROUP BY … HAVING count(*) > 1`, the foreign key by",
        "  a LEFT JOIN. *floor `subqueries`*: uniqueness as surplus rows (`count(k) - count(DISTINCT k)`; on",
        "  PostgreSQL two key columns as one `\"C\"`-collated text key), the foreign key as an anti-join",
        "  subquery (`LEFT JOIN … WHERE key IS NULL`), null counts as `count(*) - count(col)`.",
        "- *floor `bitmaps`* (DuckDB): written knowing the data — the integer key's uniqueness as",
        "  `count(k) - bit_count(bitstring_agg(k, 1, N))` (one bit per possible value, no hash table), two key",
        "  columns as `count(DISTINCT hash(a, b))`, the foreign key as a probe of a bitmap of the referenced",
        "  keys (`get_bit`) in the scan itself.",
        "- *Atlas end to end*: compiling the checks, the one statement, and storing 20 results with the run",
        "  record (`quality.service.run_checks`). On PostgreSQL Atlas compiles the `subqueries` strategy; on",
        "  DuckDB the `bitmaps` one where it is cheaper, reading the integer keys' ranges when compiling (a bitmap",
        "  spans at most 8 bits per key; sparser keys are hashed), with guards that keep the counts exact if a",
        "  table changes between compiling and counting. A failing uniqueness check then pays one more query for",
        "  its exact failing-row count, and samples are fetched only for failing checks.",
        "- The table is written in random order (a key-sorted table would flatter sort-based strategies).",
        "  Server settings are the defaults (PostgreSQL: work_mem 4MB, JIT on, 2 parallel workers per gather);"
        " Atlas's side-by-side statements set their own work_mem (`ATLAS_QUALITY_SCAN_WORK_MEM`, 64MB).",
        f"- Machine: {os.cpu_count()} CPUs; load average (1 min) {load_before:.1f} at the start,"
        f" {os.getloadavg()[0]:.1f} at the end (a busy machine makes every figure noisy; see `runs` in the JSON).",
    ]
    write_results("quality", {"engines": results, "tools_on_postgresql": tools}, lines)


def anchor_lines(tools: dict, rows: int) -> list[str]:
    m = tools["medians"]
    atlas = m["atlas_command"]
    names = {"atlas_command": "Atlas (`manage.py check_quality`)", "soda_core": "Soda Core (`Scan.execute`, as `soda scan`)",
             "dbt_test": "`dbt test` (threads 4)", "great_expectations": "Great Expectations (`validate`)"}
    lines = [
        f"## Against the tools users pick instead (PostgreSQL, {rows:,} rows, the same 20 checks)",
        "",
        "| tool | check execution | × Atlas | whole process | × Atlas | whole process, compiling from source | × Atlas |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, label in names.items():
        src, src_atlas = m[name].get("whole_process_from_source"), atlas.get("whole_process_from_source")
        lines.append(
            f"| {label} | {m[name]['check_execution']:.2f} s | {m[name]['check_execution'] / atlas['check_execution']:.2f}×"
            f" | {m[name]['whole_process']:.2f} s | {m[name]['whole_process'] / atlas['whole_process']:.2f}×"
            + (f" | {src:.2f} s | {src / src_atlas:.2f}× |" if src and src_atlas else " | not run | |")
        )
    rounds = {name: per_round(tools, "whole_process", name) for name in names if name != "atlas_command"}
    lines += [
        "",
        "Whole process, round by round (× Atlas in each interleaved round; median): " + "; ".join(
            f"{names[name].split(' (')[0]} {', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f}×)"
            for name, ratios in rounds.items() if ratios) + ".",
    ]
    if all(m[name].get("process_cpu") for name in names):
        lines.append("The tool's own process CPU (median; the database's work not included): " + "; ".join(
            f"{names[name].split(' (')[0]} {m[name]['process_cpu']:.2f} s" for name in names) + ".")
    lines += [
        "",
        "*check execution*: what the tool reports for running its checks (dbt: `run_results.json` elapsed_time;",
        "Soda: `Scan.execute()`; GX: `validate()`; Atlas: `quality.service.run_checks`), connection included.",
        "*whole process*: a fresh process, start to exit, as a scheduler runs it, with each tool's bytecode compiled",
        "as an installed image has it (`pip install` compiles every module; here the untimed warm-up run writes it",
        "into a private `PYTHONPYCACHEPREFIX`). *compiling from source*: the same processes with no bytecode, every",
        "module compiled in every process, as in this development environment (`PYTHONDONTWRITEBYTECODE=1`, uv",
        "installs without bytecode; the figures before 2026-12-04 evening were taken this way). Both apply to every",
        "tool alike. × Atlas > 1 means Atlas is faster.",
        "Every tool passes all its checks on the table. Versions: " + "; ".join(
            f"{k}: {v if isinstance(v, str) else ', '.join(v)}" for k, v in tools["versions"].items()) + ".",
        "",
        "## Against the floor",
        "",
    ]
    return lines


if __name__ == "__main__":
    main()
