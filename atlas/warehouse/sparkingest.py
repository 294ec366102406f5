"""Ingest on the Spark warehouse through Spark's own parallel readers (issue 21).

Where the Spark server reads the file itself (``reader_refusal`` says when), CSV, JSON Lines and
Parquet are read by Spark, in parallel over the file's splits, and nothing passes through the
Atlas process but the quarantined records. Elsewhere the file is parsed by DuckDB in the Atlas
process and its rows shipped to Spark as Arrow (``SparkWarehouse.load_file_parsed``); which of the
two read a file is stated on the run (``LoadResult.reader``: the step run's ``details["readers"]``).

**What Spark reads.** A file the server sees at the same path: a local Spark Connect server
(``sc://`` on the loopback address) shares the Atlas process's filesystem. A server elsewhere (a
cluster, a hosted Spark) sees another one, so its files take the DuckDB path.

**The same rows and quarantine as the other engines.** CSV and JSON Lines are read as lines
(``spark.read.text`` with ``\\n`` as the separator: a line's bytes as they are, a ``\\r`` before the
``\\n`` dropped), then each line is parsed by ``from_csv`` / ``from_json`` in ``PERMISSIVE`` mode with a
``columnNameOfCorruptRecord`` column: a record Spark cannot parse keeps its raw text and goes to
Atlas's quarantine with its line number (Atlas reads its exact bytes and offset back from the file,
as on every engine). Reading by lines is exact only where a record is one line: a CSV file each of whose lines holding
a quote is well formed on its own (every field unquoted without a quote, or quoted whole with its
quotes doubled: ``well_formed``, checked by Spark over the lines before anything is parsed), with
no line longer than the parser's maximum, in UTF-8 (hygiene transcodes other encodings first).
Any other file takes the DuckDB path. A line that is not valid UTF-8 is quarantined (``INVALID
ENCODING``), as DuckDB's reader does; blank lines are skipped.

**An exact ``_row_number`` and line numbers, in parallel.** Spark has no line number. Every line
is read with the start of the file split it came from (``_metadata.file_block_start``) and
``monotonically_increasing_id()`` (a task's rows are numbered in the order it reads them, and a task
reads its splits' lines in file order), and written once to a Parquet table, so both are fixed
values from then on. A line's number is then its rank in its split plus the lines of the splits
before it (one small aggregate: a row per split, summed in order here); ``_row_number`` is the
same over the loaded rows (the rank among a split's loaded rows by line number, a window
partitioned by split, plus the loaded rows of the splits before). Both are exact whatever the
splits, and computed split by split in parallel. For Parquet ``_row_number`` is the row's index
in the file (``_metadata.row_index``) plus one.

Known differences from the other engines (``atlas/tests/test_warehouse_spark_ingest.py`` lists them
as strict expected failures): the reason text of a quarantined record is Spark's own (its class is
the same); a Parquet value of a non-text type is written as Spark casts it to text (a large double
as ``1.0E10``).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from typing import Any

from django.conf import settings

from .base import FileFormat, FileLayout, LoadResult, Reject, StreamedFile

CORRUPT = "_atlas_corrupt"
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def server_is_local(url: str) -> bool:
    """Whether the Spark Connect server at ``url`` runs on this machine (and so reads its files)."""
    hostport = re.sub(r"^sc://", "", url).split("/", 1)[0].split(";", 1)[0]
    host = hostport.rsplit(":", 1)[0].strip("[]") if ":" in hostport else hostport
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reader_refusal(url: str, fmt: FileFormat, options: dict[str, Any], layout: FileLayout | None) -> str | None:
    """Why Spark's own reader cannot give this file's exact rows and quarantine (None: it can). An allowlist."""
    if not server_is_local(url):
        return "the Spark server does not share this machine's files"
    if fmt is FileFormat.PARQUET:
        return None
    if layout is None:
        return "the file's layout (line ends, quotes) is not known"
    if layout.long_lines:
        return "a line is longer than the parser's maximum"
    if str(options.get("encoding") or "utf-8").lower() not in ("utf-8", "utf8", "utf-8-sig"):
        return "the file is not UTF-8"
    if fmt is FileFormat.CSV:
        quote = options.get("quote") if options.get("quote") is not None else '"'
        escape = options.get("escape") if options.get("escape") is not None else quote
        delimiter = options.get("delimiter") or ","
        if len(delimiter) != 1 or len(quote) > 1 or escape != quote:
            return "the delimiter, quote or escape is not one character Spark's CSV parser reads as DuckDB's"
    return None


class NotLineRecords(Exception):  # noqa: N818 - a signal: the file takes the DuckDB path
    """A CSV line with a quote that is not a whole field's (or a quoted field spanning lines)."""


