"""Time the real Atlas ingest, end to end, on one engine.

Run by ``benchmarks.ingest`` in a subprocess per engine (Django settings are
per process). Standalone, it prints one JSON document::

    python -m benchmarks.ingest.atlas_run --engine postgres --file F --reps 5

With ``--serve`` it loads once per ``load`` line read on stdin and answers one
JSON line each (``done`` ends it), so the benchmark can interleave Atlas's
repetitions with the floor's.

Each repetition is a first load of the file into an empty dataset: untimed,
the Explore table (and its quarantine table) is dropped and the dataset's
batch ledger cleared with ``forget_batches``, so the checksum ledger never
skips the file. Timed: ``start_run(pipeline, dispatch=False)`` +
``execute_run(run_id)``, i.e. content scan (checksum), parse, load,
quarantine, publish, ledger, dataset refresh and the run's bookkeeping.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from . import memory
from .cpu import CpuMeter, wait_until_quiet
from .pg import DEFAULT_URL, database_name

NAME = "bench_orders"
PIPELINE = "bench_ingest"


def configure_django(engine: str, pg_url: str, var_dir: str) -> None:
    """Settings for ``engine`` (before ``django.setup()``): PostgreSQL, or the embedded default."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "atlas.settings"
    os.environ["DEBUG"] = "true"
    os.environ["ATLAS_VAR_DIR"] = var_dir
    for key in ("WAREHOUSE_URL", "CELERY_BROKER_URL", "DATABASE_URL"):
        os.environ.pop(key, None)
    # The ingest itself: no step hooks (PII scan, quality gates, lineage) unless
    # BENCH_ATLAS_HOOKS names some (comma-separated dotted paths, as ATLAS_STEP_HOOKS).
    os.environ["ATLAS_STEP_HOOKS"] = os.environ.get("BENCH_ATLAS_HOOKS", "")
    # Path sources are confined to ATLAS_DATA_ROOTS (issue 12): the benchmark's data directory is one.
    os.environ["ATLAS_DATA_ROOTS"] = str(Path(__file__).resolve().parent.parent / "data")
    if engine == "postgres":
        os.environ["DATABASE_URL"] = pg_url
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())


def create_pipeline(path: str) -> Any:
    """A fresh Source, Dataset and Pipeline with one ingest step over ``path``."""
    from pipelines.models import Dataset, Layer, Pipeline, Source, Step

    # Reused, not deleted: run history is protected evidence (issue 12), even in the bench database.
    source, _ = Source.objects.update_or_create(
        name=NAME, defaults={"kind": Source.Kind.PATH, "format": "csv", "location": path, "options": {}}
    )
    dataset, _ = Dataset.objects.get_or_create(layer=Layer.EXPLORE, table=NAME, defaults={"name": NAME})
    pipeline, _ = Pipeline.objects.get_or_create(name=PIPELINE)
    Step.objects.update_or_create(
        pipeline=pipeline,
        name="ingest",
        defaults={"kind": Step.Kind.INGEST, "source": source, "output": dataset, "write_mode": "replace"},
    )
    return pipeline


def reset_dataset() -> None:
    """Untimed: an empty dataset, nothing in its ledger, no dirty pages left to flush."""
    from atlas.warehouse import get_warehouse

    wh = get_warehouse()
    wh.ensure_schemas()
    wh.drop_table("explore", NAME)
    wh.drop_table("explore", f"{NAME}__quarantine")
    wh.forget_batches(f"explore.{NAME}")
    with wh.cursor() as cur:
        cur.execute("CHECKPOINT")


def load_once(pipeline: Any, database: str = "atlas_bench") -> dict[str, Any]:
    """One timed end-to-end run: seconds, rows loaded, CPU use."""
    from pipelines import runner
    from pipelines.models import RunStatus

    with CpuMeter(database) as meter:
        start = time.perf_counter()
        run = runner.start_run(pipeline, dispatch=False)
        run = runner.execute_run(run.pk)
        seconds = time.perf_counter() - start
    step = run.step_runs.get()
    if run.status != RunStatus.SUCCEEDED:
        raise RuntimeError(f"Atlas run #{run.pk} {run.status}: {run.error or step.error}")
    return {
        "seconds": seconds,
        "rows": step.rows_out,
        "rows_rejected": step.rows_rejected,
        "cpu": meter.use.to_dict(),
    }


def published_rows() -> int:
    from atlas.warehouse import get_warehouse

    return get_warehouse().row_count("explore", NAME)


