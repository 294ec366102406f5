"""A malformed-input corpus, generated: every class input hygiene handles, each with its exact expectation.

Nothing here is a fixture file: every case is built by code from seeded random
rows, so the expectation (rows loaded, records quarantined with their line,
class, byte offset and exact bytes, or the file refused with its class) follows
from how the bytes were made, not from what Atlas happened to do.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import random
import zipfile
from dataclasses import dataclass, field

import zstandard

HEADER = ("id", "name", "city", "amount")
NAMES = ["Ann", "Zoë", "Łukasz", "José", "O'Brien", "Li, Wei", 'say "hi"', "Ægir", "Nuño", "Bob", "Chloé", "Dai"]
CITIES = ["Paris", "Kraków", "São Paulo", "Reykjavík", "Köln", "Oslo", "Lyon"]


def rows(n: int, seed: int) -> list[tuple[str, ...]]:
    rnd = random.Random(seed)
    return [
        (str(i), rnd.choice(NAMES), rnd.choice(CITIES), f"{rnd.randint(0, 99999) / 100:.2f}")
        for i in range(1, n + 1)
    ]


def csv_text(
    data: list[tuple[str, ...]],
    *,
    delimiter: str = ",",
    newline: str = "\n",
    header: tuple[str, ...] | None = HEADER,
    quote_all: bool = False,
    tail: bool = True,
) -> str:
    out = io.StringIO()
    writer = csv.writer(
        out, delimiter=delimiter, lineterminator=newline, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    )
    if header:
        writer.writerow(header)
    writer.writerows(data)
    text = out.getvalue()
    return text if tail else text[: -len(newline)]


@dataclass(frozen=True)
class Bad:
    """A record the file holds that must be quarantined."""

    line: int  # the parser's line number (the header is line 1)
    klass: str
    raw: bytes  # its exact bytes as received (decompressed), without the line end
    offset: int


@dataclass
class Case:
    name: str
    content: bytes
    loaded: list[tuple[str | None, ...]] = field(default_factory=list)
    bad: list[Bad] = field(default_factory=list)
    refused: str | None = None  # the reason class of a file refused whole
    status: str = "loaded"  # loaded, partial, rejected
    fmt: str = "csv"
    options: dict = field(default_factory=dict)
    step: dict = field(default_factory=dict)
    columns: tuple[str, ...] = HEADER
    warning: str | None = None  # a word the batch's warnings must hold
    decoded: bytes | None = None  # the content after decompression (offsets and raw bytes refer to it)
    filename: str = "data.csv"


def _bad(decoded: bytes, raw: bytes, line: int, klass: str) -> Bad:
    return Bad(line, klass, raw, decoded.index(raw))


def _gzip_members(data: bytes) -> bytes:
    half = len(data) // 2
    cut = data.index(b"\n", half) + 1
    return gzip.compress(data[:cut]) + gzip.compress(data[cut:])


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def build() -> list[Case]:
    cases: list[Case] = []

    def add(case: Case) -> None:
        cases.append(case)

    # --- line endings, quoting, delimiters ------------------------------------------------------
    for i, (name, newline) in enumerate([("lf", "\n"), ("crlf", "\r\n"), ("cr_only", "\r")]):
        data = rows(30 + i, seed=i)
        add(Case(f"line_ends_{name}", csv_text(data, newline=newline).encode(), loaded=data))
    data = rows(40, seed=10)
    lines = csv_text(data).encode().split(b"\n")
    ends = [b"\r\n", b"\n", b"\r"]
    mixed = b"".join(line + ends[j % 3] for j, line in enumerate(lines[:-1]))
    add(Case("line_ends_mixed_cr_crlf_lf", mixed, loaded=data))
    mixed2 = b"".join(line + (b"\r\n" if j % 2 else b"\n") for j, line in enumerate(lines[:-1]))
    add(Case("line_ends_mixed_crlf_lf", mixed2, loaded=data))
    data = rows(25, seed=11)
    data[4] = (data[4][0], "two\nlines", data[4][2], data[4][3])
    data[9] = (data[9][0], "a quoted\rCR", data[9][2], data[9][3])
    add(Case("quoted_line_breaks_kept_in_an_lf_file", csv_text(data, quote_all=True).encode(), loaded=data))
    data = rows(25, seed=12)
    add(Case("no_trailing_newline", csv_text(data, tail=False).encode(), loaded=data))
    data = rows(35, seed=13)
    add(Case("every_field_quoted", csv_text(data, quote_all=True).encode(), loaded=data))
    for delim, word in (("\t", "TAB"), (";", "semicolon"), ("|", "pipe")):
        data = rows(30, seed=ord(delim))
        add(Case(f"delimiter_sniffed_{word}", csv_text(data, delimiter=delim).encode(), loaded=data, warning=word))
    data = rows(20, seed=14)
    text = csv_text(data, delimiter=";")
    add(
        Case(
            "declared_delimiter_wins",
            text.encode(),
            loaded=[(line,) for line in text.splitlines()[1:]],
            options={"delimiter": "|", "quote": ""},
            columns=(";".join(HEADER),),
        )
    )

    # --- compression -----------------------------------------------------------------------------
    data = rows(60, seed=20)
    plain = csv_text(data).encode()
    add(Case("gzip", gzip.compress(plain), loaded=data, decoded=plain, filename="data.csv.gz"))
    add(Case("gzip_two_members", _gzip_members(plain), loaded=data, decoded=plain))
    add(Case("bz2", bz2.compress(plain), loaded=data, decoded=plain, filename="data.bin"))
    add(Case("zstd", zstandard.ZstdCompressor().compress(plain), loaded=data, decoded=plain))
    add(Case("zip_one_member", _zip({"orders.csv": plain}), loaded=data, decoded=plain, filename="x.zip"))
    add(Case("gzip_truncated", gzip.compress(plain)[:-30], refused="corrupt_archive", status="rejected"))
    add(Case("zip_two_members", _zip({"a.csv": plain, "b.csv": plain}), refused="corrupt_archive", status="rejected"))
    add(Case("bz2_damaged", b"BZh91AY&SY" + bytes(range(200)), refused="corrupt_archive", status="rejected"))
    add(Case("gzip_of_nothing", gzip.compress(b""), refused="empty_file", status="rejected"))
    bad_row = b"61,Zo\xebe,Oslo,1.00"
    with_bad = plain + bad_row + b"\n"
    add(
        Case(
            "gzip_with_a_latin1_record",
            gzip.compress(with_bad),
            loaded=data,
            bad=[_bad(with_bad, bad_row, 62, "encoding")],
            decoded=with_bad,
        )
    )

    # --- encodings -------------------------------------------------------------------------------
    data = rows(30, seed=30)
    text = csv_text(data)
    add(Case("utf8_bom", codecs.BOM_UTF8 + text.encode(), loaded=data))
    add(Case("utf16le_bom", codecs.BOM_UTF16_LE + text.encode("utf-16-le"), loaded=data))
    add(Case("utf16be_bom", codecs.BOM_UTF16_BE + text.encode("utf-16-be"), loaded=data))
    add(Case("utf16_declared_without_bom", text.encode("utf-16-le"), loaded=data, options={"encoding": "utf-16"}))
    add(Case("utf16le_detected_without_bom", text.encode("utf-16-le"), loaded=data, warning="utf-16-le"))
    add(Case("utf32le_bom", codecs.BOM_UTF32_LE + text.encode("utf-32-le"), loaded=data))
    add(Case("latin1_declared", text.encode("latin-1", "replace"), loaded=_latin1(data), options={"encoding": "latin-1"}))
    euro = [(r[0], r[1], r[2], r[3] + " €") for r in rows(20, seed=31)]
    add(Case("cp1252_declared", csv_text(euro).encode("cp1252", "replace"), loaded=_cp1252(euro), options={"encoding": "cp1252"}))
    add(
        Case(
            "utf16_declared_cut_inside_a_character",
            text.encode("utf-16-le")[:-1],
            options={"encoding": "utf-16-le"},
            refused="encoding",
            status="rejected",
        )
    )
    add(
        Case(
            "gzip_of_utf16",
            gzip.compress(codecs.BOM_UTF16_LE + text.encode("utf-16-le")),
            loaded=data,
            decoded=codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
        )
    )
    data = rows(40, seed=32)
    lines = [line.encode() for line in csv_text(data).splitlines()]
    lines[7] = f"{data[6][0]},Zo".encode() + b"\xeb" + f",{data[6][2]},{data[6][3]}".encode()
    content = b"\n".join(lines) + b"\n"
    add(
        Case(
            "latin1_bytes_in_a_utf8_file",
            content,
            loaded=data[:6] + data[7:],
            bad=[_bad(content, lines[7], 8, "encoding")],
        )
    )
    data = rows(40, seed=33)
    lines = [line.encode() for line in csv_text(data).splitlines()]
    lines[12] = f"{data[11][0]},Nul".encode() + b"\x00" + f"l,{data[11][2]},{data[11][3]}".encode()
    content = b"\n".join(lines) + b"\n"
    add(Case("nul_byte_in_a_record", content, loaded=data[:11] + data[12:], bad=[_bad(content, lines[12], 13, "encoding")]))
    lines_crlf = b"\r\n".join(lines) + b"\r\n"
    add(
        Case(
            "nul_byte_in_a_crlf_record",
            lines_crlf,
            loaded=data[:11] + data[12:],
            bad=[_bad(lines_crlf, lines[12], 13, "encoding")],
        )
    )

    # --- empty files -----------------------------------------------------------------------------
    add(Case("zero_bytes", b"", refused="empty_file", status="rejected"))
    add(Case("whitespace_only", b"  \n\t\n \r\n\n", refused="empty_file", status="rejected"))
    add(Case("header_only", b"id,name,city,amount\n", refused="empty_file", status="rejected"))
    add(Case("header_and_blank_lines", b"id,name,city,amount\n\n\n\n", refused="empty_file", status="rejected"))
    add(Case("utf16_whitespace_only", codecs.BOM_UTF16_LE + " \n \n".encode("utf-16-le"), refused="empty_file", status="rejected"))

    # --- headers ---------------------------------------------------------------------------------
    data = rows(10, seed=40)
    add(Case("duplicate_header", csv_text(data, header=("id", "name", "name", "amount")).encode(), refused="schema", status="rejected"))
    add(Case("blank_header", csv_text(data, header=("id", "", "city", "amount")).encode(), refused="schema", status="rejected"))
    add(Case("case_duplicate_header", csv_text(data, header=("id", "Name", "NAME", "amount")).encode(), refused="schema", status="rejected"))
    add(
        Case(
            "duplicate_header_suffixed_by_option",
            csv_text(data, header=("id", "name", "name", "")).encode(),
            loaded=data,
            options={"header_names": "suffix"},
            columns=("id", "name", "name_2", "column_4"),
        )
    )

    # --- ragged rows, quotes, load policy --------------------------------------------------------
    data = rows(50, seed=50)
    lines = [line.encode() for line in csv_text(data).splitlines()]
    lines[10] = b"11,short"
    lines[30] = b"31,too,many,fields,here"
    content = b"\n".join(lines) + b"\n"
    add(
        Case(
            "ragged_rows_under_the_limit",
            content,
            loaded=data[:9] + data[10:29] + data[30:],
            bad=[_bad(content, lines[10], 11, "schema"), _bad(content, lines[30], 31, "schema")],
            step={"max_rejected_share": 0.05},
        )
    )
    data = rows(100, seed=51)
    lines = [line.encode() for line in csv_text(data).splitlines()]
    ragged = [5, 17, 29, 41, 53, 65, 77]
    for k in ragged:
        lines[k] = f"{k},ragged".encode()
    content = b"\n".join(lines) + b"\n"
    good = [r for j, r in enumerate(data, start=1) if j not in ragged]
    bads = [_bad(content, lines[k], k + 1, "schema") for k in ragged]
    add(Case("ragged_7_percent_all_or_nothing", content, bad=bads, refused="schema", status="rejected"))
    add(Case("ragged_7_percent_partial", content, loaded=good, bad=bads, status="partial", step={"load_policy": "partial"}))
    data = rows(40, seed=52)
    lines = [line.encode() for line in csv_text(data).splitlines()]
    lines[21] = f'{data[20][0]},"never closed,{data[20][2]},{data[20][3]}'.encode()
    content = b"\n".join(lines) + b"\n"
    # The rule: a quote never closed runs to the next quote character; the record is quarantined
    # whole (up to the end of that line), and the parser carries on after it.
    closes = next((k for k in range(22, len(lines)) if b'"' in lines[k]), len(lines) - 1)
    swallowed = b"\n".join(lines[21 : closes + 1])
    add(Case("unclosed_quote_halfway", content, bad=[_bad(content, swallowed, 22, "quoting")], refused="quoting", status="rejected"))
    add(
        Case(
            "unclosed_quote_halfway_partial",
            content,
            loaded=data[:20] + data[closes:],
            bad=[_bad(content, swallowed, 22, "quoting")],
            status="partial",
            step={"load_policy": "partial"},
        )
    )
    plain = [(r[0], "Ann" if '"' in r[1] else r[1], r[2], r[3]) for r in data]
    lines = [line.encode() for line in csv_text(plain).splitlines()]
    lines[25] = f'{plain[24][0]},"never closed,{plain[24][2]},{plain[24][3]}'.encode()
    content = b"\n".join(lines) + b"\n"
    add(
        Case(
            "unclosed_quote_to_the_end_partial",
            content,
            loaded=plain[:24],
            bad=[_bad(content, b"\n".join(lines[25:]), 26, "quoting")],
            status="partial",
            step={"load_policy": "partial"},
        )
    )
    data = rows(45, seed=53)
    last = b'46,"cut off'
    content = csv_text(data).encode() + last
    add(Case("truncated_last_row", content, loaded=data, bad=[_bad(content, last, 47, "quoting")]))

    # --- JSON Lines ------------------------------------------------------------------------------
    data = rows(30, seed=60)
    objs = [json.dumps(dict(zip(HEADER, r, strict=True)), ensure_ascii=False) for r in data]
    jl = ("\n".join(objs) + "\n").encode()
    add(Case("jsonl_clean", jl, loaded=data, fmt="jsonl", filename="d.jsonl"))
    add(Case("jsonl_crlf", ("\r\n".join(objs) + "\r\n").encode(), loaded=data, fmt="jsonl"))
    add(Case("jsonl_gzip", gzip.compress(jl), loaded=data, fmt="jsonl", decoded=jl))
    add(Case("jsonl_utf16_bom", codecs.BOM_UTF16_LE + jl.decode().encode("utf-16-le"), loaded=data, fmt="jsonl"))
    broken = list(objs)
    broken[3] = broken[3][:-1] + ', }'
    broken[9] = broken[9][:-1] + ',"tags": [1, 2,]}'
    broken[15] = "[1, 2]"
    broken[20] = broken[20][:-1]
    content = ("\n".join(broken) + "\n").encode()
    add(
        Case(
            "jsonl_trailing_commas_and_broken_lines",
            content,
            loaded=[r for j, r in enumerate(data) if j not in (3, 9, 15, 20)],
            bad=[_bad(content, broken[j].encode(), j + 1, "json") for j in (3, 9, 15, 20)],
            fmt="jsonl",
            step={"max_rejected_share": 0.2},
        )
    )
    return cases


def _latin1(data: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [tuple(v.encode("latin-1", "replace").decode("latin-1") for v in r) for r in data]


def _cp1252(data: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [tuple(v.encode("cp1252", "replace").decode("cp1252") for v in r) for r in data]


CASES = build()