def well_formed(delimiter: str, quote: str) -> str:
    """A Java regex a CSV line matches when each of its fields is unquoted (no quote, no delimiter) or
    quoted whole (quotes inside doubled): then the line is one record, read alike by Spark and DuckDB."""
    d, q = re.escape(delimiter), re.escape(quote)
    field = f"(?:{q}(?:[^{q}]|{q}{q})*+{q}|[^{q}{d}]*+)"
    return f"^{field}(?:{d}{field})*+$"


class SparkIngest:
    """``load_file`` for ``SparkWarehouse``: Spark's readers where they are exact, else DuckDB's parser."""

    def load_file(
        self, path: str, *, fmt: FileFormat, options: dict[str, Any], schema: str, target: str, staging: str,
        batch_id: str, source_label: str, layout: FileLayout | None = None, stream: StreamedFile | None = None,
        pipe: Any = None,
    ) -> LoadResult:
        fmt = FileFormat(fmt)
        why = reader_refusal(self.url, fmt, options, layout)  # type: ignore[attr-defined]
        if why is None:
            try:
                return self._read_file(path, fmt=fmt, options=options, schema=schema, target=target, staging=staging,
                                       batch_id=batch_id, source_label=source_label, stream=stream)
            except NotLineRecords as exc:
                why = str(exc)
        result = self.load_file_parsed(  # type: ignore[attr-defined]
            path, fmt=fmt, options=options, schema=schema, target=target, staging=staging, batch_id=batch_id,
            source_label=source_label, layout=layout, stream=stream, pipe=pipe,
        )
        result.reader = f"DuckDB's parser in the Atlas process, rows sent to Spark as Arrow: {why}"
        return result

    def _read_file(
        self, path: str, *, fmt: FileFormat, options: dict[str, Any], schema: str, target: str, staging: str,
        batch_id: str, source_label: str, stream: StreamedFile | None,
    ) -> LoadResult:
        if stream is not None:
            stream.materialise()
        columns = self._planned_columns(path, fmt, options, staging)
        self.ensure_explore_table(schema, target, columns)  # type: ignore[attr-defined]
        self.drop_table(schema, staging)  # type: ignore[attr-defined]
        if fmt is FileFormat.PARQUET:
            self._read_parquet(path, columns, schema, staging, batch_id, source_label)
            rejects: list[Reject] = []
        else:
            rejects = self._read_lines(path, fmt, options, columns, schema, staging, batch_id, source_label)
        rows = self.row_count(schema, staging)  # type: ignore[attr-defined]
        return LoadResult(rows=rows, columns=columns, rejects=rejects,
                          reader=f"Spark's own {fmt.value.upper()} reader, in parallel on the Spark server")

    # --- what the file holds ---------------------------------------------------------------
    @staticmethod
    def _planned_columns(path: str, fmt: FileFormat, options: dict[str, Any], tag: str) -> list[str]:
        """The columns (and the refusals: empty file, unusable header) exactly as on the other engines."""
        import duckdb

        from .duckdb import parser_config
        from .filereader import plan_scan

        con = duckdb.connect(config=parser_config())
        try:
            return plan_scan(path, fmt, options, tag=tag, max_line_bytes=settings.ATLAS_INGEST_MAX_LINE_BYTES, duck=con).columns
        finally:
            con.close()

    def _write(self, df: Any, schema: str, name: str) -> None:
        try:
            df.write.format("parquet").mode("error").saveAsTable(f"`{schema}`.`{name}`")
        except Exception as exc:  # noqa: BLE001 - pyspark raises many kinds
            raise self._failure(exc) from exc  # type: ignore[attr-defined]

    def _load_columns(self, batch_id: str, source_label: str) -> list[Any]:
        from pyspark.sql import functions as F  # noqa: N812

        return [F.lit(batch_id).alias("_batch_id"), F.current_timestamp().alias("_ingested_at"),
                F.lit(source_label).alias("_source")]

    def _read_parquet(self, path: str, columns: list[str], schema: str, staging: str, batch_id: str, source_label: str) -> None:
        from pyspark.sql import functions as F  # noqa: N812

        df = self.spark().read.parquet(path)  # type: ignore[attr-defined]
        items = [F.col(f"`{src}`").cast("string").alias(dst) for src, dst in zip(df.columns, columns, strict=True)]
        row = (F.col("_metadata.row_index") + 1).cast("bigint").alias("_row_number")
        self._write(df.select(*items, *self._load_columns(batch_id, source_label), row), schema, staging)

    def _read_lines(
        self, path: str, fmt: FileFormat, options: dict[str, Any], columns: list[str], schema: str, staging: str,
        batch_id: str, source_label: str,
    ) -> list[Reject]:
        from pyspark.sql import Window
        from pyspark.sql import functions as F  # noqa: N812

        spark = self.spark()  # type: ignore[attr-defined]
        tag = uuid.uuid4().hex[:8]
        lines_t, parsed_t = f"{staging}__sl{tag}", f"{staging}__sp{tag}"  # the staging name: the janitor's if left
        try:
            # 1. every line with its split and its place in the task that read it: written once, fixed from here on
            raw = spark.read.option("lineSep", "\n").text(path)
            self._write(raw.select(
                # the validity first: a regex makes a Java string of the bytes (invalid ones replaced)
                F.expr("is_valid_utf8(value)").alias("_valid"),
                F.regexp_replace("value", "\r$", "").alias("value"),
                F.col("_metadata.file_block_start").alias("_blk"),
                F.monotonically_increasing_id().alias("_mid"),
            ), schema, lines_t)
            lines = spark.table(f"`{schema}`.`{lines_t}`")
            quote = options.get("quote") if options.get("quote") is not None else '"'
            if fmt is FileFormat.CSV and quote:
                pattern = well_formed(options.get("delimiter") or ",", quote)
                odd = lines.where(F.col("value").contains(quote) & ~F.col("value").rlike(pattern)).limit(1)
                if self._collect(odd):  # type: ignore[attr-defined]
                    raise NotLineRecords("a quote is not a whole field's, or a quoted field spans lines")
            # 2. the line number: rank in its split plus the lines of the splits before it
            bases = _bases(self._collect(lines.groupBy("_blk").agg(F.count(F.lit(1)).alias("n"), F.min("_mid").alias("m"))))  # type: ignore[attr-defined]
            base = spark.createDataFrame([(b, v) for b, v in bases.items()], "_blk bigint, _base bigint")
            numbered = lines.join(F.broadcast(base), "_blk").select(
                "value", "_valid", "_blk", (F.col("_mid") + F.col("_base")).alias("_line"))
            header = fmt is FileFormat.CSV and bool(options.get("header", True))
            kept = numbered.where((F.col("value") if fmt is FileFormat.CSV else F.trim("value")) != "")
            if header:
                kept = kept.where(F.col("_line") > 1)
            # 3. each line parsed, PERMISSIVE: what cannot be parsed keeps its raw text in the corrupt column
            struct = ", ".join(f"`{c.replace('`', '``')}` STRING" for c in columns) + f", `{CORRUPT}` STRING"
            parsed = _parse(kept, fmt, options, struct, columns)
            self._write(parsed, schema, parsed_t)
            table = spark.table(f"`{schema}`.`{parsed_t}`")
            rejects = [
                Reject(int(line), reason, raw)
                for line, reason, raw in self._collect(  # type: ignore[attr-defined]
                    table.where(F.col("_reason").isNotNull()).select("_line", "_reason", "value").orderBy("_line"))
            ]
            # 4. the loaded rows, numbered in line order: rank in the split plus the loaded rows of the splits before
            good = table.where(F.col("_reason").isNull())
            counts = {b: n for b, n in self._collect(good.groupBy("_blk").agg(F.count(F.lit(1))))}  # type: ignore[attr-defined]
            before, acc = [], 0
            for blk in sorted(counts):
                before.append((blk, acc))
                acc += counts[blk]
            offsets = spark.createDataFrame(before or [(0, 0)], "_blk bigint, _before bigint")
            rank = F.row_number().over(Window.partitionBy("_blk").orderBy("_line"))
            out = good.join(F.broadcast(offsets), "_blk").select(
                *[F.col(f"`{c}`") for c in columns], *self._load_columns(batch_id, source_label),
                (rank + F.col("_before")).cast("bigint").alias("_row_number"),
            )
            self._write(out, schema, staging)
        finally:
            for name in (lines_t, parsed_t):
                self._command(f"DROP TABLE IF EXISTS `{schema}`.`{name}`")  # type: ignore[attr-defined]
        return rejects


