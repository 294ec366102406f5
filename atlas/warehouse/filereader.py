"""Turn a source file into DuckDB SQL that yields its good rows as text.

DuckDB is Atlas's file parser on every engine: its CSV reader is fast,
streams in bounded memory and keeps every line it cannot parse (with the line
number and the reason) instead of failing the load. The DuckDB warehouse runs
the SQL in place; the PostgreSQL backend runs it in an in-memory DuckDB and
streams the result into ``COPY``. One parser, so both engines load the same
file the same way.

Explore keeps data exactly as received: every column is text.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import LOAD_COLUMNS, FileFormat, Reject, WarehouseError

# A byte that cannot appear in valid JSON text: lets DuckDB's CSV reader hand
# us JSON Lines one whole line at a time.
_JSONL_SEPARATOR = "\\x1f"
_SAMPLE_LINES = 1000
# A JSON text with its strings emptied: what is left holds no quote, so a trailing comma is seen.
_STRINGS_OUT = "regexp_replace({}, '\"(\\\\.|[^\"\\\\])*\"', '\"\"', 'g')"
ENCODINGS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8",
    "utf-16": "utf-16",
    "utf16": "utf-16",
    "utf-16-le": "utf-16-le",
    "utf-16le": "utf-16-le",
    "utf-16-be": "utf-16-be",
    "utf-16be": "utf-16-be",
    "utf-32": "utf-32",
    "utf-32-le": "utf-32-le",
    "utf-32-be": "utf-32-be",
    "latin-1": "latin-1",
    "latin1": "latin-1",
    "iso-8859-1": "latin-1",
    "cp1252": "cp1252",
    "windows-1252": "cp1252",
    "iso-8859-15": "iso-8859-15",
}
# What the parser itself reads; any other encoding is transcoded to UTF-8 first (pipelines/hygiene.py).
PARSER_ENCODINGS = {"utf-8": "utf-8", "latin-1": "latin-1"}


class IngestError(WarehouseError):
    """The file cannot be loaded at all (the run records why, and the reason's class).

    Classes: ``empty_file``, ``encoding``, ``schema``, ``corrupt_archive``,
    ``duplicate_file`` (see ``pipelines/hygiene.py``), ``source`` (the source
    itself cannot be read: missing, unreachable, refused).
    """

    def __init__(self, message: str, reason_class: str = "source") -> None:
        super().__init__(message)
        self.reason_class = reason_class


@dataclass
class FileScan:
    columns: list[str]
    select_sql: str  # DuckDB SQL: the good rows, one text column per source column
    rejects_sql: list[str] = field(default_factory=list)  # (line, reason, raw) rows
    cleanup_sql: list[str] = field(default_factory=list)

    def collect_rejects(self, cur: Any) -> list[Reject]:
        rejects: list[Reject] = []
        for sql in self.rejects_sql:
            for line, reason, raw in cur.execute(sql).fetchall():
                rejects.append(Reject(int(line) if line is not None else None, str(reason), raw))
        for sql in self.cleanup_sql:
            cur.execute(sql)
        rejects.sort(key=lambda r: (r.line is None, r.line or 0))
        return rejects


def lit(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_header_names(names: Sequence[str], where: str) -> None:
    """Refuse blank or duplicate header names (case-insensitive: DuckDB does not tell ``ID`` from ``id``).

    The option ``header_names: "suffix"`` keeps such a header instead: a blank name
    becomes ``column_<position>``, a repeated one gets ``_2``, ``_3``...
    """
    problems = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(names, start=1):
        name = (raw or "").strip().replace("\x00", "")
        if not name:
            problems.append(f"column {i} has no name")
            continue
        if name.lower() in seen:
            problems.append(f"column {i} repeats the name of column {seen[name.lower()]}")
        else:
            seen[name.lower()] = i
    if problems:
        raise IngestError(
            f"{where}: the header is not usable: {'; '.join(problems[:5])}"
            f"{' …' if len(problems) > 5 else ''}. Fix the header, declare `columns`, or set the option"
            ' `header_names: "suffix"` to name them column_N / name_2.',
            "schema",
        )


def clean_column_names(names: Sequence[str]) -> list[str]:
    """Usable, unique column names: blanks get a position name, load columns are reserved."""
    out: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(names, start=1):
        name = (raw or "").strip().replace("\x00", "") or f"column_{i}"
        if name in LOAD_COLUMNS:
            name = f"source{name}"
        base, n = name, 2
        while name.lower() in seen:
            name = f"{base}_{n}"
            n += 1
        seen.add(name.lower())
        out.append(name)
    return out


def _encoding(options: dict[str, Any]) -> str:
    enc = str(options.get("encoding") or "utf-8").lower()
    if ENCODINGS.get(enc) not in PARSER_ENCODINGS:
        raise IngestError(
            f"Unsupported encoding {enc!r} for the parser; use one of: {', '.join(sorted(set(ENCODINGS.values())))}"
            " (other encodings are transcoded to UTF-8 before parsing).",
            "encoding",
        )
    return ENCODINGS[enc]


def _first_line(path: str, encoding: str, max_line_bytes: int, head: bytes | None = None) -> str:
    if head is None:
        with open(path, "rb") as fh:
            head = fh.readline(max_line_bytes + 1)
    else:
        head = head[: head.find(b"\n") + 1 or len(head)]
    if len(head) > max_line_bytes:
        raise IngestError(
            f"{path}: the first line is longer than {max_line_bytes} bytes; is this really a header?", "schema"
        )
    try:
        text = codecs.decode(head, encoding)
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{path}: the first line is not valid {encoding} ({exc.reason} at byte {exc.start}).", "encoding"
        ) from exc
    return text.lstrip("\ufeff").rstrip("\r\n")


def csv_columns(path: str, options: dict[str, Any], *, max_line_bytes: int, head: bytes) -> list[str]:
    """The columns ``plan_scan`` gives a CSV file, from ``head``: its first bytes, holding its first line."""
    return _csv_columns(path, options, _encoding(options), max_line_bytes, head)


def _csv_columns(
    path: str, options: dict[str, Any], encoding: str, max_line_bytes: int, head: bytes | None = None
) -> list[str]:
    declared = options.get("columns") or []
    header = bool(options.get("header", True))
    delimiter = options.get("delimiter") or ","
    quote = options.get("quote") if options.get("quote") is not None else '"'
    first = _first_line(path, encoding, max_line_bytes, head)
    fields = next(csv.reader(io.StringIO(first), delimiter=delimiter, quotechar=quote or None), [])
    if declared:
        if header and len(fields) != len(declared):
            raise IngestError(
                f"{path}: the header has {len(fields)} columns but the source declares {len(declared)}"
                f" ({', '.join(declared)}).",
                "schema",
            )
        return clean_column_names(declared)
    if not header:
        return clean_column_names([""] * len(fields))
    if options.get("header_names") != "suffix":
        check_header_names(fields, path)
    return clean_column_names(fields)


def _buffer_size(max_line_bytes: int) -> int:
    """DuckDB's CSV read buffer: room for two of the longest lines, and no more.

    Left to itself DuckDB picks buffers of tens of MB and keeps a file of that
    size in memory whole, so the memory of a load would grow with the file.
    """
    return 2 * int(max_line_bytes)


def _csv_reader_args(path: str, columns: list[str], options: dict[str, Any], encoding: str, max_line_bytes: int, tag: str, *, header: bool) -> str:
    delimiter = options.get("delimiter") or ","
    quote = options.get("quote") if options.get("quote") is not None else '"'
    escape = options.get("escape") if options.get("escape") is not None else quote
    struct = "{" + ", ".join(f"{lit(c)}: 'VARCHAR'" for c in columns) + "}"
    return (
        f"read_csv({lit(path)}, columns={struct}, header={'true' if header else 'false'},"
        f" delim={lit(delimiter)}, quote={lit(quote)}, escape={lit(escape)}, auto_detect=false,"
        f" encoding={lit(encoding)}, max_line_size={int(max_line_bytes)}, buffer_size={_buffer_size(max_line_bytes)},"
        f" store_rejects=true, rejects_table={lit('rej_' + tag)}, rejects_scan={lit('scan_' + tag)})"
    )


def _csv_rejects_sql(tag: str) -> list[str]:
    # One bad line can carry several errors: keep one reject per line, all reasons.
    return [
        f"SELECT line, string_agg(error_type || ': ' || error_message, '; '), any_value(csv_line)"
        f" FROM {qi('rej_' + tag)} GROUP BY line ORDER BY line"
    ]


def _jsonl_keys(path: str, encoding: str, max_line_bytes: int) -> list[str]:
    keys: dict[str, None] = {}
    with open(path, "rb") as fh:
        for _ in range(_SAMPLE_LINES):
            raw = fh.readline(max_line_bytes + 1)
            if not raw:
                break
            try:
                obj = json.loads(codecs.decode(raw, encoding))
            except (UnicodeDecodeError, ValueError, RecursionError):
                continue
            if isinstance(obj, dict):
                keys.update(dict.fromkeys(obj))
    return list(keys)


def plan_scan(path: str, fmt: FileFormat | str, options: dict[str, Any], *, tag: str, max_line_bytes: int, duck: Any) -> FileScan:
    """Plan the DuckDB SQL that reads ``path``; ``duck`` is a DuckDB cursor (for Parquet's schema)."""
    fmt = FileFormat(fmt)
    if not os.path.isfile(path):
        raise IngestError(f"{path}: no such file.")
    if os.path.getsize(path) == 0:
        raise IngestError(f"{path}: the file is empty (0 bytes).", "empty_file")
    encoding = _encoding(options)
    tag = re.sub(r"[^A-Za-z0-9_]", "_", tag)
    cleanup = [f"DROP TABLE IF EXISTS {qi('rej_' + tag)}", f"DROP TABLE IF EXISTS {qi('scan_' + tag)}"]

    if fmt is FileFormat.CSV:
        columns = _csv_columns(path, options, encoding, max_line_bytes)
        reader = _csv_reader_args(path, columns, options, encoding, max_line_bytes, tag, header=bool(options.get("header", True)))
        select = "SELECT " + ", ".join(qi(c) for c in columns) + f" FROM {reader}"
        return FileScan(columns, select, _csv_rejects_sql(tag), cleanup)

    if fmt is FileFormat.JSONL:
        declared = options.get("columns") or []
        keys = list(declared) or _jsonl_keys(path, encoding, max_line_bytes)
        if not keys:
            raise IngestError(
                f"{path}: no JSON object found in the first {_SAMPLE_LINES} lines; is this JSON Lines?", "schema"
            )
        if not declared and options.get("header_names") != "suffix":
            check_header_names(keys, path)
        columns = clean_column_names(keys)
        reader = (
            f"read_csv({lit(path)}, columns={{'line': 'VARCHAR'}}, header=false, delim=E'{_JSONL_SEPARATOR}',"
            f" quote='', escape='', auto_detect=false, encoding={lit(encoding)}, max_line_size={int(max_line_bytes)},"
            f" buffer_size={_buffer_size(max_line_bytes)}, store_rejects=true, rejects_table={lit('rej_' + tag)}, rejects_scan={lit('scan_' + tag)})"
        )
        lines = f"(SELECT row_number() OVER () AS n, line FROM {reader} WHERE line IS NOT NULL AND trim(line) <> '')"
        is_object = (
            "(CASE WHEN json_valid(line) AND NOT regexp_matches("
            + _STRINGS_OUT.format("line")
            + ", ',\\s*[\\]}]') THEN json_type(line::JSON) = 'OBJECT' ELSE false END)"
        )
        paths = "[" + ", ".join(lit("$." + json.dumps(k)) for k in keys) + "]"
        select = (
            "SELECT " + ", ".join(f"v[{i}] AS {qi(c)}" for i, c in enumerate(columns, start=1))
            + f" FROM (SELECT json_extract_string(line, {paths}) AS v FROM {lines} WHERE {is_object})"
        )
        rejects = [
            f"SELECT n, 'INVALID JSON: the line is not one strict JSON object (RFC 8259: no trailing comma)', line"
            f" FROM {lines} WHERE NOT {is_object}",
            *_csv_rejects_sql(tag),
        ]
        return FileScan(columns, select, rejects, cleanup)

    try:
        described = duck.execute(f"DESCRIBE SELECT * FROM read_parquet({lit(path)})").fetchall()
    except Exception as exc:  # duckdb raises its own error classes
        raise IngestError(f"{path}: not a readable Parquet file ({exc}).", "corrupt_archive") from exc
    names = [r[0] for r in described]
    columns = clean_column_names(names)
    select = "SELECT " + ", ".join(
        f"CAST({qi(src)} AS VARCHAR) AS {qi(dst)}" for src, dst in zip(names, columns, strict=True)
    ) + f" FROM read_parquet({lit(path)})"
    return FileScan(columns, select, [], [])
