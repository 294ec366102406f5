"""Turn a Source into local files to load: a glob, an upload, an HTTP download, a query export.

Everything is streamed in fixed-size chunks, and each file's content checksum
(SHA-256) is computed on the way, so a file already loaded can be skipped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import urllib3
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation

from atlas.warehouse import mysqlsource, newlines, registry
from atlas.warehouse.base import FileFormat, FileLayout, StreamedFile
from atlas.warehouse.filereader import IngestError

from . import credentials, httpapi, hygiene, netguard, objectstore, watermarks
from .confinement import ConfinementError, confined_file, resolve_files
from .credentials import safe_url
from .hygiene import Prepared
from .models import Source
from .watermarks import Incremental

CHUNK = 1 << 20


@dataclass(frozen=True)
class LongLine:
    line: int  # 1-based physical line number
    offset: int  # byte offset of its first byte
    length: int


@dataclass(frozen=True)
class SourceFile:
    path: str
    label: str  # what the operator recognises: the path, the URL, the query's source
    checksum: str
    size: int
    format: FileFormat
    long_lines: tuple[LongLine, ...] = ()
    layout: FileLayout | None = None
    prepared: Prepared | None = None  # input hygiene (pipelines/hygiene.py): what the parser reads, and how
    refused: IngestError | None = None  # the file cannot be read at all (its batch is refused with the class)
    pipe: Any = None  # a load fed while the file was read (``atlas.warehouse.pgcopy.Pipe``), not decided yet

    @property
    def parse_path(self) -> str:
        """The file the parser reads (not written yet when ``stream`` is set)."""
        return self.prepared.path if self.prepared else self.path

    @property
    def stream(self) -> StreamedFile | None:
        """The content to stream to the loader when ``parse_path`` is not written (``hygiene.Pending``)."""
        pending = self.prepared.pending if self.prepared else None
        if pending is None or pending.written:
            return None
        return StreamedFile(head=pending.head, chunks=pending.chunks, materialise=pending.write)

    def reader_options(self, options: dict) -> dict:
        """The source's reader options with what hygiene settled (encoding transcoded, delimiter sniffed)."""
        return {**options, **self.prepared.options} if self.prepared else options


