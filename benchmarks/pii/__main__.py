"""PII benchmark: ``python -m benchmarks.pii [--rows N] [--reps R]``.

1. Classify a ``--rows``-row, 12-column customer table (the demo generator's
   customers, repeated to size) on DuckDB: Atlas (sample in the warehouse,
   BatchAnalyzerEngine, column-name and name-list evidence) against
   presidio-structured's PandasAnalysisBuilder given the same number of rows,
   both scored against the labels.
2. Apply hash + mask + generalise to the table on each engine: Atlas's refine
   rewrite (``compliance.policies.protect_select``) against the same expressions
   hand-written in one statement (the floor) and a plain copy.

Writes ``benchmarks/results/pii.json`` and ``pii.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("ATLAS_VAR_DIR", str(Path(tempfile.gettempdir()) / "atlas-bench-pii"))
os.environ.setdefault("PII_HASH_KEY", "benchmark-only-pii-key-not-a-secret")  # no development-key warnings

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from atlas.warehouse.duckdb import DuckDBWarehouse  # noqa: E402
from atlas.warehouse.postgresql import PostgresWarehouse  # noqa: E402
from benchmarks.ingest.pg import ensure_database  # noqa: E402
from compliance.detection import classify, classify_columns  # noqa: E402
from compliance.models import ColumnPolicy  # noqa: E402
from compliance.policies import hash_key, policy_sql  # noqa: E402
from demo.generator import CUSTOMERS_COLUMNS, generate  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "results"
DATA = Path(__file__).resolve().parent.parent / "data" / "pii"
LABELS = {
    "customer_id": None, "first_name": "PERSON", "last_name": "PERSON", "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER", "street_address": "STREET_ADDRESS", "city": "LOCATION", "postcode": "POSTCODE",
    "country": None, "birth_date": "DATE_OF_BIRTH", "signup_at": None, "notes": "FREE_TEXT",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build_table(wh, rows: int) -> None:
    """chart.customers_bench: the generator's customers, repeated to ``rows`` (all text, like Explore)."""
    DATA.mkdir(parents=True, exist_ok=True)
    files = generate(DATA, rows=min(300_000, rows // 3 * 3 or 3000), seed=7)
    cols = ", ".join(f'"{c}"' for c in CUSTOMERS_COLUMNS)
    wh.ensure_schemas()
    # The benchmark's own DuckDB (Atlas's warehouse reads files only inside its allowed directories),
    # writing the big file where the warehouse may read it: VAR_DIR/tmp.
    import duckdb

    csv_path = Path(settings.VAR_DIR) / "tmp" / "bench-pii" / "big.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(":memory:") as cur:
        cur.execute(
            f"CREATE TABLE base AS SELECT {cols} FROM read_csv({wh.literal(str(files.customers))},"
            " all_varchar=true, ignore_errors=true, header=true)"
        )
        base = cur.execute("SELECT count(*) FROM base").fetchone()[0]
        reps = -(-rows // base)
        cur.execute(
            f"CREATE TABLE big AS SELECT {cols} FROM base CROSS JOIN range({reps}) AS r(i) LIMIT {int(rows)}"
        )
        cur.execute(f"COPY big TO {wh.literal(str(csv_path))} (HEADER false)")
    wh.drop_table("chart", "customers_bench")
    with wh.cursor() as cur:
        cur.execute(f"CREATE TABLE chart.customers_bench ({', '.join(f'{c} text' for c in cols.split(', '))})")
    if wh.vendor == "duckdb":
        with wh.cursor() as cur:
            cur.execute(f"COPY chart.customers_bench FROM {wh.literal(str(csv_path))} (FORMAT csv, HEADER false)")
        return
    conn = wh._conn()
    copy_sql = f"COPY chart.customers_bench ({cols}) FROM STDIN (FORMAT csv)"
    with conn.cursor() as cur, cur.copy(copy_sql) as copy, open(csv_path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            copy.write(chunk)
    with wh.cursor() as cur:
        cur.execute("ANALYZE chart.customers_bench")


def score(predicted: dict[str, str | None]) -> dict:
    right = sum(1 for c, truth in LABELS.items() if predicted.get(c) == truth)
    return {"correct_columns": right, "columns": len(LABELS), "answers": predicted}


def bench_classify(wh, sample: int, reps: int) -> dict:
    columns = list(CUSTOMERS_COLUMNS)
    # Atlas as it scans (prefiltered: each value meets only the recognizers that can match it) and,
    # interleaved, every recognizer on every value (the scan before issue 20): same samples, same verdicts.
    variants = {"atlas": True, "atlas, every recognizer on every value": False}
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}  # this process's CPU s (DuckDB's threads too)
    preds: dict[str, dict] = {}
    classify_columns({"warm": ["a@example.org"]})  # the analyzer is built once per process, outside the timing
    for _ in range(reps):
        for name, prefilter in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            samples = wh.sample_distinct("chart", "customers_bench", columns, limit=sample,
                                         scan_rows=settings.PII_SCAN_ROWS)
            verdicts = classify(samples, prefilter=prefilter).verdicts
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            preds[name] = {v.column: "FREE_TEXT" if v.free_text else v.entity for v in verdicts}
    assert preds["atlas"] == preds["atlas, every recognizer on every value"], preds
    result = {name: {"seconds": times[name], "median": statistics.median(times[name]), "cpu_seconds": cpu[name],
                     "median_cpu": statistics.median(cpu[name]), **score(preds[name])}
              for name in variants}
    try:
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_structured import PandasAnalysisBuilder

        from compliance.analyzer import _OfflineSpacyNlpEngine, offline_tldextract
    except ImportError as exc:
        result["presidio_structured"] = {"skipped": f"not installed: {exc}"}
        return result
    offline_tldextract()
    nlp = _OfflineSpacyNlpEngine("")
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    assert spacy  # the blank pipeline above is spaCy's
    with wh.cursor() as cur:
        cur.execute(f"SELECT * FROM chart.customers_bench USING SAMPLE {int(sample)} ROWS"
                    if wh.vendor == "duckdb" else
                    f"SELECT * FROM chart.customers_bench ORDER BY random() LIMIT {int(sample)}")
        import pandas as pd

        df = pd.DataFrame(cur.fetchall(), columns=cur.column_names)
    times, cpu_times, pred = [], [], {}
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        analysis = PandasAnalysisBuilder(analyzer=engine).generate_analysis(df, n=sample)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - start_cpu)
        pred = dict(analysis.entity_mapping)
    result["presidio_structured"] = {"seconds": times, "median": statistics.median(times), "cpu_seconds": cpu_times,
                                     "median_cpu": statistics.median(cpu_times), **score(pred),
                                     "note": "same rows sampled once, outside the timing"}
    return result


FLOOR = "floor (best hand-written statement)"
ATLAS = "Atlas refine rewrite"


def hand_written_hmac(wh, column: str, key, implementation: str) -> str:
    """HMAC-SHA256 of ``column`` as a person writes it in one statement: the key as a literal."""
    block_key = bytes(b ^ 0x36 for b in key.ipad)
    if wh.vendor == "duckdb":  # no hmac(): the construction over DuckDB's sha256 (hex text)
        return (f"sha256(unhex('{key.opad.hex()}') || unhex(sha256(unhex('{key.ipad.hex()}')"
                f" || encode(CAST({column} AS VARCHAR)))))")
    data = f"convert_to({column}, 'UTF8')"
    if implementation == "pgcrypto":
        return f"encode(hmac({data}, '\\x{block_key.hex()}'::bytea, 'sha256'), 'hex')"
    return (f"encode(sha256('\\x{key.opad.hex()}'::bytea || sha256('\\x{key.ipad.hex()}'::bytea || {data})),"
            " 'hex')")


def bench_policies(wh, reps: int) -> dict:
    """hash + mask + generalise over the table: Atlas's rewrite against hand-written statements.

    Every contender is a ``CREATE TABLE ... AS SELECT`` of the same table, run
    interleaved; the floor is the fastest hand-written variant of this run.
    """
    from pipelines.models import Dataset

    ds, _ = Dataset.objects.get_or_create(layer="chart", table="customers_protected",
                                          defaults={"name": "bench_customers_protected"})
    ColumnPolicy.objects.filter(dataset=ds).delete()
    specs = {"email": ("hash", {}), "phone": ("mask", {"keep_last": 4}), "postcode": ("generalise", {"to": "prefix"})}
    for column, (action, options) in specs.items():
        ColumnPolicy.objects.create(dataset=ds, column=column, action=action, options=options)
    key = hash_key()
    from compliance.policies import apply_hash_policies, hashed_columns, protect_select

    select = "SELECT * FROM chart.customers_bench"
    # Atlas's refine: the rewrite (mask, generalise) runs as the operator role, which may not read the
    # hash key; the hash columns are then rewritten by Atlas itself (apply_hash_policies): both timed.
    atlas_sql, applied = protect_select(select, ds, wh)  # installs the key (and pgcrypto where allowed)
    atlas_hashed = hashed_columns(applied)
    policies = {p.column: p for p in ColumnPolicy.objects.filter(dataset=ds)}

    def hand_written(implementation: str) -> str:
        exprs = []
        for c in CUSTOMERS_COLUMNS:
            if c == "email":
                exprs.append(f"hmac_placeholder AS {c}")  # written in the engine's own dialect below
            elif c in policies:
                exprs.append(f"{policy_sql(policies[c], c, wh, key)} AS {c}")
            else:
                exprs.append(c)
        sql = wh.transpile(f"SELECT {', '.join(exprs)} FROM chart.customers_bench")
        return sql.replace("hmac_placeholder", hand_written_hmac(wh, "email", key, implementation), 1)

    contenders = {"plain copy": wh.transpile(select)}
    if wh.vendor == "postgresql":
        contenders["hand-written, pgcrypto hmac()"] = hand_written("pgcrypto")
        contenders["hand-written, built-in sha256"] = hand_written("sha256")
        contenders[ATLAS] = atlas_sql
    else:
        contenders["hand-written, sha256 construction"] = hand_written("sha256")
        contenders[ATLAS] = wh.transpile(atlas_sql)
    out: dict[str, dict] = {name: {"seconds": []} for name in contenders}
    tokens = {}
    for _ in range(reps):
        for name, sql in contenders.items():  # interleaved, so drift hits everyone alike
            def run(sql=sql, name=name):
                wh.create_table_as("chart", "customers_protected", sql)
                if name.startswith("Atlas"):
                    apply_hash_policies(wh, "chart", "customers_protected", atlas_hashed)

            t = timed(run)
            out[name]["seconds"].append(t)
            with wh.cursor() as cur:
                tokens[name] = cur.execute(
                    "SELECT email FROM chart.customers_protected WHERE email IS NOT NULL ORDER BY email LIMIT 3"
                ).fetchall()
    hand = [n for n in contenders if n.startswith("hand-written")]
    for entry in out.values():
        entry["median"] = statistics.median(entry["seconds"])
    best = min(hand, key=lambda n: out[n]["median"])
    floor = out[best]["median"]
    for entry in out.values():
        entry["vs_floor"] = entry["median"] / floor
    hashed = {n: t for n, t in tokens.items() if n != "plain copy"}
    out["_check"] = {
        "floor_is": best,
        "same_tokens_everywhere": len({repr(t) for t in hashed.values()}) == 1,
        "tokens_are_python_hmac": all(len(r[0]) == 64 for r in next(iter(hashed.values()))),
    }
    assert out["_check"]["same_tokens_everywhere"], hashed
    return out


def markdown(results: dict) -> str:
    lines = [f"# PII benchmark ({results['rows']:,} rows, 12 columns, median of {results['reps']})", ""]
    c = results["classify"]
    lines += ["## Classify (DuckDB)", ""]
    if c.get("load_average"):
        lines += [f"Load average (1 min) before / after the classify part: {c['load_average'][0]:.1f} /"
                  f" {c['load_average'][1]:.1f} on {results['machine']['cpus']} CPUs; CPU s (user + system of this"
                  " process, what load does not distort) beside the wall time.", ""]
    anchor = c.get("presidio_structured", {})
    lines += ["| tool | median s | median CPU s | × presidio-structured (CPU) | columns right (of 12) |",
              "|---|---:|---:|---:|---:|"]
    for name, entry in c.items():
        if not isinstance(entry, dict):
            continue
        if "median" in entry:
            cpu = entry.get("median_cpu")
            ratio = f"{cpu / anchor['median_cpu']:.2f}" if cpu and anchor.get("median_cpu") else ""
            cpu_text = f"{cpu:.2f}" if cpu is not None else ""
            lines.append(f"| {name} | {entry['median']:.2f} | {cpu_text} | {ratio} | {entry['correct_columns']} |")
        elif "skipped" in entry:
            lines.append(f"| {name} | {entry.get('skipped')} | | | |")
    for engine, entries in results["policies"].items():
        lines += ["", f"## hash + mask + generalise, {engine}", "", "| contender | median s | × floor |", "|---|---:|---:|"]
        for name, entry in entries.items():
            if not name.startswith("_"):
                floor = " (floor)" if name == entries["_check"]["floor_is"] else ""
                lines.append(f"| {name}{floor} | {entry['median']:.2f} | {entry['vs_floor']:.2f} |")
    answers = {k: v.get("answers") for k, v in c.items() if isinstance(v, dict)}
    lines += ["", "Answers per column:", "", "```", json.dumps(answers, indent=1), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sample", type=int, default=settings.PII_SAMPLE_SIZE)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/atlas_bench_pii"))
    parser.add_argument("--only", choices=["classify", "policies"], help="run one part (development)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where pii.json and pii.md go")
    args = parser.parse_args()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results: dict = {"rows": args.rows, "reps": args.reps, "sample": args.sample, "policies": {}, "classify": {},
                     "machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    previous = args.out / "pii.json"
    if args.only and previous.is_file():  # one part re-measured: the other part's figures are kept as they were
        kept = json.loads(previous.read_text())
        if kept.get("rows") == args.rows:
            results["policies" if args.only == "classify" else "classify"] = \
                kept.get("policies" if args.only == "classify" else "classify", {})
    duck = DuckDBWarehouse(str(Path(settings.VAR_DIR) / "bench-pii.duckdb"))
    log("building the DuckDB table")
    build_table(duck, args.rows)
    if args.only in (None, "classify"):
        log("classifying")
        load_before = os.getloadavg()[0]
        results["classify"] = bench_classify(duck, args.sample, args.reps)
        results["classify"]["load_average"] = [load_before, os.getloadavg()[0]]
    if args.only in (None, "policies"):
        log("policies on DuckDB")
        results["policies"]["DuckDB"] = bench_policies(duck, args.reps)
        ensure_database(args.pg_url)
        pg = PostgresWarehouse(args.pg_url.replace("postgres://", "postgresql://", 1))
        log("building the PostgreSQL table")
        build_table(pg, args.rows)
        log("policies on PostgreSQL")
        results["policies"]["PostgreSQL"] = bench_policies(pg, args.reps)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pii.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    md = markdown(results)
    (args.out / "pii.md").write_text(md)
    print(md)


main()
