"""Input hygiene: what a file is before it is parsed, and the evidence of the records it loses.

``prepare`` turns a file as received into a file both parsers read alike, in
streamed passes of ``CHUNK`` bytes (bounded memory whatever the file's size):

- **compression** by magic bytes, never by name: gzip, zstd, bz2 and a zip
  holding exactly one file are decompressed on the way; a damaged or
  truncated archive is refused with the class ``corrupt_archive``;
- **encoding**: a declared ``encoding`` always wins; else a byte-order mark
  (UTF-8/16/32) decides; else a UTF-16/32 file without a BOM is *detected* by
  its zero bytes (reported as a warning: declare it); else the file is read
  as UTF-8 and a record that is not is quarantined (class ``encoding``) with
  its exact bytes. Latin-1 is never guessed (every byte sequence is latin-1):
  declare it. Any other encoding than UTF-8 is transcoded to UTF-8 here; a
  byte that is not in a declared multi-byte encoding refuses the file
  (``encoding``);
- **line endings**: LF and CRLF files are read as they are; a file whose
  lines end in CR alone, or in a mix of CRLF, LF and CR, has every CRLF and
  every lone CR read as a line end (a line break inside a quoted field of such
  a file becomes LF);
- **NUL bytes**: text cannot hold them on PostgreSQL, so on every engine a
  record holding one is quarantined (class ``encoding``), never loaded;
- **empty files**: 0 bytes, or only whitespace, are refused (``empty_file``);
- **delimiter**: when none is declared, it is sniffed from the first lines
  among ``, TAB ; |`` (a warning names it when it is not a comma).

The checksum (duplicate detection) is of the content after decompression.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import io
import os
import queue
import re
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from atlas.warehouse import newlines
from atlas.warehouse.base import FileFormat, Reject
from atlas.warehouse.filereader import ENCODINGS, IngestError

CHUNK = 1 << 20
HEAD = 64 << 10
SNIFF_LINES = 50
DELIMITERS = (",", "\t", ";", "|")
DELIMITER_NAMES = {",": "comma", "\t": "TAB", ";": "semicolon", "|": "pipe"}
BOMS = (  # longest first: the UTF-32-LE BOM starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bz2"), (b"PK\x03\x04", "zip"))
WHITESPACE = b" \t\r\n\x0b\x0c"

# Row-level reason classes, from the parser's error types.
ROW_CLASSES = {
    "MISSING COLUMNS": "schema",
    "TOO MANY COLUMNS": "schema",
    "CAST": "schema",
    "UNQUOTED VALUE": "quoting",
    "INVALID STATE": "quoting",
    "INVALID ENCODING": "encoding",
    "LINE SIZE OVER MAXIMUM": "line_too_long",
    "INVALID JSON": "json",
}
NUL_REASON = "NUL BYTE: the record holds a NUL byte (0x00), which text cannot carry; it is kept here as bytes."


def row_class(reason: str) -> str:
    for prefix, klass in ROW_CLASSES.items():
        if reason.startswith(prefix):
            return klass
    return "schema"


@dataclass(frozen=True)
class Prepared:
    """A file made ready to parse, and what was learnt on the way."""

    path: str  # what the parser reads: UTF-8, line ends LF or CRLF, NUL records blanked
    evidence: str  # the content as received, decompressed: where quarantined records are read back from
    encoding: str  # the source's encoding (what evidence bytes are in)
    bom: int  # bytes of byte-order mark at the start of the evidence
    any_line_end: bool  # the evidence's lines end in CR, LF or CRLF alike
    options: dict
    nul_lines: tuple[int, ...]
    warnings: tuple[str, ...]
    compression: str | None
    # A compressed file that can take the direct path is not written in the first pass:
    # its loader streams it from the archive again (``Pending``), or writes ``path`` first.
    pending: Pending | None = None


class Pending:
    """The decompressed content of ``archive``, not written to ``target`` yet.

    The first pass learnt its checksum, size and layout without writing it; a loader that
    streams (PostgreSQL's direct COPY) reads ``chunks()``, a second decompression in a
    thread of its own beside the writer, as ``gzip -dc file | COPY`` runs; anything that
    needs the file on disk (DuckDB's reader, the evidence of a rejected record) calls
    ``write()``. Either pass checks that the content is still what the first one hashed.
    """

    def __init__(self, archive: str, kind: str, label: str, target: str, checksum: str, size: int, head: bytes) -> None:
        self.archive, self.kind, self.label, self.target = archive, kind, label, target
        self.checksum, self.size, self.head = checksum, size, head
        self.written = False

    def chunks(self) -> Iterator[bytes]:
        import hashlib

        digest, size = hashlib.sha256(), 0
        inner = _decompressed(self.archive, self.kind, self.label)
        try:
            for chunk in inner:
                digest.update(chunk)
                size += len(chunk)
                yield chunk
        finally:
            inner.close()  # type: ignore[attr-defined]
        if size != self.size or digest.hexdigest() != self.checksum:
            raise IngestError(
                f"{self.label}: the {self.kind} archive changed while it was loaded (its content is no longer"
                f" the {self.size} bytes with sha256 {self.checksum[:12]}… read first); load it again.",
                "source",
            )

    def write(self) -> None:
        if self.written:
            return
        with open(self.target, "wb") as out:
            for chunk in self.chunks():
                out.write(chunk)
        self.written = True


def compression_of(head: bytes) -> str | None:
    return next((name for magic, name in MAGIC if head.startswith(magic)), None)


AHEAD = 4  # decompressed chunks a decompressor thread may hold ready (bounded memory)


def _ahead(chunks: Iterator[bytes], depth: int = AHEAD) -> Iterator[bytes]:
    """``chunks`` produced in a thread of their own, up to ``depth`` ahead of the consumer.

    zlib, bz2 and zstd release the GIL while they inflate, so the decompression runs beside
    the consumer's checksum, scan and write instead of in turn with them, as ``gzip -dc |``
    does in its own process. Errors reach the consumer in order; a consumer that stops early
    stops the thread.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        ready.put((chunk, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            item = (done, None)
        except BaseException as exc:  # handed to the consumer, raised there
            item = (None, exc)
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=produce, name="atlas-decompress", daemon=True)
    worker.start()
    try:
        while True:
            chunk, exc = ready.get()
            if exc is not None:
                raise exc
            if chunk is done:
                return
            yield chunk
    finally:
        stop.set()
        worker.join()
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _decompressed(path: str, kind: str | None, label: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """The file's content in chunks, decompressed (in a thread: ``_ahead``); a damaged archive is ``corrupt_archive``."""
    if kind is None:
        return _read(path, kind, label, chunk_size)
    return _ahead(_read(path, kind, label, chunk_size))


def _gzip_inflater() -> Callable[..., Any]:
    """ISA-L's inflater (``isal``: the same output as zlib's, in about 40 % of its CPU time), else zlib's.

    Inflating is most of the Python side's work on a gzip source: with ISA-L a gzip file
    costs little more to load than the plain file (``benchmarks/results/ingest.md``).
    """
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - a dependency; zlib is the same format, only slower
        return zlib.decompressobj
    return isal_zlib.decompressobj


def _inflate_error(exc: BaseException) -> bool:
    """Whether ``exc`` is ISA-L's word for a damaged stream (imported only when one is raised)."""
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, isal_zlib.error)


def _read(path: str, kind: str | None, label: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
    try:
        if kind is None:
            with open(path, "rb") as fh:
                while chunk := fh.read(chunk_size):
                    yield chunk
            return
        if kind == "gzip":
            # An inflater directly: members concatenated (as ``cat a.gz b.gz`` makes) are read in turn.
            inflater = _gzip_inflater()
            with open(path, "rb") as fh:
                d = inflater(wbits=31)
                while chunk := fh.read(CHUNK):
                    while chunk:
                        # At most CHUNK out per call (the rest waits in unconsumed_tail): memory stays
                        # bounded however well the file compresses.
                        out = d.decompress(chunk, CHUNK)
                        if out:
                            yield out
                        if d.eof:  # a member ends (its unconsumed_tail is stale then): the next one, if any
                            chunk = d.unused_data
                            d = inflater(wbits=31) if chunk else d
                        else:
                            chunk = d.unconsumed_tail
                if tail := d.flush():  # output zlib still held when the input ran out
                    yield tail
                if not d.eof:
                    raise EOFError("the archive ends before its end marker (truncated)")
            return
        if kind == "bz2":
            with bz2.open(path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk
            return
        if kind == "zstd":
            try:
                import zstandard
            except ImportError as exc:  # pragma: no cover - a dependency of the project
                raise IngestError(f"{label}: a zstd file needs the zstandard package.", "corrupt_archive") from exc
            with open(path, "rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True) as r:
                while chunk := r.read(CHUNK):
                    yield chunk
            return
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise IngestError(
                    f"{label}: a zip archive must hold exactly one file; this one holds {len(members)}.",
                    "corrupt_archive",
                )
            with zf.open(members[0]) as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk
    except IngestError:
        raise
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, ValueError) as exc:
        raise IngestError(f"{label}: the {kind} archive is damaged or truncated ({exc}).", "corrupt_archive") from exc
    except Exception as exc:  # zstandard.ZstdError and the like
        if kind == "zstd" or (kind == "gzip" and _inflate_error(exc)):
            raise IngestError(f"{label}: the {kind} archive is damaged or truncated ({exc}).", "corrupt_archive") from exc
        raise


def _wide_encoding(head: bytes) -> str | None:
    """UTF-16/32 without a BOM, told by where its zero bytes fall (ASCII text in a wide encoding)."""
    sample = head[: len(head) - len(head) % 4]
    if len(sample) < 8:
        return None
    zero = [sum(1 for b in sample[i::4] if b == 0) / (len(sample) / 4) for i in range(4)]
    if zero[1] > 0.9 and zero[2] > 0.9 and zero[3] > 0.9 and zero[0] < 0.1:
        return "utf-32-le"
    if zero[0] > 0.9 and zero[1] > 0.9 and zero[2] > 0.9 and zero[3] < 0.1:
        return "utf-32-be"
    if zero[1] > 0.7 and zero[3] > 0.7 and zero[0] < 0.1 and zero[2] < 0.1:
        return "utf-16-le"
    if zero[0] > 0.7 and zero[2] > 0.7 and zero[1] < 0.1 and zero[3] < 0.1:
        return "utf-16-be"
    return None


def choose_encoding(head: bytes, declared: str | None, label: str) -> tuple[str, int, str | None]:
    """(encoding, BOM length, warning): the declared one wins, then a BOM, then detection, then UTF-8."""
    bom = next(((mark, enc) for mark, enc in BOMS if head.startswith(mark)), None)
    if declared:
        enc = ENCODINGS.get(str(declared).lower())
        if enc is None:
            raise IngestError(
                f"Unsupported encoding {declared!r}; use one of: {', '.join(sorted(set(ENCODINGS.values())))}.",
                "encoding",
            )
        if enc in ("utf-16", "utf-32"):  # the BOM says which byte order; none: little-endian
            if bom and bom[1].startswith(enc):
                return bom[1], len(bom[0]), None
            return enc + "-le", 0, None
        return enc, len(bom[0]) if bom and bom[1] == enc else 0, None
    if bom:
        return bom[1], len(bom[0]), None
    wide = _wide_encoding(head)
    if wide:
        return wide, 0, f"{label}: no encoding declared; detected {wide} from its zero bytes (declare it to be sure)."
    return "utf-8", 0, None


@dataclass
class _Stats:
    crlf: int = 0
    lone_cr: int = 0
    lf: int = 0
    nul: bool = False
    text: bool = False  # a byte that is not whitespace
    pending_cr: bool = False

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.pending_cr:
            if chunk[:1] == b"\n":
                self.crlf += 1
                self.lf -= 1  # counted below as an LF
            else:
                self.lone_cr += 1
        self.pending_cr = False
        self.lf += newlines.count(chunk)  # found once for every reader of the chunk
        if b"\r" in chunk:
            crlf = chunk.count(b"\r\n")
            cr = chunk.count(b"\r")
            self.crlf += crlf
            if chunk.endswith(b"\r"):
                self.pending_cr = True
                cr -= 1
            self.lone_cr += cr - crlf
        if not self.nul and b"\x00" in chunk:
            self.nul = True
        if not self.text and chunk.strip(WHITESPACE):
            self.text = True

    def finish(self) -> None:
        if self.pending_cr:
            self.lone_cr += 1
            self.pending_cr = False

    @property
    def mixed(self) -> bool:
        return self.lone_cr > 0 or (self.crlf > 0 and self.lf - self.crlf > 0)


def _decode(chunks: Iterator[bytes], encoding: str, bom: int, label: str) -> Iterator[bytes]:
    """``chunks`` in ``encoding`` as UTF-8 (the BOM dropped); a byte not in the encoding refuses the file."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    done, skip = 0, bom
    for chunk in chunks:
        if skip:
            cut = min(skip, len(chunk))
            chunk, skip = chunk[cut:], skip - cut
            done += cut
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise IngestError(
                f"{label}: byte {done + exc.start} is not valid {encoding} ({exc.reason}); check the declared encoding.",
                "encoding",
            ) from exc
        done += len(chunk)
        if text:
            yield text.encode("utf-8", "surrogatepass")
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise IngestError(f"{label}: the file ends inside a {encoding} character.", "encoding") from exc
    if tail:
        yield tail.encode("utf-8")


class _LineEnds:
    """Rewrites line ends to LF outside quoted fields, chunk by chunk (a quoted CR or CRLF is data)."""

    def __init__(self, quote: bytes) -> None:
        self.in_quote = False
        self.quote = quote
        self.pattern = re.compile(rb"\r\n|\r|\n" + (b"|" + re.escape(quote) if quote else b""))

    def __call__(self, data: bytes) -> bytes:
        out: list[bytes] = []
        last = 0
        for m in self.pattern.finditer(data):
            token = m.group()
            if self.quote and token == self.quote:
                self.in_quote = not self.in_quote
                continue
            if self.in_quote or token == b"\n":
                continue
            out.append(data[last : m.start()])
            out.append(b"\n")
            last = m.end()
        out.append(data[last:])
        return b"".join(out)


def _rewritten(fh: Any, line_ends: bool, quote: bytes) -> Iterator[bytes]:
    rewrite = _LineEnds(quote)
    carry = b""
    while chunk := fh.read(CHUNK):
        data, carry = carry + chunk, b""
        if line_ends:
            if data.endswith(b"\r"):
                carry, data = b"\r", data[:-1]  # maybe the CR of a CRLF the chunk cut
            data = rewrite(data)
        yield data
    if carry:
        yield rewrite(carry)


def _blank_nul_lines(block: bytes, first_line: int, found: list[int]) -> bytes:
    if b"\x00" not in block:
        return block
    lines = block.split(b"\n")
    for i, text in enumerate(lines):
        if b"\x00" in text:
            found.append(first_line + i)
            lines[i] = b"\r" if text.endswith(b"\r") else b""  # a CRLF file stays CRLF
    return b"\n".join(lines)


def _normalise(src: str, dst: str, *, line_ends: bool, header: bool, quote: bytes) -> tuple[int, ...]:
    """Copy ``src`` to ``dst``: line ends to LF (``line_ends``), lines holding NUL blanked; their numbers."""
    nul_lines: list[int] = []
    line = 0
    pending = b""
    with open(src, "rb") as fh, open(dst, "wb") as out:
        for data in _rewritten(fh, line_ends, quote):
            data = pending + data
            cut = data.rfind(b"\n") + 1
            block, pending = data[:cut], data[cut:]
            out.write(_blank_nul_lines(block, line + 1, nul_lines))
            line += block.count(b"\n")
        out.write(_blank_nul_lines(pending, line + 1, nul_lines))
    if header and nul_lines[:1] == [1]:
        raise IngestError(f"{src}: the header line holds a NUL byte (0x00).", "encoding")
    return tuple(nul_lines)


def sniff_delimiter(head: str, quote: str | None) -> str | None:
    """The delimiter that splits the first lines into the same number (> 1) of fields, or None."""
    lines = [ln for ln in head.splitlines()[:SNIFF_LINES] if ln.strip()]
    if len(head.splitlines()) > SNIFF_LINES or not head.endswith("\n"):
        lines = lines[:-1] or lines  # the last line of a cut head may be partial
    if not lines:
        return None
    best, best_score = None, 0.0
    for delim in DELIMITERS:
        try:
            counts = [len(r) for r in csv.reader(io.StringIO("\n".join(lines)), delimiter=delim, quotechar=quote or None)]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        score = sum(1 for c in counts if c == counts[0]) / len(counts)
        if score > best_score + 1e-9:
            best, best_score = delim, score
    return best if best_score >= 0.8 else None


def prepare(
    path: str,
    label: str,
    fmt: FileFormat,
    options: dict,
    tmpdir: str,
    scan_factory: Callable[[bytes | None], Any],
    chunk_size: int = CHUNK,
    *,
    lazy: bool = False,
    pipe: Any = None,
) -> tuple[Prepared, Any, str]:
    """The file ``path`` made ready to parse (see the module's docstring), its content scan and checksum.

    ``scan_factory(quote)`` returns a fresh ``ContentScan``; the scan returned is of the
    file the parser reads, the checksum that of the content as received (decompressed).
    ``lazy`` (the loader streams files: ``features.streamed_files``): a compressed UTF-8 CSV
    whose layout lets it take the direct path is not written here (``Prepared.pending``).
    ``pipe`` (``atlas.warehouse.pgcopy.Pipe``): a UTF-8 CSV's content is also fed to it as it
    is read, for a load decided once the pass is complete; aborted here when hygiene must
    rewrite the file (transcoded, line ends, NUL) or refuses it.
    """
    try:
        return _prepare(path, label, fmt, options, tmpdir, scan_factory, chunk_size, lazy=lazy, pipe=pipe)
    except BaseException:
        if pipe is not None:
            pipe.abort()
        raise


def _prepare(
    path: str,
    label: str,
    fmt: FileFormat,
    options: dict,
    tmpdir: str,
    scan_factory: Callable[[bytes | None], Any],
    chunk_size: int,
    *,
    lazy: bool,
    pipe: Any,
) -> tuple[Prepared, Any, str]:
    options = dict(options)
    warnings: list[str] = []
    with open(path, "rb") as fh:
        raw_head = fh.read(HEAD)
    if not raw_head:
        raise IngestError(f"{label}: the file is empty (0 bytes).", "empty_file")
    kind = compression_of(raw_head) if fmt is not FileFormat.PARQUET else None
    stem = os.path.join(tmpdir, f"h{abs(hash((path, label))) & 0xFFFFFFFF:x}")

    if fmt is FileFormat.PARQUET:
        scan = scan_factory(None)
        with open(path, "rb") as fh:
            while chunk := fh.read(chunk_size):
                scan.feed(chunk)
        scan.finish()
        return Prepared(path, path, "utf-8", 0, False, options, (), (), None), scan, scan.checksum

    chunks = _decompressed(path, kind, label, chunk_size)
    first = next(chunks, b"")
    if kind and not first:
        raise IngestError(f"{label}: the {kind} archive holds an empty file.", "empty_file")
    encoding, bom, warning = choose_encoding(first[:HEAD], options.get("encoding"), label)
    if warning:
        warnings.append(warning)

    def content() -> Iterator[bytes]:
        yield first
        yield from chunks

    stats = _Stats()
    transcode = encoding != "utf-8"
    if pipe is not None and (
        transcode
        or fmt is not FileFormat.CSV
        or (kind is None and not pipe.plain)
        or not _pipe_start(pipe, first[:HEAD], options)
    ):
        pipe = None  # not fed: the loader reads the file as before
    feed = pipe.feed if pipe is not None else None
    lazy = lazy and kind is not None and not transcode and fmt is FileFormat.CSV
    head = bytearray()  # the first bytes of the content (what the delimiter is sniffed from, when lazy)
    quote_byte = _quote_byte(fmt, options)
    # The checksum is of the content as received; the layout of the file the parser reads.
    checksum_scan = scan_factory(quote_byte)
    scan = checksum_scan
    evidence = path
    if kind is None and not transcode:
        for chunk in content():
            if feed is not None:
                feed(chunk)
            stats.feed(chunk)
            checksum_scan.feed(chunk)
        parse_path = path
    else:
        evidence = stem + ".raw" if kind and transcode else (stem + ".utf8" if kind else path)
        parse_path = stem + ".utf8"
        scan = scan_factory(quote_byte) if transcode else checksum_scan
        ev = open(evidence, "wb") if kind and transcode else None  # noqa: SIM115 - closed below
        try:
            with contextlib.nullcontext(None) if lazy else open(parse_path, "wb") as out:

                def received() -> Iterator[bytes]:
                    for chunk in content():
                        checksum_scan.feed(chunk)
                        if ev is not None:
                            ev.write(chunk)
                        yield chunk

                stream = _decode(received(), encoding, bom, label) if transcode else received()
                for chunk in stream:
                    if feed is not None:
                        feed(chunk)
                    stats.feed(chunk)
                    if transcode:
                        scan.feed(chunk)
                    if out is not None:
                        out.write(chunk)
                    elif len(head) < HEAD:
                        head += chunk[: HEAD - len(head)]
        finally:
            if ev is not None:
                ev.close()
    stats.finish()
    checksum_scan.finish()
    scan.finish()
    if pipe is not None:
        if stats.mixed or stats.nul:
            pipe.abort()  # the parser reads a rewritten file
        else:
            pipe.end_of_data()
    pending = None
    if lazy:
        pending = Pending(path, kind, label, parse_path, checksum_scan.checksum, checksum_scan.size, bytes(head))  # type: ignore[arg-type]
        direct = not (stats.mixed or stats.nul or scan.long_lines) and (not scan.quoted or scan.quotes_simple)
        if not direct:  # parsed from disk: written now (decompressed a second time)
            pending.write()
            pending = None
    if not stats.text:
        raise IngestError(f"{label}: the file holds only whitespace ({checksum_scan.size} bytes).", "empty_file")
    if transcode:
        options["encoding"] = "utf-8"

    nul_lines: tuple[int, ...] = ()
    header = fmt is FileFormat.CSV and bool(options.get("header", True))
    if stats.mixed or stats.nul:
        fixed = stem + ".norm"
        nul_lines = _normalise(parse_path, fixed, line_ends=stats.mixed, header=header, quote=quote_byte or b"")
        if parse_path not in (path, evidence):
            os.unlink(parse_path)
        parse_path = fixed
        scan = scan_factory(quote_byte)
        with open(parse_path, "rb") as fh:
            while chunk := fh.read(chunk_size):
                scan.feed(chunk)
        scan.finish()

    if fmt is FileFormat.CSV and not options.get("delimiter"):
        if pending is not None:
            text = pending.head.decode("utf-8", "replace")
        else:
            with open(parse_path, "rb") as fh:
                text = fh.read(HEAD).decode("utf-8", "replace")
        quote = options.get("quote") if options.get("quote") is not None else '"'
        found = sniff_delimiter(text.lstrip("\ufeff"), quote)
        options["delimiter"] = found or ","
        if getattr(scan, "delimiter", b",") != options["delimiter"].encode("utf-8"):
            scan.quotes_simple = False  # checked against another delimiter: the direct path is not proven
            if pending is not None and scan.quoted:
                pending.write()
                pending = None
        if found and found != ",":
            warnings.append(
                f"{label}: no delimiter declared; the first lines are split by {DELIMITER_NAMES[found]}"
                " (sniffed; declare `delimiter` to be sure)."
            )
    return (
        Prepared(
            parse_path, evidence, encoding, bom, stats.mixed, options, nul_lines, tuple(warnings), kind, pending
        ),
        scan,
        checksum_scan.checksum,
    )


def _pipe_start(pipe: Any, head: bytes, options: dict) -> bool:
    """Open ``pipe`` with the options the file will be parsed with: the delimiter sniffed from ``head`` as below."""
    early = dict(options)
    if not early.get("delimiter"):
        quote = early.get("quote") if early.get("quote") is not None else '"'
        early["delimiter"] = sniff_delimiter(head.decode("utf-8", "replace").lstrip("\ufeff"), quote) or ","
    return bool(pipe.start(head, early))


def _quote_byte(fmt: FileFormat, options: dict) -> bytes | None:
    if fmt is not FileFormat.CSV:
        return None
    quote = str(options.get("quote") if options.get("quote") is not None else '"').encode("utf-8")
    return quote if len(quote) == 1 else None


# --- evidence: the exact bytes of the records the parser refused ---------------------------------


@dataclass
class Evidence:
    line: int | None
    offset: int | None
    raw: bytes | None
    lines: int  # physical lines the record spans (an unclosed quote can span the rest of the file)


_ANY_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)")


def _physical_lines(path: str, any_line_end: bool) -> Iterator[tuple[int, bytes]]:
    """(offset, line bytes with its line end) of every physical line of ``path``."""
    offset = 0
    carry = b""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            data = carry + chunk
            if not chunk:
                if data:
                    yield offset, data
                return
            if any_line_end:
                parts = _ANY_LINE.findall(data)
                cut = sum(len(p) for p in parts)
                if parts and parts[-1].endswith(b"\r"):  # maybe the CR of a CRLF the chunk cut
                    cut -= len(parts.pop())
            else:
                cut = data.rfind(b"\n") + 1
                parts = [p + b"\n" for p in data[:cut].split(b"\n")[:-1]] if cut else []
            carry = data[cut:]
            for p in parts:
                yield offset, p
                offset += len(p)


def _without_line_end(raw: bytes) -> bytes:
    if raw.endswith(b"\r\n"):
        return raw[:-2]
    return raw[:-1] if raw.endswith((b"\n", b"\r")) else raw


def _span(reject: Reject) -> int | None:
    """Physical lines the parser took for a rejected record, from the text it reported (None: unknown)."""
    if reject.raw is None or reject.reason_class == "encoding" and "NUL" in reject.reason:
        return None
    return reject.raw.rstrip("\r\n").count("\n") + 1


def evidence(prepared: Prepared, rejects: list[Reject], *, quote: str | None, header: bool, max_bytes: int) -> dict[int, Evidence]:
    """The exact bytes and byte offset of each rejected line (the parser's line numbers), in one pass.

    The parser numbers records (a quoted field can hold line breaks): the physical lines of
    a good record are grouped by quote parity, as RFC 4180 quoting reads them; a rejected
    record takes as many lines as the parser's own text of it holds (a quote never closed
    runs until the parser can resynchronise, which parity alone cannot tell).
    Offsets and bytes are those of the content as received (decompressed, in its encoding);
    a record's bytes are kept without its final line end, up to ``max_bytes``.
    """
    spans = {r.line: _span(r) for r in rejects if r.line is not None}
    if not spans:
        return {}
    if prepared.pending is not None:
        prepared.pending.write()  # read back from disk
    found: dict[int, Evidence] = {}
    q = quote.encode("utf-8") if quote else b""
    transcoded = prepared.encoding != "utf-8"
    source = prepared.path if transcoded else prepared.evidence
    any_end = prepared.any_line_end and not transcoded
    last = max(spans)
    record, in_quote = 0, False
    current: Evidence | None = None
    left = 0  # lines the current rejected record still takes (0: ends by parity)
    offset_out = prepared.bom  # offsets in the source's own encoding

    def close(ev: Evidence) -> None:
        raw = _without_line_end(ev.raw or b"")
        if transcoded:
            raw = raw.decode("utf-8", "surrogatepass").encode(prepared.encoding, "surrogatepass")
        ev.raw = raw[:max_bytes]
        found[ev.line] = ev  # type: ignore[index]

    for offset, text in _physical_lines(source, any_end):
        if left <= 0 and not in_quote:
            record += 1
            in_quote = False
            if current is not None:
                close(current)
                current = None
            if record > last:
                break
            if record in spans:
                current = Evidence(record, offset_out if transcoded else offset, b"", 0)
                left = spans[record] or 0
        if current is not None:
            if len(current.raw) < max_bytes * 4 + 8:  # type: ignore[arg-type]
                current.raw += text  # type: ignore[operator]
            current.lines += 1
        if transcoded:
            offset_out += len(text.decode("utf-8", "surrogatepass").encode(prepared.encoding, "surrogatepass"))
        if left > 0:
            left -= 1
            in_quote = False  # the parser starts afresh after a record it refused
        elif q and q in text:
            in_quote = in_quote ^ (text.count(q) % 2 == 1)
    if current is not None:
        close(current)
    return found