class ContentScan:
    """One pass over the bytes: the SHA-256 checksum, and the lines too long to parse.

    Lines longer than the parser's maximum must never vanish silently (DuckDB
    drops a line that outgrows its read buffer without reporting it), so they
    are found here, where every byte passes anyway. ``CHUNK`` is smaller than
    the maximum line, so a too-long line always crosses a chunk boundary and
    only chunk edges need looking at: O(1) Python work per MiB.

    On the way it also notes the file's layout (see ``FileLayout``): a line
    start per chunk with the lines before it and, for CSV, whether the file
    holds a quote byte — what a loader needs to split the file into parts it
    can load side by side with exact row numbers.

    It is on the path of every load, so it is kept cheap: SHA-256 is hashed
    in line (about 1 ms per MiB with the CPU's SHA extensions; a thread per
    chunk cost more in hand-offs than it saved, several ms per chunk on a busy
    machine), newlines are counted by numpy (several times ``bytes.count``'s
    speed) and quotes checked by numpy too (``simple_quotes``).
    """

    def __init__(self, max_line_bytes: int, quote: bytes | None = None, delimiter: bytes = b",") -> None:
        assert max_line_bytes > CHUNK
        self.max = max_line_bytes
        self.digest = hashlib.sha256()
        self.size = 0
        self.newlines = 0
        self.line_start = 0  # offset where the current line began
        self.long_lines: list[LongLine] = []
        self.line_starts: list[tuple[int, int]] = []
        self.quote = quote or None
        self.quoted = False
        # Every quote in the file simple (``simple_quotes``)? Then COPY reads it as DuckDB does.
        self.delimiter = delimiter
        self.quotes_simple = True
        self._line_tail = b""

    def feed(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        if self.quote:
            if not self.quoted:
                self.quoted = self.quote in chunk
            if self.quoted and self.quotes_simple:
                self._check_quotes(chunk)
        first = chunk.find(b"\n")
        if first >= 0:
            end = self.size + first
            if end - self.line_start > self.max:
                self.long_lines.append(LongLine(self.newlines + 1, self.line_start, end - self.line_start))
            self.newlines += newlines.count(chunk)  # found once for every reader of the chunk
            self.line_start = self.size + chunk.rfind(b"\n") + 1
            self.line_starts.append((self.line_start, self.newlines))
        self.size += len(chunk)

    def _check_quotes(self, chunk: bytes) -> None:
        """Keep ``quotes_simple`` up to date over the whole lines seen so far (a line cut by the chunk waits)."""
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self._line_tail += chunk
            if len(self._line_tail) > self.max:
                self.quotes_simple = False
            return
        # Two blocks of whole lines, checked apart (quotes pair up within a line): the line
        # the chunk completes, and the chunk's own whole lines, read in place (no copy), with
        # the newline offsets every reader of the chunk shares.
        first = chunk.find(b"\n")
        line = self._line_tail + chunk[: first + 1]
        self._line_tail = chunk[cut + 1 :]
        quote, delimiter = self.quote, self.delimiter
        if quote in line and not simple_quotes(line, quote, delimiter):  # type: ignore[arg-type,operator]
            self.quotes_simple = False
        elif cut > first and quote in chunk:  # type: ignore[operator]
            body = memoryview(chunk)[first + 1 : cut + 1]
            ends = newlines.positions(chunk)[1:] - (first + 1)
            self.quotes_simple = simple_quotes(body, quote, delimiter, ends)  # type: ignore[arg-type]

    def finish(self) -> None:
        if self.quote and self.quoted and self.quotes_simple and self._line_tail:
            self.quotes_simple = simple_quotes(self._line_tail + b"\n", self.quote, self.delimiter)
            self._line_tail = b""
        if self.size - self.line_start > self.max:
            self.long_lines.append(LongLine(self.newlines + 1, self.line_start, self.size - self.line_start))

    @property
    def checksum(self) -> str:
        return self.digest.hexdigest()

    @property
    def layout(self) -> FileLayout:
        return FileLayout(
            size=self.size,
            newlines=self.newlines,
            ends_with_newline=self.line_start == self.size,
            line_starts=tuple(m for m in self.line_starts if m[0] < self.size),
            quoted=self.quoted if self.quote else None,
            quotes_simple=bool(self.quote) and self.quoted and self.quotes_simple,
            long_lines=len(self.long_lines),
        )

    def source_file(self, path: str, label: str, fmt: FileFormat) -> SourceFile:
        self.finish()
        return SourceFile(path, label, self.checksum, self.size, fmt, tuple(self.long_lines), self.layout)


def simple_quotes(block: bytes | memoryview, quote: bytes, delimiter: bytes, line_ends: Any = None) -> bool:
    """Whether every quote in ``block`` (whole lines) opens or closes a whole field, in pairs on one line.

    ``"a, b",c,""`` is simple; a doubled quote inside a field (``"say ""hi"" now"``), a quote inside
    an unquoted field (``ab"c``), a quoted field spanning lines or a space next to a quote are not.
    In a file whose quotes are all simple, records are lines and PostgreSQL's COPY reads every
    field exactly as DuckDB's reader does (an empty quoted field is NULL to both, with
    ``FORCE_NULL``), so it can take the direct path. Vectorised: a few numpy passes per chunk.
    ``line_ends``: the offsets of ``block``'s newlines, when the caller has them (``newlines``).
    """
    import numpy as np

    a = np.frombuffer(block, dtype=np.uint8)
    q = np.flatnonzero(a == quote[0])
    if len(q) % 2:
        return False
    if not len(q):
        return True
    opens, closes = q[0::2], q[1::2]
    if closes[-1] + 1 >= len(a):
        return False  # the block ends with a closing quote: no line end after it
    # The byte before each opening quote (the first quote of the block may open at offset 0).
    inner = opens[1:] if opens[0] == 0 else opens
    before = a[inner - 1]
    starts_field = (before == delimiter[0]) | (before == 10)
    after = a[closes + 1]
    ends_field = (after == delimiter[0]) | (after == 10) | (after == 13)
    if not (starts_field.all() and ends_field.all()):
        return False
    # A pair spans no line end <=> an even number of quotes lies before every newline (quotes
    # alternate open, close): one search per newline, not two per quote.
    if line_ends is None:
        line_ends = np.flatnonzero(a == 10)
    return not (np.searchsorted(q, line_ends) & 1).any()


def _max_line() -> int:
    return settings.ATLAS_INGEST_MAX_LINE_BYTES


def _delimiter(options: dict) -> bytes:
    delimiter = str(options.get("delimiter") or ",").encode("utf-8")
    return delimiter if len(delimiter) == 1 else b"\x00"


def _local(
    path: str, label: str, fmt: FileFormat, options: dict, tmp: str, lazy: bool = False, pipes: Pipes | None = None
) -> SourceFile:
    """One file as received, made ready to parse (``hygiene.prepare``): one streamed pass, two if rewritten.

    A file hygiene refuses (empty, damaged archive, bad encoding) comes back with ``refused``
    set, so that its own batch records why, while the other files of the source still load.
    ``lazy``: the loader streams files (see ``hygiene.prepare``); ``pipes(label)``: a pipe to feed the
    file's content to while it is read, or None.
    """
    pipe = pipes(label) if pipes is not None and fmt is FileFormat.CSV else None
    try:
        prepared, scan, checksum = hygiene.prepare(
            path, label, fmt, options, tmp, lambda quote: ContentScan(_max_line(), quote, _delimiter(options)), CHUNK,
            lazy=lazy, pipe=pipe,
        )
    except IngestError as exc:
        raw = ContentScan(_max_line())
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                raw.feed(chunk)
        raw.finish()
        return SourceFile(path, label, raw.checksum, raw.size, fmt, refused=exc)
    return SourceFile(
        path, label, checksum, scan.size, fmt, tuple(scan.long_lines), scan.layout, prepared,
        pipe=pipe if pipe is not None and pipe.started else None,
    )


def _tmpdir() -> str:
    base = Path(settings.VAR_DIR) / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    # The pid in the name: the janitor (``pipelines.attempts``) removes the directory of a process that is gone.
    return tempfile.mkdtemp(prefix=f"atlas-src-{os.getpid()}-", dir=base)


Pipes = Callable[[str], Any]


class LazyFiles:
    """Files prepared one at a time as they are iterated (each one's pipe is fed as it is read),
    whose number and size are known before: a run shows "file 2 of 5" from the start."""

    def __init__(self, files: Iterator, found: list[tuple[str, str]]) -> None:
        self._files, self._found = files, found

    def __iter__(self) -> Iterator:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._found)

    @property
    def total_bytes(self) -> int:
        return sum(os.path.getsize(real) for _shown, real in self._found)


@contextmanager
def source_files(
    source: Source, incremental: Incremental | None = None, *, streamed: bool = False, pipes: Pipes | None = None
) -> Iterator[Iterable[SourceFile]]:
    """The files behind ``source``, each with its checksum; temporary copies are removed after.

    ``streamed``: the loader takes a compressed file's content as a stream (``features.streamed_files``),
    so a compressed file that can take the direct path is not written decompressed first.
    ``pipes(label)``: a pipe (``atlas.warehouse.pgcopy.Pipe``) each local file's content is fed to
    while it is read (None: not this file); files are then made ready one at a time, as the caller
    takes them, so that one pipe at most is open.

    Object storage sources yield their objects lazily, one fetched at a time (the one before
    removed), so local disk holds one object whatever the bucket's size.

    ``incremental``: a SQL source read by its watermark (``pipelines.watermarks``): only the new rows,
    no file at all when there is none.
    """
    fmt = FileFormat(source.format)
    options = source.reader_options()
    tmp = _tmpdir()
    try:
        if source.kind == Source.Kind.PATH:
            try:
                found = resolve_files(source.location)  # confined to ATLAS_DATA_ROOTS, links resolved
            except ConfinementError as exc:
                raise IngestError(str(exc)) from exc
            ready = (_local(real, shown, fmt, options, tmp, streamed, pipes) for shown, real in found)
            yield LazyFiles(ready, found) if pipes is not None else list(ready)
        elif source.kind == Source.Kind.UPLOAD:
            try:
                if not source.upload or not os.path.isfile(source.upload.path):
                    raise IngestError(f"The uploaded file of source {source.name!r} is missing.")
                path = confined_file(source.upload.path, settings.MEDIA_ROOT, "MEDIA_ROOT")
            except (ConfinementError, SuspiciousFileOperation) as exc:
                raise IngestError(f"The uploaded file of source {source.name!r} is refused: {exc}") from exc
            yield [_local(path, source.upload.name, fmt, options, tmp, streamed, pipes)]
        elif source.kind == Source.Kind.URL:
            yield [_download(source, tmp, fmt, options, streamed, pipes)]
        elif source.kind == Source.Kind.S3:
            yield _objects(source, tmp, fmt, options, streamed, pipes)
        elif source.kind == Source.Kind.API:
            fetched = _api_records(source, tmp, options)
            yield [fetched] if fetched is not None else []
        else:
            exported = _export_query(source, tmp, incremental)
            yield [exported] if exported is not None else []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# What a failed fetch means, by exception class (its text may quote secret parameters).
FETCH_FAILURES = {
    "NewConnectionError": "could not connect",
    "ConnectTimeoutError": "timed out connecting",
    "ReadTimeoutError": "timed out reading",
    "SSLError": "TLS certificate or handshake refused",
    "ProtocolError": "the connection broke",
    "NameResolutionError": "cannot resolve the host",
}


