"""The benchmark's input: the demo generator's ``orders.csv``, and a clean copy of it.

The generator's file carries ~0.5% malformed (truncated) lines on purpose.
Atlas quarantines them, but a plain ``COPY`` fails on the first one, so every
contender loads the *clean* copy: the raw lines whose CSV field count equals
the header's, byte for byte. Files are cached under ``benchmarks/data/``
(git-ignored) and generated once per row count.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from demo.generator import generate

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
_OTHER_FILES = ("customers.csv", "order_items.csv", "payments.jsonl")


@dataclass(frozen=True)
class BenchFile:
    """A clean CSV every contender loads, with what the benchmark reports about it."""

    path: str
    generator_rows: int  # the generator's ``rows`` (distinct orders)
    raw_lines: int  # data lines of the generated file
    malformed_lines: int  # dropped from the clean copy
    rows: int  # data lines of the clean copy: what every contender must load
    size_bytes: int
    columns: list[str]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _generate(rows: int, out_dir: Path) -> Path:
    orders = out_dir / "orders.csv"
    if orders.is_file() and (out_dir / "manifest.json").is_file():
        return orders
    print(f"[data] generating {rows:,} orders into {out_dir} (once; cached)", flush=True)
    generate(out_dir, rows=rows)
    for name in _OTHER_FILES:  # only orders.csv is benchmarked
        (out_dir / name).unlink(missing_ok=True)
    return orders


def _field_count(line: str) -> int:
    return len(next(csv.reader([line]), []))


def _write_clean(raw: Path, clean: Path) -> tuple[int, int, list[str]]:
    """Copy ``raw`` to ``clean`` without the lines whose field count differs from the header's."""
    kept = dropped = 0
    tmp = clean.with_suffix(".partial")
    with raw.open(encoding="utf-8", newline="") as src, tmp.open("w", encoding="utf-8", newline="") as dst:
        header = src.readline()
        columns = next(csv.reader([header]))
        dst.write(header)
        for line in src:
            if _field_count(line) == len(columns):
                dst.write(line)
                kept += 1
            else:
                dropped += 1
    os.replace(tmp, clean)
    return kept, dropped, columns


def prepare(rows: int) -> BenchFile:
    """The clean benchmark file for ``rows`` generator rows (generated and filtered once)."""
    out_dir = DATA_DIR / f"orders-{rows}"
    raw = _generate(rows, out_dir)
    clean = out_dir / "orders.clean.csv"
    meta_path = out_dir / "clean.json"
    if clean.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
    else:
        kept, dropped, columns = _write_clean(raw, clean)
        manifest = json.loads((out_dir / "manifest.json").read_text())["files"]["orders"]
        if dropped != manifest["malformed_rows"] or kept + dropped != manifest["lines_total"]:
            raise RuntimeError(
                f"{raw}: dropped {dropped} lines and kept {kept}; the generator's manifest says"
                f" {manifest['malformed_rows']} malformed of {manifest['lines_total']}."
            )
        meta = {"raw_lines": kept + dropped, "malformed_lines": dropped, "rows": kept, "columns": columns}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return BenchFile(
        path=str(clean),
        generator_rows=rows,
        raw_lines=meta["raw_lines"],
        malformed_lines=meta["malformed_lines"],
        rows=meta["rows"],
        size_bytes=clean.stat().st_size,
        columns=list(meta["columns"]),
    )


def quoted(clean: BenchFile) -> BenchFile:
    """The clean file with every field quoted (``csv.QUOTE_ALL``), as many exporters write CSV.

    Same rows and values; a file with quote characters is the one Atlas's
    PostgreSQL loader parses with DuckDB rather than handing it to COPY whole.
    """
    path = Path(clean.path).with_name("orders.quoted.csv")
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        with open(clean.path, newline="", encoding="utf-8") as src, open(tmp, "w", newline="", encoding="utf-8") as dst:
            csv.writer(dst, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(csv.reader(src))
        os.replace(tmp, path)
    return BenchFile(**{**asdict(clean), "path": str(path), "size_bytes": path.stat().st_size})


def gzipped(clean: BenchFile) -> BenchFile:
    """The clean file gzip-compressed (level 6, as ``gzip`` does by default): the same rows."""
    import gzip
    import shutil

    path = Path(clean.path).with_name("orders.clean.csv.gz")
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        with open(clean.path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, path)
    return BenchFile(**{**asdict(clean), "path": str(path), "size_bytes": path.stat().st_size})


def warm_cache(path: str) -> None:
    """Read the file once so every contender starts with it in the page cache."""
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass
