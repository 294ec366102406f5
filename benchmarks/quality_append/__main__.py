"""``python -m benchmarks.quality_append``: the quality gate on a 1 % append to a 1M-row table, both engines.

The 20 checks of ``benchmarks.quality`` on ``chart.bench_orders``; 10,000 new orders staged. Compares,
interleaved: the incremental gate (the new rows row by row, the table checks for the table after
publish, with what the previous gate kept), the same with nothing kept (the first append's gate),
a full evaluation of the table after publish, and the staged rows alone (what the gate cost before,
while wrong for table checks). Writes benchmarks/results/quality_append.json and .md.
"""

from __future__ import annotations

import os
import tempfile

from benchmarks import fresh_postgres, run_child, write_results

PG_DB = "atlas_bench_quality_append"


def main() -> None:
    load = [os.getloadavg()[0]]
    results = []
    with tempfile.TemporaryDirectory(prefix="atlas-bench-qa-") as tmp:
        results.append(run_child("benchmarks.quality_append.bench", {
            "ATLAS_VAR_DIR": tmp, "DEBUG": "true", "DATABASE_URL": f"sqlite:///{tmp}/meta.sqlite3",
            "WAREHOUSE_URL": f"duckdb:///{tmp}/wh.duckdb"}))
    load.append(os.getloadavg()[0])
    with tempfile.TemporaryDirectory(prefix="atlas-bench-qa-") as tmp:
        results.append(run_child("benchmarks.quality_append.bench", {
            "ATLAS_VAR_DIR": tmp, "DEBUG": "true", "DATABASE_URL": fresh_postgres(PG_DB), "WAREHOUSE_URL": ""}))
    load.append(os.getloadavg()[0])
    lines = [
        "# The quality gate on a 1 % append: incremental against full",
        "",
        "`python -m benchmarks.quality_append` — the 20 checks of `benchmarks/quality` on a 1,000,000-row",
        "table, 10,000 new rows staged (every check passes). Medians of interleaved runs, wall seconds",
        "(CPU seconds of the Atlas process in brackets: DuckDB runs in it, PostgreSQL in its own server).",
        f"Load average (1 min) before, between and after the engines: {', '.join(f'{x:.1f}' for x in load)}.",
        "",
        "| engine | incremental (kept summary) | incremental, nothing kept (first append) | full, table after publish"
        " | full / incremental | staged rows only (before; wrong) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        m, c = r["medians"], r["cpu_medians"]
        r["full_vs_incremental"] = m["full"] / m["incremental"]
        lines.append(
            f"| {r['engine']} | {m['incremental']:.3f} s ({c['incremental']:.3f}) |"
            f" {m['incremental_nothing_kept']:.3f} s ({c['incremental_nothing_kept']:.3f}) |"
            f" {m['full']:.3f} s ({c['full']:.3f}) | **{r['full_vs_incremental']:.1f}×** |"
            f" {m['staged_only']:.3f} s ({c['staged_only']:.3f}) |"
        )
    lines += [
        "",
        "The first append's gate, once: " + "; ".join(
            f"{r['engine']} {r['first_gate']['wall']:.3f} s ({r['first_gate']['queries']} queries"
            + (", with the btree on each unique check's columns built" if r["engine"] == "postgresql" else "") + ")"
            for r in results) + ".",
        "Warehouse queries per gate: " + "; ".join(
            f"{r['engine']} incremental {r['queries']['incremental']}, full {r['queries']['full']}" for r in results) + ".",
        "",
        "- *incremental*: row checks on the new rows; uniqueness by looking the new keys up in the published",
        "  table (PostgreSQL: a btree on the key columns; DuckDB: a hash join) plus the duplicates the last",
        "  gate kept; row count kept plus new; freshness from the newest value kept and the new rows';",
        "  the custom aggregate in one statement over published UNION ALL new (the one full scan left).",
        "  Its outcomes and table-check figures equal the full evaluation's (asserted before timing).",
        "- *nothing kept*: the published rows' own duplicates and count are counted exactly first.",
        "- *full*: every check over the table after publish (1,010,000 rows), as a replace would check it.",
    ]
    write_results("quality_append", {"load": load, "results": results}, lines)


if __name__ == "__main__":
    main()
