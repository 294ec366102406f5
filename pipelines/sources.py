"""Turn a Source into local files to load: a glob, an upload, an HTTP download, a query export.

Everything is streamed in fixed-size chunks, and each file's content checksum
(SHA-256) is computed on the way, so a file already loaded can be skipped.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings

from atlas.warehouse.base import FileFormat
from atlas.warehouse.filereader import IngestError

from .models import Source

CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    path: str
    label: str  # what the operator recognises: the path, the URL, the query's source
    checksum: str
    size: int
    format: FileFormat


def file_checksum(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _local(path: str, label: str, fmt: FileFormat) -> SourceFile:
    return SourceFile(path, label, file_checksum(path), os.path.getsize(path), fmt)


def _tmpdir() -> str:
    base = Path(settings.VAR_DIR) / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="atlas-src-", dir=base)


@contextmanager
def source_files(source: Source) -> Iterator[list[SourceFile]]:
    """The files behind ``source``, each with its checksum; temporary copies are removed after."""
    fmt = FileFormat(source.format)
    if source.kind == Source.Kind.PATH:
        pattern = os.path.expanduser(source.location)
        if glob.has_magic(pattern):
            paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
            if not paths:
                raise IngestError(f"No file matches {source.location!r}.")
        else:
            if not os.path.isfile(pattern):
                raise IngestError(f"{source.location}: no such file.")
            paths = [pattern]
        yield [_local(p, p, fmt) for p in paths]
        return
    if source.kind == Source.Kind.UPLOAD:
        if not source.upload or not os.path.isfile(source.upload.path):
            raise IngestError(f"The uploaded file of source {source.name!r} is missing.")
        yield [_local(source.upload.path, source.upload.name, fmt)]
        return
    tmp = _tmpdir()
    try:
        if source.kind == Source.Kind.URL:
            yield [_download(source.location, tmp, fmt)]
        else:
            yield [_export_query(source, tmp)]
    finally:
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


def _download(url: str, tmp: str, fmt: FileFormat) -> SourceFile:
    path = os.path.join(tmp, "download")
    digest, size = hashlib.sha256(), 0
    try:
        with requests.get(url, stream=True, timeout=settings.ATLAS_HTTP_TIMEOUT_SECONDS) as resp:
            if resp.status_code >= 400:
                raise IngestError(f"{url} answered HTTP {resp.status_code} {resp.reason}.")
            with open(path, "wb") as out:
                for chunk in resp.iter_content(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
    except requests.RequestException as exc:
        raise IngestError(f"Cannot fetch {url}: {exc.__class__.__name__}: {exc}") from exc
    return SourceFile(path, url, digest.hexdigest(), size, fmt)


def _export_query(source: Source, tmp: str) -> SourceFile:
    """Run the source's query on its database and stream the result to a CSV file."""
    url = settings.ATLAS_SOURCE_DATABASES.get(source.database)
    if not url:
        raise IngestError(f"Source {source.name!r} names the unknown database {source.database!r}.")
    path = os.path.join(tmp, "query.csv")
    query = source.query.strip().rstrip(";")
    try:
        if url.startswith(("postgres://", "postgresql://")):
            import psycopg

            with psycopg.connect(url) as conn, conn.cursor() as cur, open(path, "wb") as out:
                conn.read_only = True
                with cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
                    for chunk in copy:
                        out.write(chunk)
        elif url.startswith("duckdb://"):
            import duckdb

            con = duckdb.connect(url.removeprefix("duckdb://"), read_only=True)
            try:
                con.execute(f"COPY ({query}) TO '{path}' (FORMAT csv, HEADER true)")
            finally:
                con.close()
        elif url.startswith("sqlite://"):
            con = sqlite3.connect(f"file:{url.removeprefix('sqlite://')}?mode=ro", uri=True)
            try:
                cur = con.execute(query)
                with open(path, "w", newline="", encoding="utf-8") as out:
                    writer = csv.writer(out)
                    writer.writerow([d[0] for d in cur.description])
                    while rows := cur.fetchmany(10_000):
                        writer.writerows(rows)
            finally:
                con.close()
        else:
            raise IngestError(f"Unsupported database URL for source {source.name!r}: use postgresql, duckdb or sqlite.")
    except IngestError:
        raise
    except Exception as exc:  # driver errors differ per engine; the message is what matters
        raise IngestError(f"The query of source {source.name!r} failed on {source.database!r}: {exc}") from exc
    return _local(path, f"{source.database}: {query[:200]}", FileFormat.CSV)