def _download(
    source: Source, tmp: str, fmt: FileFormat, options: dict, streamed: bool = False, pipes: Pipes | None = None
) -> SourceFile:
    """Fetch a URL source through the network guard; secrets are resolved here and nowhere else.

    Messages name the URL as stored (``safe_url``), never with resolved secrets.
    """
    shown = safe_url(source.location)
    path = os.path.join(tmp, "download")
    fetch = source.options or {}
    try:
        headers = credentials.resolve(fetch.get("headers") or {})
        params = credentials.resolve(fetch.get("params") or {})
    except credentials.CredentialError as exc:
        raise IngestError(f"Cannot fetch {shown}: {exc}") from exc
    secrets = [*headers.values(), *params.values()]
    try:
        with netguard.fetch(credentials.with_params(source.location, params), headers) as resp:
            if resp.status >= 400:
                raise IngestError(f"{shown} answered HTTP {resp.status} {resp.reason}.")
            with open(path, "wb") as out:
                for chunk in resp.chunks(CHUNK):
                    out.write(chunk)
    except netguard.URLRefused as exc:
        raise IngestError(f"Refused to fetch {shown}: {credentials.redact(str(exc), secrets)}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        # The exception text can quote the request line (with secret parameters): show its kind only.
        hint = FETCH_FAILURES.get(exc.__class__.__name__, "the connection failed")
        raise IngestError(f"Cannot fetch {shown}: {exc.__class__.__name__} ({hint}).") from exc
    return _local(path, shown, fmt, options, tmp, streamed, pipes)


def _objects(
    source: Source, tmp: str, fmt: FileFormat, options: dict, streamed: bool = False, pipes: Pipes | None = None
) -> Iterator[SourceFile]:
    """Each object of an object storage source, streamed to disk then made ready; removed once read.

    Connecting and listing happen now (a source that cannot be read fails here); each object is
    fetched only when the loader asks for it.
    """
    listed = objectstore.objects(source.options or {}, source.location)

    def each() -> Iterator[SourceFile]:
        for label, path in objectstore.iter_downloads(listed, tmp, CHUNK):
            found = _local(path, label, fmt, options, tmp, streamed, pipes)
            try:
                yield found
            finally:
                for leftover in {path, found.parse_path, *([found.prepared.evidence] if found.prepared else [])}:
                    if leftover.startswith(tmp + os.sep) and os.path.exists(leftover):
                        os.remove(leftover)

    return each()


def _api_records(source: Source, tmp: str, options: dict) -> SourceFile | None:
    """Every page of a JSON API source as one JSON Lines file (None: the API has no records)."""
    path = os.path.join(tmp, "records.jsonl")
    written = httpapi.fetch_records(source.location, source.options or {}, path)
    if not written.rows:
        return None
    found = _local(path, credentials.safe_url(source.location), FileFormat.JSONL, options, tmp)
    if found.prepared and not options.get("columns"):
        # Every key of every record, not only those of the first lines the reader samples.
        found = replace(found, prepared=replace(found.prepared, options={**found.prepared.options, "columns": list(written.columns)}))
    return found


def _export_query(source: Source, tmp: str, incremental: Incremental | None = None) -> SourceFile | None:
    """Run the source's query on its database and stream the result to a CSV file (None: no new rows)."""
    url = settings.ATLAS_SOURCE_DATABASES.get(source.database)
    if not url:
        raise IngestError(f"Source {source.name!r} names the unknown database {source.database!r}.")
    path = os.path.join(tmp, "query.csv")
    query = source.query.strip().rstrip(";")
    try:
        url = credentials.resolve_database_url(url)
    except credentials.CredentialError as exc:
        raise IngestError(f"Cannot connect to {source.database!r} for source {source.name!r}: {exc}") from exc
    try:
        if incremental is None:
            registry.export_query(url, query, path)
        elif not watermarks.export(source, url, query, path, incremental):
            return None
    except registry.UnknownBackend as exc:
        raise IngestError(
            f"Unsupported database URL for source {source.name!r}: use one of"
            f" {', '.join(registry.source_schemes())}."
        ) from exc
    except IngestError:
        raise
    except mysqlsource.SourceURLError as exc:
        raise IngestError(f"The database {source.database!r} of source {source.name!r} is misconfigured: {exc}") from exc
    except Exception as exc:  # driver errors differ per engine; the message is what matters
        args = getattr(exc, "args", ())
        # A driver's (code, message) pair (PyMySQL) as "message (error code)": the server's words stay
        # words, not one quoted literal the scrubber would hide whole.
        text = f"{args[1]} (error {args[0]})" if len(args) == 2 and isinstance(args[0], int) else str(exc)
        message = credentials.redact(text, credentials.database_url_secrets(url))
        raise IngestError(f"The query of source {source.name!r} failed on database {source.database!r}: {message}") from exc
    # A query may name two columns alike (a.id, b.id): suffixed, as before, not refused.
    exported = _local(
        path, f"{source.database}: {query[:200]}", FileFormat.CSV, {"delimiter": ",", "header_names": "suffix"}, tmp
    )
    if incremental is not None:  # before the publish: the maximum read, pending until its batch is published
        watermarks.pending(incremental, exported.checksum)
    return exported