def _bases(stats: list[Any]) -> dict[int, int]:
    """split start -> what to add to a line's id to get its line number (the lines of the splits before, + 1)."""
    out, lines = {}, 0
    for blk, n, first in sorted((int(b), int(n), int(m)) for b, n, m in stats):
        out[blk] = lines - first + 1
        lines += n
    return out


def _parse(lines: Any, fmt: FileFormat, options: dict[str, Any], struct: str, columns: list[str]) -> Any:
    """``lines`` (value, _blk, _line) with the parsed columns and ``_reason`` (NULL: loaded)."""
    from pyspark.sql import functions as F  # noqa: N812

    permissive = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    valid = F.col("_valid")
    if fmt is FileFormat.CSV:
        quote = options.get("quote") if options.get("quote") is not None else '"'
        opts = {**permissive, "sep": options.get("delimiter") or ",", "quote": quote or "\u0000",
                "escape": quote or "\\", "nullValue": "", "emptyValue": ""}
        rec = F.from_csv(F.col("value"), struct, opts)
        bad = F.when(~valid, F.lit("INVALID ENCODING: the line is not valid UTF-8 (Spark's reader)")).when(
            rec[CORRUPT].isNotNull(),
            F.lit(f"MISSING COLUMNS or TOO MANY COLUMNS: the record does not hold the {len(columns)} columns"
                  " (Spark's CSV parser)"))
    else:
        rec = F.from_json(F.col("value"), struct, permissive)
        is_object = F.ltrim(F.col("value")).startswith("{")
        bad = F.when(~valid, F.lit("INVALID ENCODING: the line is not valid UTF-8 (Spark's reader)")).when(
            rec[CORRUPT].isNotNull() | ~is_object | rec.isNull(),
            F.lit("INVALID JSON: the line is not one strict JSON object (RFC 8259: no trailing comma)"))
    parsed = lines.select("value", "_blk", "_line", rec.alias("_rec"), bad.alias("_reason"))
    return parsed.select("value", "_blk", "_line", "_reason", *[
        F.when(F.col("_reason").isNull(), F.col("_rec")[c]).alias(c) for c in columns])

