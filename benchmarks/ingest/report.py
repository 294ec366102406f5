"""Turn the samples into ``results/ingest.json`` (machine-readable) and ``results/ingest.md`` (a table)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
TARGET = 0.8  # Atlas throughput / floor throughput on PostgreSQL

# contender: (engine, label, the floor it is compared with)
LABELS = {
    "postgres_floor": ("PostgreSQL", "floor: psycopg COPY FROM STDIN, plain table", "postgres_floor"),
    "atlas_postgres": (
        "PostgreSQL",
        "Atlas ingest run (direct COPY fed while scanned, segments dealt to parallel parts; publish)",
        "postgres_floor",
    ),
    "pandas_to_sql": ("PostgreSQL", "pandas read_csv + to_sql(method='multi', chunksize=10k)", "postgres_floor"),
    "postgres_floor_quoted": ("PostgreSQL", "floor, every field quoted: psycopg COPY FROM STDIN", "postgres_floor_quoted"),
    "atlas_postgres_quoted": (
        "PostgreSQL",
        "Atlas ingest run, every field quoted (simple quotes: direct COPY fed while scanned, in parallel parts; publish)",
        "postgres_floor_quoted",
    ),
    "postgres_floor_gzip": ("PostgreSQL", "floor, gzip: `gzip -dc file.csv.gz | COPY FROM STDIN`", "postgres_floor_gzip"),
    "atlas_postgres_gzip": (
        "PostgreSQL",
        "Atlas ingest run, gzip (inflated once by ISA-L, straight into parallel COPY parts while the scan reads it; publish)",
        "postgres_floor_gzip",
    ),
    "duckdb_floor": ("DuckDB", "floor: CREATE TABLE AS SELECT * FROM read_csv(all_varchar)", "duckdb_floor"),
    "atlas_duckdb": ("DuckDB", "Atlas ingest run, embedded (SQLite + DuckDB file)", "duckdb_floor"),
}


def _median_cpu(samples: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(float(s["cpu"].get(key, 0.0)) for s in samples), 3)


def summarise(samples: list[dict[str, Any]], size_bytes: int) -> dict[str, Any]:
    """Median, min and every sample of one contender, with throughputs at the median."""
    seconds = [float(s["seconds"]) for s in samples]
    rows = [int(s["rows"]) for s in samples]
    median = statistics.median(seconds)
    return {
        "median_s": round(median, 4),
        "min_s": round(min(seconds), 4),
        "samples_s": [round(s, 4) for s in seconds],
        "reps": len(samples),
        "rows": rows[0] if len(set(rows)) == 1 else rows,
        "rows_per_s": round(rows[0] / median),
        "mb_per_s": round(size_bytes / median / 1e6, 1),
        "noisy_samples": sum(bool(s.get("noisy")) for s in samples),
        "median_client_cpu_s": _median_cpu(samples, "process_cpu_s"),
        "median_postgres_cpu_s": _median_cpu(samples, "postgres_cpu_s"),
        "median_other_cpu_s": _median_cpu(samples, "other_cpu_s"),
        "samples": samples,
    }


def ratio(numerator_s: float, denominator_s: float) -> float:
    """Throughput of the second over the first, from times on the same rows: t1 / t2."""
    return round(numerator_s / denominator_s, 3)


def ratios(contenders: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    floor, atlas = contenders.get("postgres_floor"), contenders.get("atlas_postgres")
    if floor and atlas:
        out["atlas_vs_floor_postgres"] = ratio(floor["median_s"], atlas["median_s"])
        out["atlas_vs_floor_postgres_best"] = ratio(floor["min_s"], atlas["min_s"])
        out["target"] = TARGET
        out["target_met"] = out["atlas_vs_floor_postgres"] >= TARGET
    gfloor, gatlas = contenders.get("postgres_floor_gzip"), contenders.get("atlas_postgres_gzip")
    if gfloor and gatlas:
        out["atlas_vs_floor_postgres_gzip"] = ratio(gfloor["median_s"], gatlas["median_s"])
        out["atlas_vs_floor_postgres_gzip_best"] = ratio(gfloor["min_s"], gatlas["min_s"])
    qfloor, qatlas = contenders.get("postgres_floor_quoted"), contenders.get("atlas_postgres_quoted")
    if qfloor and qatlas:
        out["atlas_vs_floor_postgres_quoted"] = ratio(qfloor["median_s"], qatlas["median_s"])
        out["atlas_vs_floor_postgres_quoted_best"] = ratio(qfloor["min_s"], qatlas["min_s"])
    pandas = contenders.get("pandas_to_sql")
    if pandas and atlas:
        out["atlas_vs_pandas"] = ratio(pandas["median_s"], atlas["median_s"])
    dfloor, datlas = contenders.get("duckdb_floor"), contenders.get("atlas_duckdb")
    if dfloor and datlas:
        out["atlas_vs_floor_duckdb"] = ratio(dfloor["median_s"], datlas["median_s"])
        out["atlas_vs_floor_duckdb_best"] = ratio(dfloor["min_s"], datlas["min_s"])
    return out


def write(results: dict[str, Any], out_dir: Path = RESULTS_DIR, name: str = "ingest") -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{name}.json", out_dir / f"{name}.md"
    js.write_text(json.dumps(results, indent=2) + "\n")
    md.write_text(markdown(results))
    return js, md


# --- markdown ---------------------------------------------------------------------------
def _figures_table(results: dict[str, Any]) -> list[str]:
    contenders = results["contenders"]
    lines = [
        "| Engine | Contender | Median s | Min s | Reps | Rows loaded | Rows/s (median) | MB/s | × floor"
        " | Client CPU s | PostgreSQL CPU s | Noisy reps |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, (engine, label, floor_key) in LABELS.items():
        c = contenders.get(key)
        if not c:
            continue
        floor = contenders.get(floor_key)
        vs = f"{floor['median_s'] / c['median_s']:.2f}" if floor else "–"
        rows = f"{c['rows']:,}" if isinstance(c["rows"], int) else str(c["rows"])
        reps = f"{c['reps']}" + (" (once: too slow)" if c.get("capped_after_one") else "")
        lines.append(
            f"| {engine} | {label} | {c['median_s']:.2f} | {c['min_s']:.2f} | {reps} | {rows}"
            f" | {c['rows_per_s']:,} | {c['mb_per_s']} | {vs} | {c['median_client_cpu_s']:.2f}"
            f" | {c['median_postgres_cpu_s']:.2f} | {c['noisy_samples']} |"
        )
    return lines


def _ratio_lines(results: dict[str, Any]) -> list[str]:
    r = results["ratios"]
    lines = []
    if "atlas_vs_floor_postgres" in r:
        verdict = "met" if r["target_met"] else "NOT met"
        lines.append(
            f"- **Atlas / floor on PostgreSQL: {r['atlas_vs_floor_postgres']:.2f}×** (medians;"
            f" {r['atlas_vs_floor_postgres_best']:.2f}× on best times). Target ≥ {r['target']}: {verdict}."
        )
    if "atlas_vs_floor_postgres_quoted" in r:
        lines.append(
            f"- Every field quoted (the same rows; simple quotes take the direct path): Atlas / floor"
            f" {r['atlas_vs_floor_postgres_quoted']:.2f}× (medians; {r['atlas_vs_floor_postgres_quoted_best']:.2f}×"
            f" on best times). Target ≥ 0.9: {'met' if r['atlas_vs_floor_postgres_quoted'] >= 0.9 else 'NOT met'}."
        )
    if "atlas_vs_floor_postgres_gzip" in r:
        lines.append(
            f"- gzip (the same rows, `.csv.gz`): Atlas / `gzip -dc | COPY` {r['atlas_vs_floor_postgres_gzip']:.2f}×"
            f" (medians; {r['atlas_vs_floor_postgres_gzip_best']:.2f}× on best times). Target ≥ 0.8:"
            f" {'met' if r['atlas_vs_floor_postgres_gzip'] >= 0.8 else 'NOT met'}."
        )
    if "atlas_vs_pandas" in r:
        lines.append(f"- Atlas on PostgreSQL is **{r['atlas_vs_pandas']:.1f}× faster** than pandas `to_sql`.")
    if "atlas_vs_floor_duckdb" in r:
        lines.append(
            f"- Atlas / floor on DuckDB: {r['atlas_vs_floor_duckdb']:.2f}× (medians;"
            f" {r['atlas_vs_floor_duckdb_best']:.2f}× on best times)."
        )
    rows = results.get("rows_check", {})
    if rows:
        lines.append(f"- Rows loaded: {rows['detail']}.")
    return lines


def _memory_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| Process | File rows | Baseline RSS MiB | Peak RSS MiB (VmHWM) | Peak − baseline | ru_maxrss MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, per_size in results["memory"].items():
        for m in per_size:
            base = m.get("baseline_rss_mib")
            peak = m.get("peak_rss_mib")
            delta = f"{peak - base:.0f}" if base is not None and peak is not None else "–"
            lines.append(
                f"| {key} | {m['rows']:,} | {base if base is not None else '–'} | {peak} | {delta}"
                f" | {m.get('ru_maxrss_mib', '–')} |"
            )
    lines.append("")
    for key, per_size in results["memory"].items():
        if len(per_size) == 2 and per_size[0]["peak_rss_mib"] and per_size[1]["peak_rss_mib"]:
            big, small = per_size
            growth = big["peak_rss_mib"] / small["peak_rss_mib"]
            lines.append(
                f"- {key}: peak RSS at {big['rows']:,} rows is {growth:.2f}× the peak at {small['rows']:,} rows"
                f" ({big['rows'] / small['rows']:.1f}× the rows)."
            )
    return lines


ENGINE_NAMES = {"postgres": "PostgreSQL", "duckdb": "DuckDB"}


def _breakdown_lines(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for engine, b in (results.get("breakdown") or {}).items():
        lines += [
            "",
            f"## Where Atlas's time goes on {ENGINE_NAMES.get(engine, engine)}",
            "",
            "Instrumented real runs (medians; Atlas's functions wrapped in timers at run time):",
            "",
            "| Phase | Seconds |",
            "|---|---:|",
            *[f"| {k} | {v:.3f} |" for k, v in b["phases_median_s"].items()],
        ]
        if b.get("sides"):
            lines += [
                "",
                "The DuckDB path (files with quotes, JSON Lines, Parquet): each side alone, and streamed variants"
                " (medians; staging DDL mirrored from load_file; the instrumented runs above took the direct path):",
                "",
                "| Experiment | Median s | Client CPU s | PostgreSQL CPU s | Noisy samples |",
                "|---|---:|---:|---:|---:|",
            ]
            for k, v in b["sides"].items():
                proc = statistics.median(c["process_cpu_s"] for c in v["cpu"])
                pgcpu = statistics.median(c["postgres_cpu_s"] for c in v["cpu"])
                lines.append(f"| {k} | {v['median_s']:.3f} | {proc:.2f} | {pgcpu:.2f} | {v.get('noisy_samples', 0)} |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    f = results["file"]
    m = results["machine"]
    head = [
        "# Ingest benchmark",
        "",
        f"{results['date']} · `{results['command']}` · {m['cpu_count']} CPUs · PostgreSQL {m['postgres']}"
        f" · DuckDB {results['versions'].get('duckdb')} · Python {m['python']}",
        "",
        *(
            [
                f"Machine load average (1 min) at the start {m['load_average_start'][0]:.1f}, at the end"
                f" {m['load_average_end'][0]:.1f} (5 min: {m['load_average_start'][1]:.1f}, {m['load_average_end'][1]:.1f});"
                " others' work shares the CPUs, so ratios measured under load carry its noise.",
                "",
            ]
            if m.get("load_average_start") and m.get("load_average_end")
            else []
        ),
        f"File: `{f['path_relative']}` — {f['rows']:,} rows, {f['size_bytes'] / 1e6:.1f} MB (the generator's"
        f" orders.csv for rows={f['generator_rows']:,} without its {f['malformed_lines']:,} malformed lines;"
        " every contender loads this clean file).",
        f" {results['reps']} timed repetitions after {results['warmup']} warm-up, floor and Atlas interleaved;"
        " each starts on an empty table after a CHECKPOINT.",
        "",
    ]
    body = [*_figures_table(results), "", *_ratio_lines(results), "", "## Peak memory", "", *_memory_table(results)]
    notes = ["", "## Notes", "", *[f"- {n}" for n in results.get("notes", [])]]
    return "\n".join([*head, *body, *_breakdown_lines(results), *notes]) + "\n"