def one_rep(pipeline: Any, database: str, quiet: bool = True) -> dict[str, Any]:
    reset_dataset()
    waited = wait_until_quiet() if quiet else 0.0
    sample = load_once(pipeline, database)
    sample["waited_for_quiet_s"] = round(waited, 1)
    sample["published_rows"] = published_rows()
    sample["peak_rss_so_far_mib"] = memory.peak_mib()
    return sample


def summary(engine: str) -> dict[str, Any]:
    import django
    import duckdb
    import psycopg
    from django.conf import settings

    from atlas.warehouse import get_warehouse

    return {
        "engine": engine,
        "warehouse": get_warehouse().vendor,
        "duckdb_memory_limit": getattr(settings, "ATLAS_DUCKDB_MEMORY_LIMIT", "512MB"),
        "parser_memory_limit": getattr(settings, "ATLAS_INGEST_PARSER_MEMORY_LIMIT", None),
        "parser_threads": getattr(settings, "ATLAS_INGEST_PARSER_THREADS", None),
        "copy_streams": getattr(settings, "ATLAS_INGEST_COPY_STREAMS", None),
        "copy_pipe": getattr(settings, "ATLAS_INGEST_COPY_PIPE", None),
        "copy_segment_bytes": getattr(settings, "ATLAS_INGEST_COPY_SEGMENT_BYTES", None),
        "step_hooks": list(settings.ATLAS_STEP_HOOKS),
        "peak_rss_mib": memory.peak_mib(),
        "versions": {"django": django.get_version(), "duckdb": duckdb.__version__, "psycopg": psycopg.__version__},
    }


def use_file(pipeline: Any, path: str) -> None:
    """Point the pipeline's source at ``path`` (untimed)."""
    source = pipeline.steps.get().source
    if source.location != path:
        source.location = path
        source.save(update_fields=["location"])


def serve(pipeline: Any, engine: str, database: str, out: IO[str], quiet: bool) -> None:
    """The line protocol: ``load [PATH]`` → one JSON sample; ``done`` → the summary, then exit.

    ``load`` loads the ``--file``; ``load PATH`` another file, with the same process.
    """
    default = pipeline.steps.get().source.location
    out.write(json.dumps({"ready": True, "baseline_rss_mib": memory.rss_mib(), "peak_before_load_mib": memory.peak_mib()}) + "\n")
    out.flush()
    for line in sys.stdin:
        command, _, path = line.strip().partition(" ")
        if command == "load":
            use_file(pipeline, path or default)
            out.write(json.dumps(one_rep(pipeline, database, quiet)) + "\n")
        elif command == "done":
            if engine == "postgres":
                reset_dataset()  # leave the bench database small
            out.write(json.dumps(summary(engine)) + "\n")
            out.flush()
            return
        else:
            out.write(json.dumps({"error": f"unknown command {command!r}"}) + "\n")
        out.flush()


def batch(pipeline: Any, engine: str, database: str, reps: int, warmup: int, quiet: bool) -> dict[str, Any]:
    baseline, peak_before = memory.rss_mib(), memory.peak_mib()
    samples = []
    for i in range(warmup + reps):
        sample = one_rep(pipeline, database, quiet)
        if i >= warmup:
            samples.append(sample)
            print(f"[atlas/{engine}] rep {i - warmup + 1}/{reps}: {sample['seconds']:.2f} s", file=sys.stderr)
    if engine == "postgres":
        reset_dataset()
    return {"baseline_rss_mib": baseline, "peak_before_load_mib": peak_before, "samples": samples, **summary(engine)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("postgres", "duckdb"), required=True)
    parser.add_argument("--file", required=True, help="the clean CSV to load")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--pg-url", default=DEFAULT_URL)
    parser.add_argument("--serve", action="store_true", help="answer 'load' lines on stdin (used by the benchmark)")
    parser.add_argument("--no-quiet-wait", action="store_true", help="do not wait for a quiet machine before each load")
    args = parser.parse_args(argv)
    # Our answers go to the real stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    database = database_name(args.pg_url)
    with tempfile.TemporaryDirectory(prefix="atlas-bench-var-") as var_dir:
        configure_django(args.engine, args.pg_url, var_dir)
        pipeline = create_pipeline(os.path.abspath(args.file))
        if args.serve:
            serve(pipeline, args.engine, database, out, not args.no_quiet_wait)
        else:
            result = batch(pipeline, args.engine, database, args.reps, args.warmup, not args.no_quiet_wait)
            out.write(json.dumps(result) + "\n")
    out.close()


if __name__ == "__main__":
    main()
